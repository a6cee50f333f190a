//! The lab's side of the file datastore (docs/file-datastore.md): it writes the user's objects
//! (Nodes, Pods, Namespaces, scenario objects, `apply -f`) and reads what agents report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gingham_crds::manifest::{self, Manifest, ReadFileError, read_manifest_file};
use gingham_datastore::atomic::{AtomicWriteError, PUBLIC_FILE, write_atomic};
use gingham_datastore::layout::{IPAM_BLOCKS, node_network_path, node_status_path, user_object_path};
use serde_json::{Value, json};

use crate::family::family_of;
use crate::scenario::{NamespaceSpec, PodSpec};
use crate::state::NodeRecord;
use gingham_crds::api::IpFamily;

/// Reading or writing the datastore failed.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// A file could not be read or written.
    #[error("datastore file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// A manifest file could not be read (missing, too large, not UTF-8).
    #[error(transparent)]
    Read(#[from] ReadFileError),
    /// An object is not one gingham reads, or is invalid.
    #[error("{file}: {message}")]
    Invalid {
        /// The file it came from.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// The annotation carrying a node's underlay address and prefix length.
pub const NODE_ADDRESS_ANNOTATION: &str = "gingham.dev/ipv4-address";
/// The annotation that gives a Node its IPv6 underlay address and prefix.
pub const NODE_ADDRESS6_ANNOTATION: &str = "gingham.dev/ipv6-address";

fn str_of<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The file an object lives in, from its identity (apiVersion group, kind, namespace, name), so that
/// applying an object again replaces it.
pub fn object_path(dir: &Path, object: &Value) -> PathBuf {
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
    user_object_path(
        dir,
        str_of(object, "/apiVersion"),
        str_of(object, "/kind"),
        namespace,
        str_of(object, "/metadata/name"),
    )
}

/// Writes one object into the datastore (replacing an earlier version of it).
pub fn put(dir: &Path, object: &Value) -> Result<PathBuf, DatastoreError> {
    let path = object_path(dir, object);
    let text = serde_saphyr::to_string(object)
        .map_err(|e| DatastoreError::Invalid { file: path.display().to_string(), message: e.to_string() })?;
    write_atomic(&path, text.as_bytes(), PUBLIC_FILE)?;
    Ok(path)
}

/// Removes one object from the datastore; `false` when it was not there.
pub fn remove(dir: &Path, object: &Value) -> Result<bool, DatastoreError> {
    let path = object_path(dir, object);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DatastoreError::Io { path, source }),
    }
}

/// Reads a manifest file and checks every object the way `gingham-operator validate` would.
pub fn read_manifests(file: &Path) -> Result<Vec<Value>, DatastoreError> {
    let text = read_manifest_file(file)?;
    parse_manifests(&text, &file.display().to_string())
}

/// Parses manifest text (`name` is used in messages) and checks every object.
pub fn parse_manifests(text: &str, name: &str) -> Result<Vec<Value>, DatastoreError> {
    let name = name.to_string();
    let invalid = |message: String| DatastoreError::Invalid { file: name.clone(), message };
    let documents = manifest::read_documents(text).map_err(|e| invalid(e.to_string()))?;
    let mut objects = Vec::new();
    for document in documents {
        let object = Manifest::from_document(&document).map_err(|e| invalid(e.to_string()))?;
        object.validate().map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            invalid(format!("line {}: {} is invalid: {}", document.line, object.kind(), list.join("; ")))
        })?;
        objects.push(document.value);
    }
    Ok(objects)
}

/// A v1 Node with its labels and its underlay addresses: the annotation of each family
/// (`gingham.dev/ipv4-address`, `gingham.dev/ipv6-address`, with prefix) and an InternalIP each.
pub fn node_object(node: &NodeRecord, labels: &BTreeMap<String, String>) -> Value {
    let mut labels = labels.clone();
    labels.insert("kubernetes.io/hostname".into(), node.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    let mut annotations = serde_json::Map::new();
    let mut addresses = Vec::new();
    for (family, annotation) in [(IpFamily::IPv4, NODE_ADDRESS_ANNOTATION), (IpFamily::IPv6, NODE_ADDRESS6_ANNOTATION)]
    {
        let with_prefix =
            [Some(&node.address), node.address6.as_ref()].into_iter().flatten().find(|a| family_of(a) == family);
        if let (Some(with_prefix), Some(ip)) = (with_prefix, node.ip(family)) {
            annotations.insert(annotation.into(), json!(with_prefix));
            addresses.push(json!({"type": "InternalIP", "address": ip}));
        }
    }
    addresses.push(json!({"type": "Hostname", "address": node.name}));
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": labels, "annotations": annotations},
        "status": {"addresses": addresses},
    })
}

/// A v1 Namespace with its labels (and `kubernetes.io/metadata.name`, as the API server adds).
pub fn namespace_object(ns: &NamespaceSpec) -> Value {
    let mut labels = ns.labels.clone();
    labels.insert("kubernetes.io/metadata.name".into(), ns.name.clone());
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name, "labels": labels}})
}

