//! The dataplane: from the desired state (pure) to the kernel (netlink and nftables).
//!
//! The agent's main loop builds a [`plan::NodePlan`] once per revision of its inputs (the
//! NodeNetwork, the node's span and the IPAMBlocks), wraps it with the endpoints in a [`NodeView`]
//! and calls
//! [`Dataplane::sync`] on a
//! [`KernelDataplane`] (`KernelDataplane::connect()` inside a tokio runtime), periodically and on
//! every change; everything below it is this module's. One sync is a pipeline:
//!
//! | step | module |
//! |---|---|
//! | decode the inputs once, report what does not decode (pure) | [`plan`] |
//! | desired routes, devices, addresses, neighbours, FDB, sysctls (pure) | [`desired`], [`model`] |
//! | remote blocks through one nexthop object per remote node and family, stable ids (pure) | [`nexthop`] |
//! | the kernel as last dumped, kept current by its notifications (pure) | [`observed`] ([`notify`] reads them) |
//! | an idle sync (same inputs, no notification) skips compute and compare | [`settled`] |
//! | read the kernel, diff, apply in a loss-minimising order | [`netlink`] ([`rtnl`], [`batch`], [`wire`]; `fake` in unit tests), [`diff`] |
//! | desired nftables ruleset (pure), render, compare with the listing, apply atomically | [`nft`] |
//! | orchestration and the [`SyncReport`] | [`kernel`] |
//!
//! Known limits: routes, devices, neighbours, FDB entries and nexthops are of both families; the
//! nftables table is IPv4 only (IPv6 set members and IPv6-only rules are left out). Failsafe inbound
//! ports are accepted first for traffic from pods to their node; the table never filters the
//! node's own traffic or traffic to it from elsewhere, so outbound failsafes and node reachability
//! need no rules. Drift inside a rule is detected only by a running agent (it remembers the rules
//! it listed after writing; after a restart it trusts the structure fingerprint and rule counts).

pub mod batch;
pub mod desired;
pub mod diff;
#[cfg(test)]
pub mod fake;
pub mod kernel;
pub mod model;
pub mod netlink;
pub mod nexthop;
pub mod nft;
pub mod notify;
pub mod observed;
pub mod plan;
pub mod rtnl;
pub mod settled;
pub mod wire;

#[cfg(test)]
mod fixtures;

pub use kernel::KernelDataplane;
pub use model::ROUTE_PROTOCOL;

use crate::endpoint::LocalEndpoint;
use plan::NodePlan;

/// What the dataplane is asked to make true on this node.
#[derive(Clone, Debug)]
pub struct NodeView<'a> {
    /// The spec, the span and the IPAMBlocks of this revision, decoded once.
    pub plan: &'a NodePlan,
    /// The pods on this node.
    pub endpoints: &'a [LocalEndpoint],
    /// This node's tunnel address (VTEP and `tunl0`), allocated through its IPAM; `None` when no
    /// pool encapsulates or none could be allocated.
    pub tunnel_address: Option<std::net::Ipv4Addr>,
    /// This node's IPv6 VTEP address (on `vxlan6.gingham`), allocated through its IPAM from
    /// `spec.tunnel.blocks6`; `None` when no IPv6 pool uses VXLAN or none could be allocated.
    pub tunnel_address6: Option<std::net::Ipv6Addr>,
}

/// What one sync achieved, for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Routes, devices, neighbours and FDB entries match the spec.
    pub routes_programmed: bool,
    /// The nftables ruleset matches the spec and the span (false while the span is not known).
    pub policy_programmed: bool,
    /// The endpoints (`namespace/pod`) whose routes and policy are both in force.
    pub programmed_endpoints: std::collections::BTreeSet<String>,
    /// The endpoints (`namespace/pod`) whose compiled policy this sync put in force, with the Pod
    /// UID it was compiled for. Policy is dispatched by interface name, so it holds from the moment
    /// an endpoint's veth exists (for a Pod of that UID). Empty when the nftables step failed (the
    /// previous rules stay, but nothing is vouched for).
    pub policy_endpoints: std::collections::BTreeMap<String, Option<String>>,
    /// What the kernel supports.
    pub capabilities: gingham_crds::api::nodenetwork::NodeCapabilities,
    /// The errors of this sync, if any (the previous state stays in force).
    pub errors: Vec<SyncError>,
    /// The size of the state this sync asked the kernel to hold.
    pub sizes: DesiredSizes,
}

/// The size of a desired state, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DesiredSizes {
    /// Routes gingham wants (pods whose veth exists, blocks, remote blocks).
    pub routes: usize,
    /// Rules in the desired nftables table.
    pub rules: usize,
    /// Set and verdict-map elements in the desired nftables table.
    pub set_elements: usize,
}

/// The label of [`SyncError::span_unknown`]: a state to wait out, not a failure to count.
pub const SPAN_UNKNOWN: &str = "span_unknown";

/// One thing a sync could not do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncError {
    /// A stable short label for metrics: the failing netlink or nft error's `label()`,
    /// `unprogrammable` for a part of the spec this host cannot program, `undecodable` for a
    /// value that did not decode, or [`SPAN_UNKNOWN`] while policy waits for the node's span.
    pub label: &'static str,
    /// What failed and what to do.
    pub message: String,
}

impl SyncError {
    /// A part of the spec this host cannot program (see [`desired::problems`]).
    pub fn unprogrammable(message: String) -> Self {
        Self { label: "unprogrammable", message }
    }

    /// A value of the inputs that did not decode, and what was left out for it (see [`plan`]).
    pub fn undecodable(message: String) -> Self {
        Self { label: "undecodable", message }
    }

    /// Policy is not programmed because the node's span is not known yet ([`SPAN_UNKNOWN`]).
    pub fn span_unknown() -> Self {
        Self {
            label: SPAN_UNKNOWN,
            message: "policy waits for this node's span (from the operator's stream or --span-file); the nftables table is left as it is".into(),
        }
    }
}

impl From<netlink::NetlinkError> for SyncError {
    fn from(error: netlink::NetlinkError) -> Self {
        Self { label: error.label(), message: error.to_string() }
    }
}

impl From<nft::apply::NftError> for SyncError {
    fn from(error: nft::apply::NftError) -> Self {
        Self { label: error.label(), message: error.to_string() }
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Makes the kernel match a [`NodeView`]. The real implementation uses netlink and nftables; tests
/// may use a fake.
#[allow(async_fn_in_trait)]
pub trait Dataplane {
    /// Makes the kernel match the view, changing only what differs.
    async fn sync(&mut self, view: &NodeView<'_>) -> SyncReport;
}
