//! Writing derived objects into a file datastore directory: atomically (`.<name>.tmp` renamed into
//! place), only when the content changed, removing the operator's files that are no longer wanted.
//! A round after events writes only the objects the engine says changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gingham_crds::api::{IPAMBlockSpec, IPPoolStatus, NodeNetwork, NodeNetworkSpec};
use gingham_crds::manifest::{read_documents, read_manifest_file};
use gingham_datastore::atomic::{PUBLIC_FILE, write_atomic};
use gingham_datastore::layout::{IPAM_BLOCKS, NETWORK_POLICIES, NODE_NETWORKS, POOL_STATUSES, object_path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use super::FileError;
use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::datastore::objects::{
    ipam_block, node_network, pool_status, stamp_conditions, translated_global_policy, translated_policy,
};
use crate::datastore::{WriteOp, WriteSummary};

/// What a write did: the counts, and the files it wrote or removed.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Writes and managed objects, counted.
    pub summary: WriteSummary,
    /// The files written or removed (see [`super::read::Reader::adopt`]).
    pub files: Vec<PathBuf>,
}

/// Makes the operator's files under `root` match `desired`, comparing every one of them.
pub fn write_desired(root: &Path, desired: &DesiredState) -> Result<Written, FileError> {
    let mut written = Written::default();
    for (node, spec) in &desired.node_networks {
        write_node_network(root, node, Some(spec), &mut written)?;
    }
    let names = desired.node_networks.keys().cloned().collect();
    remove_stale(root, NODE_NETWORKS, &names, "NodeNetwork", &mut written)?;

    for (name, spec) in &desired.blocks {
        write_block(root, name, Some(spec), &mut written)?;
    }
    let names = desired.blocks.keys().cloned().collect();
    remove_stale(root, IPAM_BLOCKS, &names, "IPAMBlock", &mut written)?;

    write_translated_policies(root, desired, &mut written)?;

    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for (pool, status) in &desired.pool_statuses {
        write_pool_status(root, pool, Some(status), &now, &mut written)?;
    }
    let names = desired.pool_statuses.keys().cloned().collect();
    remove_stale(root, POOL_STATUSES, &names, "IPPool", &mut written)?;
    count_managed(desired, &mut written.summary);
    Ok(written)
}

