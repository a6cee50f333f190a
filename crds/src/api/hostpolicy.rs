//! The contract for host endpoints: what the operator computes for each of a node's host
//! endpoints and the agent enforces. The policies themselves are the shared compiled policies of
//! the span; a host endpoint names them in tiered lists, one list per hook and direction.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::nodenetwork::TierPolicies;
use super::value::Wire;

/// One host endpoint of the node and the policies of each of its hooks.
///
/// Every list is evaluated as an endpoint's list is ([`TierPolicies`]); what happens when the
/// list is empty or every tier passed differs by hook, as in Calico:
/// - `ingress`/`egress` (traffic to and from the host itself): allowed when `defaultAllow`,
///   else dropped (failsafe ports are open before any policy);
/// - `forwardIngress`/`forwardEgress` (`applyOnForward` policies, traffic forwarded in or out
///   through the interface): allowed;
/// - `preDnatIngress` and `untrackedIngress`/`untrackedEgress`: undecided, the packet goes on to
///   the next hook. The operator writes their tiers with the default action `Pass` (Calico has
///   no end-of-tier drop for these), so only a rule's Deny drops and only a rule's Allow allows.
///   An untracked Allow skips connection tracking and every later policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostEndpointPolicy {
    /// The HostEndpoint's name.
    pub name: String,
    /// The interface, or `*` for every interface of the node but the pods' and `lo`. Absent
    /// for an endpoint given by `expectedIPs` only, which the agent reports and does not enforce
    /// yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// The interface's expected addresses.
    #[serde(default, rename = "expectedIPs", skip_serializing_if = "Vec::is_empty")]
    pub expected_ips: Vec<Wire<IpAddr>>,
    /// Its profiles allow what no policy decides (Calico's `projectcalico-default-allow`).
    #[serde(default)]
    pub default_allow: bool,
    /// Normal policies, traffic into the host through the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<TierPolicies>,
    /// Normal policies, traffic from the host out of the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<TierPolicies>,
    /// `preDNAT` policies (ingress only), before DNAT, for all traffic in through the interface.
    #[serde(default, rename = "preDNATIngress", skip_serializing_if = "Vec::is_empty")]
    pub pre_dnat_ingress: Vec<TierPolicies>,
    /// `doNotTrack` policies, traffic in through the interface (raw prerouting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untracked_ingress: Vec<TierPolicies>,
    /// `doNotTrack` policies, traffic out of the interface (raw output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untracked_egress: Vec<TierPolicies>,
    /// `applyOnForward` policies, traffic forwarded in through the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_ingress: Vec<TierPolicies>,
    /// `applyOnForward` policies, traffic forwarded out of the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_egress: Vec<TierPolicies>,
}

impl HostEndpointPolicy {
    /// Every policy name of every list.
    pub fn policy_names(&self) -> impl Iterator<Item = &String> {
        [
            &self.ingress,
            &self.egress,
            &self.pre_dnat_ingress,
            &self.untracked_ingress,
            &self.untracked_egress,
            &self.forward_ingress,
            &self.forward_egress,
        ]
        .into_iter()
        .flatten()
        .flat_map(|tier| &tier.policies)
    }
}
