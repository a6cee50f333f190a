//! Writing derived objects into a file datastore directory: atomically (`.<name>.tmp` renamed into
//! place), only when the content changed, removing the operator's files that are no longer wanted.

use std::collections::BTreeSet;
use std::path::Path;

use gingham_crds::api::{IPPoolStatus, NodeNetwork};
use gingham_crds::manifest::read_documents;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use super::FileError;
use super::layout::{IPAM_BLOCKS, NETWORK_POLICIES, NODE_NETWORKS, POOL_STATUSES, object_path};
use crate::core::DesiredState;
use crate::datastore::objects::{ipam_block, node_network, pool_status, stamp_conditions, translated_policy};
use crate::datastore::{WriteOp, WriteSummary};

/// Makes the operator's files under `root` match `desired`.
pub fn write_desired(root: &Path, desired: &DesiredState) -> Result<WriteSummary, FileError> {
    let mut summary = WriteSummary::default();

    let mut names = BTreeSet::new();
    for (node, spec) in &desired.node_networks {
        let path = object_path(root, NODE_NETWORKS, node);
        let existing = read_node_network(&path);
        let generation = match &existing {
            Some(old) if old.spec == *spec => old.metadata.generation.unwrap_or(1),
            Some(old) => old.metadata.generation.unwrap_or(0) + 1,
            None => 1,
        };
        write_if_changed(&path, &node_network(node, spec, Some(generation)), "NodeNetwork", &mut summary)?;
        names.insert(node.clone());
    }
    remove_stale(root, NODE_NETWORKS, &names, "NodeNetwork", &mut summary)?;

    let mut names = BTreeSet::new();
    for (name, spec) in &desired.blocks {
        write_if_changed(&object_path(root, IPAM_BLOCKS, name), &ipam_block(name, spec), "IPAMBlock", &mut summary)?;
        names.insert(name.clone());
    }
    remove_stale(root, IPAM_BLOCKS, &names, "IPAMBlock", &mut summary)?;

    let mut names = BTreeSet::new();
    for (key, policy) in &desired.translated_policies {
        let object = translated_policy(key, policy);
        let name = format!("{}.{}", key.0, object.metadata.name.as_deref().unwrap_or_default());
        write_if_changed(&object_path(root, NETWORK_POLICIES, &name), &object, "NetworkPolicy", &mut summary)?;
        names.insert(name);
    }
    remove_stale(root, NETWORK_POLICIES, &names, "NetworkPolicy", &mut summary)?;

    let mut names = BTreeSet::new();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for (pool, status) in &desired.pool_statuses {
        let path = object_path(root, POOL_STATUSES, pool);
        let status = stamp_conditions(status, read_status(&path).as_ref(), &now);
        write_if_changed(&path, &pool_status(pool, &status), "IPPool", &mut summary)?;
        names.insert(pool.clone());
    }
    remove_stale(root, POOL_STATUSES, &names, "IPPool", &mut summary)?;
    Ok(summary)
}

/// The NodeNetwork in a file, if it is there and readable.
fn read_node_network(path: &Path) -> Option<NodeNetwork> {
    let text = std::fs::read_to_string(path).ok()?;
    let document = read_documents(&text).ok()?.into_iter().next()?;
    serde_json::from_value(document.value).ok()
}

/// The status in a `status/ippools` file, if it is there and readable.
fn read_status(path: &Path) -> Option<IPPoolStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    let document = read_documents(&text).ok()?.into_iter().next()?;
    serde_json::from_value(document.value.get("status")?.clone()).ok()
}

/// Writes `object` as YAML to `path` unless the file already holds exactly that.
fn write_if_changed<T: Serialize>(
    path: &Path,
    object: &T,
    kind: &'static str,
    summary: &mut WriteSummary,
) -> Result<(), FileError> {
    *summary.managed.entry(kind).or_default() += 1;
    let text = serde_saphyr::to_string(object)
        .map_err(|e| FileError::Render { path: path.to_path_buf(), message: e.to_string() })?;
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    write_atomically(path, &text)?;
    summary.count(kind, WriteOp::Apply);
    Ok(())
}

/// Writes `.<name>.tmp` next to `path` and renames it into place, so readers never see half a file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), FileError> {
    let write = |source| FileError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).map_err(write)?;
    std::fs::rename(&temporary, path).map_err(write)
}

/// Removes `<area>/*.yaml` files whose name is not wanted.
fn remove_stale(
    root: &Path,
    area: &str,
    wanted: &BTreeSet<String>,
    kind: &'static str,
    summary: &mut WriteSummary,
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
        match std::fs::remove_file(entry.path()) {
            Ok(()) => summary.count(kind, WriteOp::Delete),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(FileError::Write { path: entry.path(), source }),
        }
    }
    Ok(())
}
