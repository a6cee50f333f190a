//! What the last full netlink sync was given, when it left the kernel as desired: a sync that is
//! given the same inputs, with no kernel notification since and no full check due, has nothing
//! to compute or compare (the idle sync of a running agent, once a second). Its cost is then one
//! comparison of the inputs, not a desired state of every remote block and a diff.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::plan::NodePlan;
use super::{NodeView, SyncError};
use crate::endpoint::LocalEndpoint;

/// The inputs and outcome of the last full netlink sync that changed everything it wanted to.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The plan's routing part (no policy).
    plan: NodePlan,
    endpoints: Vec<LocalEndpoint>,
    tunnel_address: Option<Ipv4Addr>,
    tunnel_address6: Option<Ipv6Addr>,
    /// The endpoints (`namespace/pod`) whose plumbing was in place.
    pub plumbed: BTreeSet<String>,
    /// What could not be programmed (the same inputs say the same again).
    pub problems: Vec<SyncError>,
    /// The routes wanted.
    pub routes: usize,
}

impl Settled {
    /// Remembers a view's inputs and what the sync found.
    pub fn new(view: &NodeView<'_>, plumbed: BTreeSet<String>, problems: Vec<SyncError>, routes: usize) -> Self {
        Self {
            plan: view.plan.routing(),
            endpoints: view.endpoints.to_vec(),
            tunnel_address: view.tunnel_address,
            tunnel_address6: view.tunnel_address6,
            plumbed,
            problems,
            routes,
        }
    }

    /// Whether `view` gives the netlink side the same inputs.
    pub fn matches(&self, view: &NodeView<'_>) -> bool {
        self.tunnel_address == view.tunnel_address
            && self.tunnel_address6 == view.tunnel_address6
            && self.endpoints == view.endpoints
            && self.plan.same_routing(view.plan)
    }
}
