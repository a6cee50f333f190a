//! The small kernel interface the dataplane needs: list links, addresses, routes, neighbours and FDB
//! entries, read sysctls, and apply [`Op`]s in order. [`super::rtnl::RtNetlink`] is the real thing;
//! `super::fake::FakeNetlink` is an in-memory stand-in for unit tests.

use std::collections::BTreeSet;

use gingham_crds::api::nodenetwork::NodeCapabilities;

use super::batch::BatchError;
use super::diff::Op;
use super::model::{AddressSpec, FdbSpec, LinkState, NeighbourSpec, NexthopSpec, RouteSpec};
use super::observed::Notice;

/// A failed netlink or sysctl operation.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening the netlink socket failed.
    #[error("cannot open a netlink socket: {0}; the agent needs CAP_NET_ADMIN")]
    Connect(#[source] std::io::Error),
    /// Listing kernel objects failed.
    #[error("cannot list {what}: {source}")]
    List {
        /// What was listed.
        what: &'static str,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A change was refused, or its outcome is unknown.
    #[error("cannot {op}: {source}")]
    Apply {
        /// The operation, as text.
        op: String,
        /// The kernel's answer, or why there is none.
        #[source]
        source: BatchError,
    },
    /// A change names a link that does not exist.
    #[error("cannot {op}: link {link} does not exist")]
    MissingLink {
        /// The operation, as text.
        op: String,
        /// The missing link.
        link: String,
    },
    /// Writing a sysctl failed.
    #[error("cannot write {value} to /proc/sys/{path}: {source}")]
    Sysctl {
        /// The path below `/proc/sys`.
        path: String,
        /// The value.
        value: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The fake was told to fail this operation.
    #[cfg(test)]
    #[error("cannot {0}: injected failure")]
    Injected(String),
}

impl NetlinkError {
    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::List { .. } => "list",
            Self::Apply { .. } => "apply",
            Self::MissingLink { .. } => "missing_link",
            Self::Sysctl { .. } => "sysctl",
            #[cfg(test)]
            Self::Injected(_) => "injected",
        }
    }
}

/// The kernel's nexthop objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nexthops {
    /// Those carrying [`super::model::ROUTE_PROTOCOL`].
    pub ours: BTreeSet<NexthopSpec>,
    /// The ids of all the others.
    pub foreign: BTreeSet<u32>,
}

/// Reads and changes the kernel's links, addresses, routes, neighbours, FDB and sysctls.
#[allow(async_fn_in_trait)]
pub trait Netlink {
    /// Every link. A sync reads these first: the reads after it may name devices from this dump.
    async fn links(&mut self) -> Result<Vec<LinkState>, NetlinkError>;
    /// Every IPv4 address.
    async fn addresses(&mut self) -> Result<BTreeSet<AddressSpec>, NetlinkError>;
    /// IPv4 routes in the main table carrying [`super::model::ROUTE_PROTOCOL`].
    async fn routes(&mut self) -> Result<BTreeSet<RouteSpec>, NetlinkError>;
    /// Permanent IPv4 neighbours.
    async fn neighbours(&mut self) -> Result<BTreeSet<NeighbourSpec>, NetlinkError>;
    /// Permanent FDB entries that carry a destination.
    async fn fdb(&mut self) -> Result<BTreeSet<FdbSpec>, NetlinkError>;
    /// Every nexthop object: gingham's, and the ids of the others. Fails on a kernel without
    /// nexthop objects.
    async fn nexthops(&mut self) -> Result<Nexthops, NetlinkError>;
    /// The kernel's notifications (links, addresses, routes, neighbours, FDB, nexthops) received
    /// since the last call, in order, without waiting; [`Notice::Lost`] when some were dropped.
    async fn notices(&mut self) -> Vec<Notice>;
    /// A sysctl's value (below `/proc/sys`), `None` when it cannot be read.
    fn sysctl(&mut self, path: &str) -> Option<String>;
    /// What the kernel supports (IP-in-IP, VXLAN, nexthop objects).
    async fn capabilities(&mut self) -> NodeCapabilities;
    /// Applies the changes in this order, one result per change: a failed change does not stop
    /// the ones after it.
    async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), NetlinkError>>;
}

/// A short description of an operation, for errors and logs.
pub fn describe(op: &Op) -> String {
    match op {
        Op::CreateTunnel(tunnel) => format!("create device {}", tunnel.name),
        Op::SetLink { name, mtu, mac } => format!("set link {name} up (mtu {mtu:?}, mac {mac:?})"),
        Op::DeleteLink(name) => format!("delete device {name}"),
        Op::AddAddress(a) => format!("add address {} to {}", a.address, a.device),
        Op::DeleteAddress(a) => format!("delete address {} from {}", a.address, a.device),
        Op::ReplaceNeighbour(n) => format!("replace neighbour {} lladdr {} dev {}", n.address, n.mac, n.device),
        Op::DeleteNeighbour(n) => format!("delete neighbour {} dev {}", n.address, n.device),
        Op::ReplaceFdb(f) => format!("replace fdb {} dst {} dev {}", f.mac, f.destination, f.device),
        Op::DeleteFdb(f) => format!("delete fdb {} dst {} dev {}", f.mac, f.destination, f.device),
        Op::ReplaceNexthop(n) => format!("replace nexthop {n}"),
        Op::DeleteNexthop(n) => format!("delete nexthop {n}"),
        Op::ReplaceRoute(r) => format!("replace route {r}"),
        Op::DeleteRoute(r) => format!("delete route {r}"),
        Op::WriteSysctl(s) => format!("write {} to {}", s.value, s.path),
    }
}
