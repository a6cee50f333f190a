//! The dataplane: from the desired state (pure) to the kernel (netlink and nftables).
//!
//! The agent's main loop builds a [`NodeView`] and calls [`Dataplane::sync`] on a
//! [`KernelDataplane`] (`KernelDataplane::connect()` inside a tokio runtime), periodically and on
//! every change; everything below it is this module's. One sync is a pipeline:
//!
//! | step | module |
//! |---|---|
//! | desired routes, devices, addresses, neighbours, FDB, sysctls (pure) | [`desired`], [`model`] |
//! | read the kernel, diff, apply in a loss-minimising order | [`netlink`] ([`rtnl`], [`fake`]), [`diff`] |
//! | desired nftables ruleset (pure), render, compare with the listing, apply atomically | [`nft`] |
//! | orchestration and the [`SyncReport`] | [`kernel`] |
//!
//! Known limits: IPv4 only (IPv6 set members and IPv6-only rules are left out). Failsafe inbound
//! ports are accepted first for traffic from pods to their node; the table never filters the
//! node's own traffic or traffic to it from elsewhere, so outbound failsafes and node reachability
//! need no rules. Drift inside a rule is detected only by a running agent (it remembers the rules
//! it listed after writing; after a restart it trusts the structure fingerprint and rule counts).

pub mod desired;
pub mod diff;
pub mod fake;
pub mod kernel;
pub mod model;
pub mod netlink;
pub mod nft;
pub mod rtnl;

#[cfg(test)]
mod fixtures;

pub use kernel::KernelDataplane;
pub use model::ROUTE_PROTOCOL;

use gingham_crds::api::{IPAMBlockSpec, NodeNetworkSpec};

use crate::endpoint::LocalEndpoint;

/// What the dataplane is asked to make true on this node.
#[derive(Clone, Debug)]
pub struct NodeView<'a> {
    /// This node's name.
    pub node_name: &'a str,
    /// The NodeNetwork spec (already validated).
    pub spec: &'a NodeNetworkSpec,
    /// Every IPAMBlock in the cluster (this node's and the others').
    pub blocks: &'a [IPAMBlockSpec],
    /// The pods on this node.
    pub endpoints: &'a [LocalEndpoint],
}

/// What one sync achieved, for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Routes, devices, neighbours and FDB entries match the spec.
    pub routes_programmed: bool,
    /// The nftables ruleset matches the spec.
    pub policy_programmed: bool,
    /// The endpoints (`namespace/pod`) whose routes and policy are both in force.
    pub programmed_endpoints: std::collections::BTreeSet<String>,
    /// What the kernel supports.
    pub capabilities: gingham_crds::api::nodenetwork::NodeCapabilities,
    /// The errors of this sync, if any (the previous state stays in force).
    pub errors: Vec<String>,
}

/// Makes the kernel match a [`NodeView`]. The real implementation uses netlink and nftables; tests
/// may use a fake.
#[allow(async_fn_in_trait)]
pub trait Dataplane {
    /// Makes the kernel match the view, changing only what differs.
    async fn sync(&mut self, view: &NodeView<'_>) -> SyncReport;
}
