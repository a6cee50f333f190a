//! The lab's state file: everything `up` created, so that `down` removes exactly that.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::family::family_of;
use gingham_crds::api::IpFamily;

/// Where labs keep their state unless told otherwise: `/run/gingham-lab/<prefix>`.
pub const STATE_ROOT: &str = "/run/gingham-lab";

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("state file {path} is not a lab state ({source}); remove it after `gingham-lab down --prefix P`")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is, e.g. `agent node-1`.
    pub name: String,
    /// Its PID (also its process group: the lab starts every process in its own group).
    pub pid: i32,
    /// Its start time in clock ticks (`/proc/PID/stat` field 22), so a reused PID is never killed.
    pub start_time: u64,
}

/// A node of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its primary underlay address with prefix length: IPv4 when the lab has IPv4, else IPv6.
    pub address: String,
    /// Its IPv6 underlay address with prefix length, when the lab has IPv6 (on an IPv6-only lab the
    /// same as `address`).
    #[serde(default)]
    pub address6: Option<String>,
    /// Its subnet's name.
    pub subnet: String,
    /// The veth's name inside the underlay namespace.
    pub underlay_link: String,
    /// The agent's state directory, CNI socket and BIRD directory live here.
    pub dir: PathBuf,
}

impl NodeRecord {
    /// Its underlay address of `family`, without prefix length.
    pub fn ip(&self, family: IpFamily) -> Option<&str> {
        [Some(&self.address), self.address6.as_ref()]
            .into_iter()
            .flatten()
            .find(|a| family_of(a) == family)
            .and_then(|a| a.split('/').next())
    }
}

/// A pod of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// The pod name.
    pub name: String,
    /// Its Kubernetes namespace.
    pub namespace: String,
    /// Its node.
    pub node: String,
    /// Its network namespace.
    pub netns: String,
    /// The CNI container id (one per sandbox: a pod re-created under its name gets another).
    pub container_id: String,
    /// The Pod object's `metadata.uid`, passed to CNI as `K8S_POD_UID` (empty in older states).
    #[serde(default)]
    pub uid: String,
    /// The first address CNI ADD returned (the primary: IPv4 when the pod has one).
    pub address: Option<String>,
    /// Every address CNI ADD returned, one per family.
    #[serde(default)]
    pub addresses: Vec<String>,
}

impl PodRecord {
    /// Its address of `family`, without prefix length.
    pub fn ip(&self, family: IpFamily) -> Option<&str> {
        match crate::family::address_of(&self.addresses, family) {
            Some(address) => Some(address),
            // A state written before dual-stack has the one address only.
            None => self.address.as_deref().filter(|a| family_of(a) == family).and_then(|a| a.split('/').next()),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An underlay subnet: a bridge with an IPv4 CIDR, an IPv6 CIDR, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    /// The subnet's name.
    pub name: String,
    /// Its IPv4 CIDR.
    pub cidr: Option<String>,
    /// Its IPv6 CIDR.
    pub cidr6: Option<String>,
}

/// Everything a lab created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The unique prefix of every namespace the lab owns.
    pub prefix: String,
    /// The state directory (this file, logs, agent dirs, the datastore).
    pub state_dir: PathBuf,
    /// Where the gingham binaries are.
    pub bin_dir: PathBuf,
    /// Network namespaces, in creation order.
    pub namespaces: Vec<String>,
    /// Processes, in start order.
    pub processes: Vec<ProcessRecord>,
    /// Nodes.
    pub nodes: Vec<NodeRecord>,
    /// Pods.
    pub pods: Vec<PodRecord>,
    /// Underlay subnets.
    pub subnets: Vec<SubnetRecord>,
    /// How the operator runs: its replicas and the stream's transport.
    #[serde(default)]
    pub operator: crate::stream::OperatorSpec,
}

impl LabState {
    /// A fresh state for a prefix.
    pub fn new(prefix: &str, state_dir: &Path, bin_dir: &Path) -> Self {
        Self { prefix: prefix.into(), state_dir: state_dir.into(), bin_dir: bin_dir.into(), ..Self::default() }
    }

    /// The state file's path in a state directory.
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("lab.json")
    }

    /// The default state directory of a prefix.
    pub fn default_dir(prefix: &str) -> PathBuf {
        Path::new(STATE_ROOT).join(prefix)
    }

    /// The file datastore directory.
    pub fn datastore(&self) -> PathBuf {
        self.state_dir.join("datastore")
    }

    /// The directory of process logs.
    pub fn logs(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// Writes the state atomically (temp file and rename).
    pub fn save(&self) -> Result<(), StateError> {
        let path = Self::file(&self.state_dir);
        let tmp = self.state_dir.join(".lab.json.tmp");
        let io = |source| StateError::Io { path: path.clone(), source };
        std::fs::create_dir_all(&self.state_dir).map_err(io)?;
        let text =
            serde_json::to_string_pretty(self).map_err(|source| StateError::Parse { path: path.clone(), source })?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Reads the state of a state directory; `None` when there is none.
    pub fn load(state_dir: &Path) -> Result<Option<Self>, StateError> {
        let path = Self::file(state_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|source| StateError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The families the lab's underlay carries (every subnet has the same), IPv4 first.
    pub fn families(&self) -> Vec<IpFamily> {
        let Some(subnet) = self.subnets.first() else { return vec![IpFamily::IPv4] };
        [(IpFamily::IPv4, subnet.cidr.is_some()), (IpFamily::IPv6, subnet.cidr6.is_some())]
            .into_iter()
            .filter_map(|(family, present)| present.then_some(family))
            .collect()
    }
}