/// Writes or removes only the objects `changes` names (translated policies, few and named by
/// key rather than file, are compared all together when any of them changed).
pub fn write_changes(root: &Path, desired: &DesiredState, changes: &Changes) -> Result<Written, FileError> {
    let mut written = Written::default();
    for node in &changes.node_networks {
        write_node_network(root, node, desired.node_networks.get(node), &mut written)?;
    }
    for name in &changes.blocks {
        write_block(root, name, desired.blocks.get(name), &mut written)?;
    }
    if !changes.translated_policies.is_empty() || !changes.translated_global_policies.is_empty() {
        write_translated_policies(root, desired, &mut written)?;
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for pool in &changes.pool_statuses {
        write_pool_status(root, pool, desired.pool_statuses.get(pool), &now, &mut written)?;
    }
    count_managed(desired, &mut written.summary);
    Ok(written)
}

fn count_managed(desired: &DesiredState, summary: &mut WriteSummary) {
    summary.managed = [
        ("NodeNetwork", desired.node_networks.len() as u64),
        ("IPAMBlock", desired.blocks.len() as u64),
        ("NetworkPolicy", desired.translated_policies.len() as u64),
        ("GlobalNetworkPolicy", desired.translated_global_policies.len() as u64),
        ("IPPool", desired.pool_statuses.len() as u64),
    ]
    .into_iter()
    .collect();
}

/// Writes a node's NodeNetwork (its generation bumped when the spec changed), or removes it.
fn write_node_network(
    root: &Path,
    node: &str,
    spec: Option<&NodeNetworkSpec>,
    written: &mut Written,
) -> Result<(), FileError> {
    let path = object_path(root, NODE_NETWORKS, node);
    let Some(spec) = spec else { return remove(&path, "NodeNetwork", written) };
    let generation = match read_node_network(&path) {
        Some(old) if old.spec == *spec => old.metadata.generation.unwrap_or(1),
        Some(old) => old.metadata.generation.unwrap_or(0) + 1,
        None => 1,
    };
    write_if_changed(&path, &node_network(node, spec, Some(generation)), "NodeNetwork", written)
}

fn write_block(root: &Path, name: &str, spec: Option<&IPAMBlockSpec>, written: &mut Written) -> Result<(), FileError> {
    let path = object_path(root, IPAM_BLOCKS, name);
    match spec {
        Some(spec) => write_if_changed(&path, &ipam_block(name, spec), "IPAMBlock", written),
        None => remove(&path, "IPAMBlock", written),
    }
}

fn write_pool_status(
    root: &Path,
    pool: &str,
    status: Option<&IPPoolStatus>,
    now: &Time,
    written: &mut Written,
) -> Result<(), FileError> {
    let path = object_path(root, POOL_STATUSES, pool);
    let Some(status) = status else { return remove(&path, "IPPool", written) };
    let status = stamp_conditions(status, read_status(&path).as_ref(), now);
    write_if_changed(&path, &pool_status(pool, &status), "IPPool", written)
}

/// The file name prefix of translated global policies, beside the `<namespace>.` of namespaced ones.
const GLOBAL_FILE_PREFIX: &str = "global.";

fn write_translated_policies(root: &Path, desired: &DesiredState, written: &mut Written) -> Result<(), FileError> {
    let mut names = BTreeSet::new();
    for (key, policy) in &desired.translated_policies {
        let object = translated_policy(key, policy);
        let name = format!("{}.{}", key.0, object.metadata.name.as_deref().unwrap_or_default());
        write_if_changed(&object_path(root, NETWORK_POLICIES, &name), &object, "NetworkPolicy", written)?;
        names.insert(name);
    }
    for (name, policy) in &desired.translated_global_policies {
        let object = translated_global_policy(name, policy);
        let file = format!("{GLOBAL_FILE_PREFIX}{name}");
        write_if_changed(&object_path(root, NETWORK_POLICIES, &file), &object, "GlobalNetworkPolicy", written)?;
        names.insert(file);
    }
    remove_stale(root, NETWORK_POLICIES, &names, "NetworkPolicy", written)
}

/// The NodeNetwork in a file, if it is there and readable.
fn read_node_network(path: &Path) -> Option<NodeNetwork> {
    let text = read_manifest_file(path).ok()?;
    let document = read_documents(&text).ok()?.into_iter().next()?;
    serde_json::from_value(document.value).ok()
}

/// The status in a `status/ippools` file, if it is there and readable.
fn read_status(path: &Path) -> Option<IPPoolStatus> {
    let text = read_manifest_file(path).ok()?;
    let document = read_documents(&text).ok()?.into_iter().next()?;
    serde_json::from_value(document.value.get("status")?.clone()).ok()
}

/// Writes `object` as YAML to `path` unless the file already holds exactly that.
fn write_if_changed<T: Serialize>(
    path: &Path,
    object: &T,
    kind: &'static str,
    written: &mut Written,
) -> Result<(), FileError> {
    let text = serde_saphyr::to_string(object)
        .map_err(|e| FileError::Render { path: path.to_path_buf(), message: e.to_string() })?;
    if read_manifest_file(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    write_atomic(path, text.as_bytes(), PUBLIC_FILE)?;
    written.summary.count(kind, WriteOp::Apply);
    written.files.push(path.to_path_buf());
    Ok(())
}

/// Removes the file of an object that is no longer wanted, if it is there.
fn remove(path: &Path, kind: &'static str, written: &mut Written) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            written.summary.count(kind, WriteOp::Delete);
            written.files.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FileError::Remove { path: path.to_path_buf(), source }),
    }
}

/// Removes `<area>/*.yaml` files whose name is not wanted.
fn remove_stale(
    root: &Path,
    area: &str,
    wanted: &BTreeSet<String>,
    kind: &'static str,
    written: &mut Written,
) -> Result<(), FileError> {
    let dir = root.join(area);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(FileError::Read { path: dir, source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| FileError::Read { path: dir.clone(), source })?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file_name.strip_suffix(".yaml") else { continue };
        if name.starts_with('.') || wanted.contains(name) {
            continue;
        }
        remove(&entry.path(), kind, written)?;
    }
    Ok(())
}
