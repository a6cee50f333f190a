//! Host endpoints in the index: each node's host endpoints, and for each the GlobalNetworkPolicies
//! that select it, by hook (Calico's semantics):
//! - only GlobalNetworkPolicies without a `namespaceSelector` select host endpoints (a host
//!   endpoint is in no namespace), by the host endpoint's labels;
//! - normal and `applyOnForward` policies apply to traffic to and from the host (`ingress`,
//!   `egress`); `applyOnForward` ones also to forwarded traffic (`forwardIngress`,
//!   `forwardEgress`);
//! - `preDNAT` policies apply to traffic in (`preDNATIngress`), `doNotTrack` ones untracked in
//!   both directions; their tiers carry the default action Pass, as Calico has no end-of-tier
//!   drop for them. Neither applies to pods.
//!
//! Host endpoints are few (one or a handful per node), so a policy change looks at every host
//! endpoint to find the nodes it touches.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use gingham_crds::api::Wire;
use gingham_crds::api::hostpolicy::HostEndpointPolicy;
use gingham_crds::api::tier::TierDefaultAction;

use super::{Applies, HostMode, PolicyEntry, PolicyIndex, policy_order};

/// A host endpoint as the index holds it: a HostEndpoint object, or a node's automatic one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostEndpointFacts {
    /// The HostEndpoint's name.
    pub name: String,
    /// The interface, `*`, or none (given by `expected_ips` only).
    pub interface_name: Option<String>,
    /// The interface's expected addresses.
    pub expected_ips: Vec<IpAddr>,
    /// Its labels, which policy selectors match.
    pub labels: BTreeMap<String, String>,
    /// Its profiles allow what no policy decides.
    pub default_allow: bool,
}

impl PolicyIndex {
    /// Replaces a node's host endpoints (sorted by name); the node is rebuilt when they changed.
    pub fn set_host_endpoints(&mut self, node: &str, mut endpoints: Vec<HostEndpointFacts>) {
        endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        let old = if endpoints.is_empty() {
            self.host_endpoints.remove(node)
        } else {
            self.host_endpoints.insert(node.to_string(), endpoints.clone())
        };
        if old.unwrap_or_default() != endpoints {
            self.dirty.rebuild.insert(node.to_string());
        }
    }

    /// The nodes with a host endpoint `policy` selects.
    pub(super) fn host_nodes_selected(&self, policy: &PolicyEntry) -> Vec<String> {
        if policy.applies != Applies::Namespaces(None) {
            return Vec::new();
        }
        self.host_endpoints
            .iter()
            .filter(|(_, endpoints)| endpoints.iter().any(|e| policy.selector.matches(&e.labels)))
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// A node's host endpoints with their policy lists.
    pub(super) fn host_endpoint_policies(&self, node: &str) -> Vec<HostEndpointPolicy> {
        self.host_endpoints.get(node).into_iter().flatten().map(|endpoint| self.host_policy(endpoint)).collect()
    }

    fn host_policy(&self, endpoint: &HostEndpointFacts) -> HostEndpointPolicy {
        let mut applying: Vec<&PolicyEntry> = self
            .global_policies
            .iter()
            .filter_map(|name| self.policies.get(name))
            .filter(|p| p.applies == Applies::Namespaces(None) && p.selector.matches(&endpoint.labels))
            .collect();
        applying.sort_by(|a, b| policy_order(a, b));
        let names = |keep: &dyn Fn(&PolicyEntry) -> bool| -> Vec<Arc<str>> {
            applying.iter().filter(|p| keep(p)).map(|p| p.name.clone()).collect()
        };
        let tracked = |p: &PolicyEntry| matches!(p.host, HostMode::Normal | HostMode::ApplyOnForward);
        let forward = |p: &PolicyEntry| p.host == HostMode::ApplyOnForward;
        let pre_dnat = |p: &PolicyEntry| p.host == HostMode::PreDnat;
        let untracked = |p: &PolicyEntry| p.host == HostMode::DoNotTrack;
        let pass = Some(TierDefaultAction::Pass);
        HostEndpointPolicy {
            name: endpoint.name.clone(),
            interface_name: endpoint.interface_name.clone(),
            expected_ips: endpoint.expected_ips.iter().map(|ip| Wire::new(ip.to_string())).collect(),
            default_allow: endpoint.default_allow,
            ingress: self.tiered_as(&names(&|p| tracked(p) && p.ingress), None),
            egress: self.tiered_as(&names(&|p| tracked(p) && p.egress), None),
            pre_dnat_ingress: self.tiered_as(&names(&|p| pre_dnat(p) && p.ingress), pass),
            untracked_ingress: self.tiered_as(&names(&|p| untracked(p) && p.ingress), pass),
            untracked_egress: self.tiered_as(&names(&|p| untracked(p) && p.egress), pass),
            forward_ingress: self.tiered_as(&names(&|p| forward(p) && p.ingress), None),
            forward_egress: self.tiered_as(&names(&|p| forward(p) && p.egress), None),
        }
    }
}
