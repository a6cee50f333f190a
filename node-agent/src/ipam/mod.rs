//! Node-local IPAM: pod addresses from the node's blocks of both families, persisted under the
//! state directory, keyed by CNI container id and interface: an allocation belongs to the
//! container that made it, holds one address per family the pod gets, and carries the Pod's UID
//! when the runtime passed one.

mod blocks;
mod choice;
mod lock;
mod store;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use gingham_crds::api::IpFamily;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use blocks::BlockSet;
pub use choice::{Assign, FamilyRequest, RequestedPools, assign_field, choose, pools_annotation};
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
    /// Another process holds the IPAM lock (one for both families) and did not let go in time.
    #[error(
        "the IPAM lock {path} (for the IPv4 and IPv6 addresses alike) is held by {holder} and was not released within {waited:?}; that process is stuck or is not gingham's: check it and stop it (only root can open the lock: the state directory is 0700)"
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
    /// Every address of a family is taken.
    #[error(
        "no free {family} address in the node's blocks [{blocks}] ({allocated} addresses of both families allocated); the operator assigns another block when it sees IPAM pressure, try again later"
    )]
    Exhausted {
        /// The family.
        family: IpFamily,
        /// The node's blocks of the family that were tried.
        blocks: String,
        /// How many addresses are allocated.
        allocated: usize,
    },
    /// The CNI configuration asks for a family the node has no block of.
    #[error(
        "the CNI configuration asks for an {family} address ({field}) but the node has no {family} block; set {field} to \"false\", or give the node an {family} address and an {family} pool that selects it"
    )]
    NoBlockOfFamily {
        /// The family.
        family: IpFamily,
        /// The option that asks for it.
        field: &'static str,
    },
    /// The pod's pool annotation names pools the node has no block of.
    #[error(
        "the pod's annotation {annotation} names {family} pools [{}] the node has no block of; name a pool whose nodeSelector selects this node, or schedule the pod elsewhere", list(.pools)
    )]
    NoBlockInPools {
        /// The family.
        family: IpFamily,
        /// The annotation (the pod's or its namespace's).
        annotation: &'static str,
        /// The pools it names, as CIDRs.
        pools: Vec<IpNet>,
    },
    /// The pod's pool annotation names something the operator did not resolve to a pool.
    #[error(
        "the pod's annotation {annotation} names {value:?}, which is no usable {family} IPPool (the operator reports it on the Pod); fix the annotation or create the pool"
    )]
    UnresolvedPool {
        /// The family.
        family: IpFamily,
        /// The annotation.
        annotation: &'static str,
        /// The value as the annotation wrote it.
        value: String,
    },
    /// The node has no blocks at all (or all are being released).
    #[error(
        "the node has no blocks to hand out addresses from; the operator assigns them from the pools that select the node, check `kubectl get nodenetworks` and the IPPools' status"
    )]
    NoBlocks,
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
            Self::NoBlockOfFamily { .. } => "no_block_of_family",
            Self::NoBlockInPools { .. } => "no_block_in_pools",
            Self::NoBlocks => "no_blocks",
            Self::UnresolvedPool { .. } => "unresolved_pool",
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
    /// One address of each of these families, from their pools ([`choose`]).
    pub families: Vec<FamilyRequest>,
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

/// The IPAM handle of a node's tunnel address of `family`: `tunnel-addr-<node>` (IPv4; Calico's
/// is `vxlan-tunnel-addr-<node>`; gingham's one IPv4 tunnel address serves both the VXLAN device
/// and `tunl0`) and `tunnel-addr-v6-<node>` (the IPv6 VTEP, `vxlan-v6.gingham`).
pub fn tunnel_handle(family: IpFamily, node: &str) -> String {
    match family {
        IpFamily::IPv4 => format!("tunnel-addr-{node}"),
        IpFamily::IPv6 => format!("tunnel-addr-v6-{node}"),
    }
}

/// A tunnel address of the node (IPv4: VTEP and `tunl0`; IPv6: VTEP), allocated from its blocks
/// like a pod's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelAllocation {
    /// The IPAM handle ([`tunnel_handle`]).
    pub handle: String,
    /// The address (an IPv4 one reads as it was written before dual-stack).
    pub address: IpAddr,
    /// When it was handed out (seconds since the Unix epoch).
    #[serde(default)]
    pub allocated_at: u64,
}

/// The node's tunnel addresses, one per family that encapsulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelAddresses {
    /// The IPv4 tunnel address (VTEP and `tunl0`).
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 VTEP address.
    pub ipv6: Option<Ipv6Addr>,
}

/// The addresses handed to one pod interface, one per family it gets.
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
    /// The pod's IPv4 address (every allocation written before dual-stack has one, and reads
    /// unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// The veth exists: the dataplane programs this endpoint.
    #[serde(default)]
    pub ready: bool,
    /// When the address was handed out (seconds since the Unix epoch).
    #[serde(default)]
    pub allocated_at: u64,
}

impl Allocation {
    /// An allocation of `addresses` (at most one per family) for `request`.
    fn new(request: &AllocationRequest, addresses: &[IpAddr]) -> Self {
        let address = addresses.iter().find_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        });
        let address6 = addresses.iter().find_map(|a| match a {
            IpAddr::V4(_) => None,
            IpAddr::V6(a) => Some(*a),
        });
        Self {
            container_id: request.container_id.clone(),
            ifname: request.ifname.clone(),
            namespace: request.namespace.clone(),
            pod: request.pod.clone(),
            uid: request.uid.clone(),
            interface: gingham_crds::naming::endpoint_interface_name(&request.namespace, &request.pod),
            address,
            address6,
            ready: false,
            allocated_at: unix_now(),
        }
    }

    /// Every address of the allocation, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.address.map(IpAddr::V4).into_iter().chain(self.address6.map(IpAddr::V6)).collect()
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
            address6: self.address6,
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `a, b, c`, for error messages.
fn list<T: ToString>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
