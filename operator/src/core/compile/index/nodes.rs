//! Per-node output: the policy part of a node's span, and which sets and policies each node uses
//! (so a change reaches exactly the nodes it affects).

use std::collections::BTreeSet;
use std::sync::Arc;

use gingham_crds::api::nodenetwork::{EndpointPolicy, TierPolicies};
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::tier::TierDefaultAction;

use super::{PolicyIndex, SetId};
use crate::core::pod_pools::pod_pools;

impl PolicyIndex {
    /// Builds the policy part of a node's span (its endpoints, their policies and the sets those
    /// use; no BGP sessions) and records which sets and policies the node now uses.
    pub fn build_node(&mut self, node: &str) -> NodeSpan {
        self.refresh_views();
        let mut base = NodeSpan::default();
        let mut used_policies: BTreeSet<Arc<str>> = BTreeSet::new();
        for (name, endpoint) in self.endpoints.get(node).into_iter().flatten() {
            used_policies.extend(endpoint.ingress.iter().cloned());
            used_policies.extend(endpoint.egress.iter().cloned());
            // The Pod's UID; without a Pod object, the one its agent reported.
            let facts = self.pods.get(name);
            let uid = facts.and_then(|facts| facts.uid.clone()).or_else(|| endpoint.uid.clone());
            // The pools its annotations (or its namespace's) ask for; their problems go on the
            // Pod or the Namespace (see the engine).
            let inherited = self.namespace_pools.get(&endpoint.namespace).cloned().unwrap_or_default();
            let [ipv4_pools, ipv6_pools] =
                facts.map(|facts| pod_pools(facts, &inherited, &self.pools)).unwrap_or_default();
            base.endpoints.push(EndpointPolicy {
                name: name.clone(),
                uid,
                ingress: self.tiered(&endpoint.ingress),
                egress: self.tiered(&endpoint.egress),
                ipv4_pools,
                ipv6_pools,
            });
        }
        base.host_endpoints = self.host_endpoint_policies(node);
        for host in &base.host_endpoints {
            used_policies.extend(
                host.policy_names()
                    .filter_map(|name| self.policies.get_key_value(name.as_str()))
                    .map(|(k, _)| k.clone()),
            );
        }
        let mut used_sets: BTreeSet<SetId> = BTreeSet::new();
        for name in &used_policies {
            let Some(policy) = self.policies.get(name) else { continue };
            base.policies.push(policy.compiled.clone());
            used_sets.extend(self.policy_sets.get(name).into_iter().flatten());
        }
        base.ip_sets = used_sets.iter().filter_map(|id| self.sets.get(id)).flat_map(|s| s.views.clone()).collect();
        base.ip_sets.sort_by(|a, b| a.name.cmp(&b.name));
        self.record_usage(node, used_sets, used_policies);
        base
    }

    /// An endpoint's policy list (in evaluation order, tier by tier) grouped by tier.
    fn tiered(&self, policies: &[Arc<str>]) -> Vec<TierPolicies> {
        self.tiered_as(policies, None)
    }

    /// The same, with every tier's default action replaced by `default_action` when one is given
    /// (Pass for the untracked and pre-DNAT lists of host endpoints).
    pub(super) fn tiered_as(
        &self,
        policies: &[Arc<str>],
        default_action: Option<TierDefaultAction>,
    ) -> Vec<TierPolicies> {
        let mut tiers: Vec<TierPolicies> = Vec::new();
        for name in policies {
            let Some(tier) = self.policies.get(name).map(|policy| &policy.tier) else { continue };
            match tiers.last_mut() {
                Some(last) if last.tier == tier.name => last.policies.push(name.to_string()),
                _ => tiers.push(TierPolicies {
                    tier: tier.name.clone(),
                    default_action: default_action.unwrap_or(tier.default_action),
                    policies: vec![name.to_string()],
                }),
            }
        }
        tiers
    }

    /// Forgets what a node uses (the node is gone).
    pub fn forget_node(&mut self, node: &str) {
        self.record_usage(node, BTreeSet::new(), BTreeSet::new());
    }

    fn record_usage(&mut self, node: &str, sets: BTreeSet<SetId>, policies: BTreeSet<Arc<str>>) {
        let old_sets = self.node_sets.remove(node).unwrap_or_default();
        for id in old_sets.difference(&sets) {
            if let Some(nodes) = self.set_nodes.get_mut(id) {
                nodes.remove(node);
                if nodes.is_empty() {
                    self.set_nodes.remove(id);
                }
            }
        }
        for id in sets.difference(&old_sets) {
            self.set_nodes.entry(*id).or_default().insert(node.to_string());
        }
        let old_policies = self.node_policies.remove(node).unwrap_or_default();
        for name in old_policies.difference(&policies) {
            if let Some(nodes) = self.policy_nodes.get_mut(name) {
                nodes.remove(node);
                if nodes.is_empty() {
                    self.policy_nodes.remove(name);
                }
            }
        }
        for name in policies.difference(&old_policies) {
            self.policy_nodes.entry(name.clone()).or_default().insert(node.to_string());
        }
        if !sets.is_empty() {
            self.node_sets.insert(node.to_string(), sets);
        }
        if !policies.is_empty() {
            self.node_policies.insert(node.to_string(), policies);
        }
    }
}
