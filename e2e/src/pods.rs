//! Pods: a network namespace plumbed by the real CNI plugin, run inside the node's namespace the
//! way a kubelet on that node would, plus the Pod object and a small server on its ports.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cmd::{self, CmdError};
use crate::datastore::{self, DatastoreError};
use crate::lab::{CNI, LAB, REFERENCE_DIR, cni_socket};
use crate::process::{self, SpawnError};
use crate::scenario::PodSpec;
use crate::state::{LabState, PodRecord, StateError};
use crate::topology::{self, TopologyError, names};

/// The TCP port every pod serves, besides its own ports, for `probe --port`.
pub const PROBE_PORT: u16 = 8080;

/// A pod could not be created or removed.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The pod's node is not in the lab.
    #[error("pod {pod}: node {node} is not in the lab")]
    UnknownNode {
        /// The pod.
        pod: String,
        /// The node.
        node: String,
    },
    /// The pod is not in the lab.
    #[error("pod {pod} is not in the lab; add it first")]
    UnknownPod {
        /// The pod.
        pod: String,
    },
    /// CNI ADD or DEL failed.
    #[error("pod {pod}: CNI {command} on {node} failed: {detail}")]
    Cni {
        /// The pod.
        pod: String,
        /// The node.
        node: String,
        /// ADD or DEL.
        command: String,
        /// What the plugin said.
        detail: String,
    },
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The namespace could not be made.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// The state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The server could not start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// No UID could be made for the Pod.
    #[error("pod {pod}: cannot read a random UID from {UID_SOURCE}: {source}")]
    Uid {
        /// The pod.
        pod: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where the kernel hands out random UUIDs (the Pod UIDs the lab makes, as the API server would).
const UID_SOURCE: &str = "/proc/sys/kernel/random/uuid";

/// The reference plugin the lab chains after gingham, as Calico's conflist does.
pub const PORTMAP: &str = "portmap";

/// Whether the reference `portmap` plugin is installed (the IPIP test VM, for one, has none).
pub fn portmap_installed() -> bool {
    Path::new(REFERENCE_DIR).join(PORTMAP).is_file()
}

/// The lab's network configuration list, as a node's `/etc/cni/net.d` would hold it: gingham, then
/// (when `chain_portmap`) the reference `portmap` for `runtimeConfig.portMappings` (hostPort), as
/// `config/cni` ships it.
pub fn cni_conflist(socket: &str, chain_portmap: bool) -> Value {
    let mut plugins = vec![json!({"type": "gingham", "socketPath": socket})];
    if chain_portmap {
        plugins.push(json!({"type": PORTMAP, "capabilities": {"portMappings": true}, "snat": true}));
    }
    json!({ "cniVersion": "1.0.0", "name": "gingham", "plugins": plugins })
}

/// Runs CNI `command` for a pod through the lab's conflist with no runtime settings; returns the
/// chain's result (ADD) or nothing.
pub fn run_cni(state: &LabState, pod: &PodRecord, command: &str) -> Result<String, PodError> {
    run_chain(state, pod, command, &json!({}))
}

/// Runs CNI `command` for a pod through the lab's conflist inside its node's namespace, the way a
/// runtime's libcni does: ADD runs the plugins in order, each getting the one before's result as
/// `prevResult`; DEL runs them in reverse. Each plugin gets the list's `name` and `cniVersion`
/// and, under `runtimeConfig`, the entries of `runtime` (such as `portMappings`) its
/// `capabilities` ask for. Returns the last plugin's stdout.
pub fn run_chain(state: &LabState, pod: &PodRecord, command: &str, runtime: &Value) -> Result<String, PodError> {
    let node = state.node(&pod.node).ok_or_else(|| PodError::UnknownNode { pod: pod.key(), node: pod.node.clone() })?;
    let list = cni_conflist(&cni_socket(node).display().to_string(), portmap_installed());
    let mut plugins: Vec<&Value> = list["plugins"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    if command == "DEL" {
        plugins.reverse();
    }
    let mut result: Option<Value> = None;
    let mut stdout = String::new();
    for plugin in plugins {
        let mut config = plugin.clone();
        config["name"] = list["name"].clone();
        config["cniVersion"] = list["cniVersion"].clone();
        let wanted: serde_json::Map<String, Value> = plugin["capabilities"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(capability, on)| on.as_bool() == Some(true) && runtime.get(capability.as_str()).is_some())
            .map(|(capability, _)| (capability.clone(), runtime[capability.as_str()].clone()))
            .collect();
        if !wanted.is_empty() {
            config["runtimeConfig"] = Value::Object(wanted);
        }
        if let Some(previous) = result.take() {
            config["prevResult"] = previous;
        }
        let kind = plugin["type"].as_str().unwrap_or_default();
        stdout = run_plugin(state, pod, &node.netns, kind, command, &config)?;
        if command == "ADD" {
            result = serde_json::from_str(&stdout).ok();
        }
    }
    Ok(stdout)
}

/// Runs one plugin of the chain (gingham from the lab's binaries, the others from
/// [`REFERENCE_DIR`]) in the node's namespace.
fn run_plugin(
    state: &LabState,
    pod: &PodRecord,
    node_netns: &str,
    kind: &str,
    command: &str,
    config: &Value,
) -> Result<String, PodError> {
    let binary = if kind == "gingham" { state.bin_dir.join(CNI) } else { Path::new(REFERENCE_DIR).join(kind) };
    let mut cni = Command::new("ip");
    cni.args(["netns", "exec", node_netns, "env"])
        .arg(format!("CNI_COMMAND={command}"))
        .arg(format!("CNI_CONTAINERID={}", pod.container_id))
        .arg(format!("CNI_NETNS=/run/netns/{}", pod.netns))
        .arg("CNI_IFNAME=eth0")
        .arg(format!(
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.uid
        ))
        .arg(format!("CNI_PATH={}:{REFERENCE_DIR}", state.bin_dir.display()))
        .arg(binary);
    let out = cmd::output(&mut cni, Some(config.to_string().as_bytes()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let detail = format!("{kind}: {} {}", stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
    Err(PodError::Cni { pod: pod.key(), node: pod.node.clone(), command: command.into(), detail })
}

/// Every address of a CNI result (`ips[].address`), in its order (the first is the primary).
pub fn result_addresses(result: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(result).unwrap_or_default();
    let ips = value.get("ips").and_then(Value::as_array).cloned().unwrap_or_default();
    ips.iter().filter_map(|ip| ip.get("address")?.as_str().map(str::to_string)).collect()
}

/// Adds a pod: namespace, Pod object with a new UID, CNI ADD (retried after a DEL for up to 60 s while the node gets its blocks), Pod
/// object with its address, and a server on its ports.
pub fn add(state: &mut LabState, spec: &PodSpec) -> Result<PodRecord, PodError> {
    if state.node(&spec.node).is_none() {
        return Err(PodError::UnknownNode {
            pod: format!("{}/{}", spec.namespace, spec.name),
            node: spec.node.clone(),
        });
    }
    let netns = names::pod(&state.prefix, &spec.namespace, &spec.name);
    let key = format!("{}/{}", spec.namespace, spec.name);
    // A new Pod object has a new UID, and its sandbox a new container id, as with a real runtime.
    let uid = std::fs::read_to_string(UID_SOURCE).map_err(|source| PodError::Uid { pod: key, source })?;
    let uid = uid.trim().to_string();
    let mut record = PodRecord {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        node: spec.node.clone(),
        netns: netns.clone(),
        container_id: format!("{}-{}-{}-{}", state.prefix, spec.namespace, spec.name, uid.get(..8).unwrap_or(&uid)),
        uid,
        address: None,
        addresses: Vec::new(),
    };
    topology::add_netns(state, &netns)?;
    state.pods.push(record.clone());
    state.save()?;
    // As in Kubernetes, the Pod exists before CNI ADD: the operator compiles its policy from it.
    datastore::put(&state.datastore(), &datastore::pod_object(spec, &record.uid, &[]))?;
    // As a kubelet does: a failed ADD is cleaned up with DEL before it is tried again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    let result = loop {
        match run_cni(state, &record, "ADD") {
            Ok(out) => break out,
            Err(PodError::Cni { pod, node, command, detail }) if Instant::now() >= deadline => {
                seen.retain(|d| !detail.starts_with(d.as_str()));
                let earlier = seen.iter().map(|d| format!("\n(earlier attempt: {d})")).collect::<String>();
                return Err(PodError::Cni { pod, node, command, detail: format!("{detail}{earlier}") });
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => {
                // The plugin's JSON error, without the timestamped log line after it.
                if let PodError::Cni { detail, .. } = &e
                    && let Some(json) = detail.split_inclusive('}').next()
                    && !seen.iter().any(|d| d == json)
                    && seen.len() < 3
                {
                    seen.push(json.to_string());
                }
                let _ = run_cni(state, &record, "DEL");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    record.addresses = result_addresses(&result);
    record.address = record.addresses.first().cloned();
    if let Some(saved) = state.pods.iter_mut().find(|p| p.netns == netns) {
        saved.address.clone_from(&record.address);
        saved.addresses.clone_from(&record.addresses);
    }
    state.save()?;
    datastore::put(&state.datastore(), &datastore::pod_object(spec, &record.uid, &record.addresses))?;
    start_server(state, &record, spec)?;
    Ok(record)
}

/// Writes a pod's Pod object again from `spec` (new labels, say, as `kubectl label` would),
/// keeping the uid and address it was plumbed with.
pub fn update(state: &LabState, spec: &PodSpec) -> Result<(), PodError> {
    let record = state.pods.iter().find(|p| p.namespace == spec.namespace && p.name == spec.name);
    let Some(record) = record else {
        return Err(PodError::UnknownPod { pod: format!("{}/{}", spec.namespace, spec.name) });
    };
    datastore::put(&state.datastore(), &datastore::pod_object(spec, &record.uid, &record.addresses))?;
    Ok(())
}

/// Starts `gingham-lab serve` in the pod on its ports and [`PROBE_PORT`].
fn start_server(state: &mut LabState, pod: &PodRecord, spec: &PodSpec) -> Result<(), PodError> {
    let mut ports = vec![format!("tcp:{PROBE_PORT}")];
    ports.extend(spec.ports.iter().map(|p| format!("{}:{}", p.protocol.to_ascii_lowercase(), p.port)));
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &pod.netns]).arg(state.bin_dir.join(LAB)).args([
        "serve",
        "--name",
        &pod.key(),
        "--ports",
        &ports.join(","),
    ]);
    let log = state.logs().join(format!("serve-{}-{}.log", pod.namespace, pod.name));
    let record = process::spawn(&format!("serve {}", pod.key()), &mut command, &log)?;
    state.processes.push(record);
    state.save()?;
    Ok(())
}

/// Removes a pod: its server, CNI DEL, its Pod object and its namespace.
pub fn remove(state: &mut LabState, namespace: &str, name: &str) -> Result<(), PodError> {
    let Some(pod) = state.pods.iter().find(|p| p.namespace == namespace && p.name == name).cloned() else {
        return Ok(());
    };
    let server = format!("serve {}", pod.key());
    for record in state.processes.iter().filter(|p| p.name == server) {
        process::stop(record, Duration::from_secs(2));
    }
    state.processes.retain(|p| p.name != server);
    run_cni(state, &pod, "DEL")?;
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}});
    datastore::remove(&state.datastore(), &object)?;
    topology::delete_netns(&pod.netns)?;
    state.namespaces.retain(|n| *n != pod.netns);
    state.pods.retain(|p| p.netns != pod.netns);
    state.save()?;
    Ok(())
}