/// A v1 Pod with its `uid`, labels, node and named container ports; `addresses` fill
/// status.podIP (the first) and status.podIPs (all), as Kubernetes does for dual-stack pods.
pub fn pod_object(pod: &PodSpec, uid: &str, addresses: &[String]) -> Value {
    let ports: Vec<Value> = pod
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({"containerPort": p.port, "protocol": p.protocol});
            if let (Some(name), Some(map)) = (&p.name, port.as_object_mut()) {
                map.insert("name".into(), json!(name));
            }
            port
        })
        .collect();
    let mut object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": uid, "labels": pod.labels},
        "spec": {"nodeName": pod.node, "containers": [{"name": "main", "image": "gingham-lab", "ports": ports}]},
        "status": {"phase": "Running"},
    });
    if let (Some(account), Some(spec)) = (&pod.service_account, object.get_mut("spec").and_then(Value::as_object_mut)) {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    let ips: Vec<&str> = addresses.iter().filter_map(|a| a.split('/').next()).collect();
    if let (Some(ip), Some(status)) = (ips.first(), object.get_mut("status").and_then(Value::as_object_mut)) {
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), ips.iter().map(|ip| json!({"ip": ip})).collect());
    }
    object
}

/// A node's status as its agent last wrote it (`status/nodenetworks/<node>.yaml`), as JSON, if any.
/// Read untyped so that a status the lab cannot fully decode still shows what it has.
pub fn node_status(dir: &Path, node: &str) -> Result<Option<Value>, DatastoreError> {
    let path = node_status_path(dir, node);
    let text = match read_manifest_file(&path) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value: Value = serde_saphyr::from_str(&text)
        .map_err(|e| DatastoreError::Invalid { file: path.display().to_string(), message: e.to_string() })?;
    Ok(value.get("status").cloned())
}

/// The `status` and `reason message` of one condition of a node status, e.g. `("True", "")`.
pub fn condition(status: &Value, kind: &str) -> Option<(String, String)> {
    let conditions = status.get("conditions")?.as_array()?;
    let found = conditions.iter().find(|c| str_of(c, "/type") == kind)?;
    let detail = [str_of(found, "/reason"), str_of(found, "/message")].join(" ").trim().to_string();
    Some((str_of(found, "/status").to_string(), detail))
}

/// The BGP sessions of a node status: name, peer, state and info.
pub fn bgp_sessions(status: &Value) -> Vec<[String; 4]> {
    let sessions = status.get("bgpSessions").and_then(Value::as_array).cloned().unwrap_or_default();
    sessions
        .iter()
        .map(|s| {
            [str_of(s, "/name"), str_of(s, "/peerAddress"), str_of(s, "/state"), str_of(s, "/info")].map(str::to_string)
        })
        .collect()
}

/// The NodeNetwork the operator generated for a node, as JSON, if it exists and parses.
fn generated_node_network(dir: &Path, node: &str) -> Option<Value> {
    let path = node_network_path(dir, node);
    serde_saphyr::from_str(&read_manifest_file(&path).ok()?).ok()
}

/// The `metadata.generation` of the NodeNetwork the operator generated for a node, if any.
pub fn generated_generation(dir: &Path, node: &str) -> Option<i64> {
    generated_node_network(dir, node)?.pointer("/metadata/generation").and_then(Value::as_i64)
}

/// The endpoints (`namespace/pod`) whose policy the operator compiles into a node's span, as the
/// `operator` binary renders it from `dir` (empty when it cannot).
pub fn compiled_endpoints(operator: &Path, dir: &Path, node: &str) -> Vec<String> {
    let output = std::process::Command::new(operator).arg("render").arg(dir).args(["--node", node, "--span"]).output();
    let Ok(output) = output else { return Vec::new() };
    let span: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap_or_default();
    let endpoints = span.pointer("/endpoints").and_then(Value::as_array).cloned().unwrap_or_default();
    endpoints.iter().map(|e| str_of(e, "/name").to_string()).collect()
}

/// The IPAMBlocks the operator generated: (cidr, node).
pub fn ipam_blocks(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join(IPAM_BLOCKS)) else { return Vec::new() };
    let mut blocks: Vec<(String, String)> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| serde_saphyr::from_str::<Value>(&read_manifest_file(&e.path()).ok()?).ok())
        .map(|v| (str_of(&v, "/spec/cidr").to_string(), str_of(&v, "/spec/node").to_string()))
        .collect();
    blocks.sort();
    blocks
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn apply_reads_documents_on_their_marker_line_and_refuses_names_that_are_no_strings() {
        let pool = "--- {apiVersion: gingham.dev/v1, kind: IPPool, metadata: {name: p}, spec: {cidr: 10.9.0.0/16}}\n";
        let objects = parse_manifests(pool, "pool.yaml").unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(str_of(&objects[0], "/metadata/name"), "p");
        let error = parse_manifests("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: y\n", "ns.yaml").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("ns.yaml: line 4: metadata.name is the boolean true"), "{message}");
        assert!(message.ends_with(r#"quote it, as in name: "y""#), "{message}");
    }

    #[test]
    fn apply_reads_at_most_the_manifest_limit() {
        let error = read_manifests(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(error, DatastoreError::Read(ReadFileError::TooLarge { .. })), "{error}");
        assert!(error.to_string().contains("/dev/zero is larger than"), "{error}");
    }
}
