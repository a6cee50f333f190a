//! `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy (Allow, Deny, Pass; before
//! NetworkPolicy) and BaselineAdminNetworkPolicy (Allow, Deny; after NetworkPolicy; a singleton
//! named `default`).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::{Peer, PolicyStatus, PortRange, Subject};

/// The only name a BaselineAdminNetworkPolicy may have.
pub const BASELINE_NAME: &str = "default";

/// A cluster-wide policy evaluated before NetworkPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha1",
    kind = "AdminNetworkPolicy",
    plural = "adminnetworkpolicies",
    shortname = "anp",
    status = "PolicyStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct AdminNetworkPolicySpec {
    /// 0 to 1000; lower values are evaluated first.
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: Subject,
    /// Rules for traffic to the subject, in precedence order (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Rules for traffic from the subject, in precedence order (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

/// The cluster's default policy, evaluated after NetworkPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha1",
    kind = "BaselineAdminNetworkPolicy",
    plural = "baselineadminnetworkpolicies",
    shortname = "banp",
    status = "PolicyStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct BaselineAdminNetworkPolicySpec {
    /// The pods the policy applies to.
    pub subject: Subject,
    /// Rules for traffic to the subject, in precedence order (at most 100; no Pass).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Rules for traffic from the subject, in precedence order (at most 100; no Pass).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

/// What a matching rule does. BaselineAdminNetworkPolicy has no `Pass`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Allow the traffic, even when NetworkPolicy would deny it.
    #[default]
    Allow,
    /// Deny the traffic.
    Deny,
    /// Skip the remaining AdminNetworkPolicy rules; NetworkPolicy, then the baseline, decide.
    Pass,
}

/// A rule of either direction: `from` for ingress, `to` for egress (the other is empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// A name for observability (at most 100 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What the rule does.
    pub action: Action,
    /// Sources of an ingress rule, ORed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Peer>,
    /// Destinations of an egress rule, ORed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Peer>,
    /// Destination ports, ORed; none: any port of any protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PolicyPort>>,
}

/// One port match: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    /// A protocol and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<PortNumber>,
    /// A container port by name (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_port: Option<String>,
    /// A protocol and port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortRange>,
}

/// A protocol (default TCP) and port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortNumber {
    /// TCP, UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// 1 to 65535.
    pub port: i32,
}
