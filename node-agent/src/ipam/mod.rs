//! Node-local IPAM: pod addresses from the node's blocks, persisted under the state directory,
//! keyed by CNI container id and interface: an allocation belongs to the container that made it,
//! and carries the Pod's UID when the runtime passed one.

mod blocks;
mod lock;
mod store;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use blocks::BlockSet;
pub use lock::LOCK_TIMEOUT;
pub use store::{IpamStore, PRESSURE_PERCENT};

use crate::endpoint::LocalEndpoint;

/// An IPAM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Reading or locking the state failed.
    #[error("IPAM state {path}: {source}; check that the state directory exists and is writable by root")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the IPAM lock and did not let go in time.
    #[error(
        "the IPAM lock {path} is held by {holder} and was not released within {waited:?}; that process is stuck or is not gingham's: check it and stop it (only root can open the lock: the state directory is 0700)"
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long the call waited.
        waited: std::time::Duration,
        /// Who holds the lock, as far as `/proc/locks` tells.
        holder: String,
    },
    /// Writing the state failed.
    #[error(transparent)]
    Write(#[from] gingham_datastore::atomic::AtomicWriteError),
    /// The state file does not parse; it is left alone so no address is handed out twice.
    #[error("IPAM state {path} is corrupt ({reason}); repair or remove it by hand (pods keep their addresses)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// Every address is taken.
    #[error(
        "no free address in the node's blocks [{blocks}] ({allocated} allocated); the operator assigns another block when it sees IPAM pressure, try again later"
    )]
    Exhausted {
        /// The node's blocks.
        blocks: String,
        /// How many addresses are allocated.
        allocated: usize,
    },
    /// No allocation exists for the container.
    #[error("no address is allocated to container {container_id}; run ADD first")]
    NotFound {
        /// The CNI container id.
        container_id: String,
    },
}

impl IpamError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::LockTimeout { .. } => "lock_timeout",
            Self::Write(_) => "write",
            Self::Corrupt { .. } => "corrupt",
            Self::Exhausted { .. } => "exhausted",
            Self::NotFound { .. } => "not_found",
        }
    }
}

/// What an ADD asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRequest {
    /// The CNI container id.
    pub container_id: String,
    /// The interface inside the pod (`eth0`).
    pub ifname: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The Pod's `metadata.uid` (`K8S_POD_UID` in CNI_ARGS), when the runtime passed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// A CNI attachment that still exists (from `cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The CNI container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface inside the pod.
    pub ifname: String,
}

/// The IPAM handle of a node's tunnel address (Calico's is `vxlan-tunnel-addr-<node>`; gingham's
/// one tunnel address serves both the VXLAN device and `tunl0`).
pub fn tunnel_handle(node: &str) -> String {
    format!("tunnel-addr-{node}")
}

/// The node's tunnel address (VTEP and `tunl0`), allocated from its blocks like a pod's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelAllocation {
    /// The IPAM handle ([`tunnel_handle`]).
    pub handle: String,
    /// The address.
    pub address: Ipv4Addr,
    /// When it was handed out (seconds since the Unix epoch).
    #[serde(default)]
    pub allocated_at: u64,
}

/// One address handed to one pod interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The CNI container id.
    pub container_id: String,
    /// The interface inside the pod.
    pub ifname: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The Pod's `metadata.uid`, when the runtime passed it (policy is matched by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The host-side veth.
    pub interface: String,
    /// The pod's address.
    pub address: Ipv4Addr,
    /// The veth exists: the dataplane programs this endpoint.
    #[serde(default)]
    pub ready: bool,
    /// When the address was handed out (seconds since the Unix epoch).
    #[serde(default)]
    pub allocated_at: u64,
}

impl Allocation {
    fn new(request: &AllocationRequest, address: Ipv4Addr) -> Self {
        Self {
            container_id: request.container_id.clone(),
            ifname: request.ifname.clone(),
            namespace: request.namespace.clone(),
            pod: request.pod.clone(),
            uid: request.uid.clone(),
            interface: gingham_crds::naming::endpoint_interface_name(&request.namespace, &request.pod),
            address,
            ready: false,
            allocated_at: unix_now(),
        }
    }

    /// Seconds since the address was handed out.
    pub fn age_seconds(&self) -> u64 {
        unix_now().saturating_sub(self.allocated_at)
    }

    fn matches(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && self.ifname == ifname
    }

    /// The endpoint the dataplane programs for this allocation.
    pub fn endpoint(&self) -> LocalEndpoint {
        LocalEndpoint {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            uid: self.uid.clone(),
            container_id: self.container_id.clone(),
            interface: self.interface.clone(),
            address: self.address,
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
