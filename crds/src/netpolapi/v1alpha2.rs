//! `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy: one cluster-scoped kind with an
//! Admin tier (before NetworkPolicy) and a Baseline tier (after it).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::{Peer, PolicyStatus, PortRange, Subject};

/// A cluster-wide network policy in the Admin or the Baseline tier.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha2",
    kind = "ClusterNetworkPolicy",
    plural = "clusternetworkpolicies",
    shortname = "cnp",
    status = "PolicyStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    /// Admin (before NetworkPolicy) or Baseline (after it).
    pub tier: Tier,
    /// 0 to 1000; lower values are evaluated first within the tier.
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: Subject,
    /// Rules for traffic to the subject, in precedence order (at most 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Rules for traffic from the subject, in precedence order (at most 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
}

/// The tier of a ClusterNetworkPolicy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    /// Evaluated before NetworkPolicy; its decisions cannot be overridden.
    #[default]
    Admin,
    /// Evaluated after NetworkPolicy, only for what NetworkPolicy leaves undecided.
    Baseline,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Accept the traffic: no further rule of this direction is consulted.
    #[default]
    Accept,
    /// Drop the traffic.
    Deny,
    /// Skip the rest of this tier and go on to the next one.
    Pass,
}

/// A rule for traffic to the subject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// A name for observability (at most 100 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What the rule does.
    pub action: Action,
    /// Sources, ORed (at least one).
    #[serde(default)]
    pub from: Vec<Peer>,
    /// Protocol and port matches, ORed; none: any protocol and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ProtocolMatch>>,
}

/// A rule for traffic from the subject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// A name for observability (at most 100 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What the rule does.
    pub action: Action,
    /// Destinations, ORed (at least one).
    #[serde(default)]
    pub to: Vec<Peer>,
    /// Protocol and port matches, ORed; none: any protocol and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ProtocolMatch>>,
}

/// One protocol match: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMatch {
    /// TCP, optionally to a port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ProtocolPorts>,
    /// UDP, optionally to a port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<ProtocolPorts>,
    /// SCTP, optionally to a port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<ProtocolPorts>,
    /// A destination container port by name (pods peers and subjects only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}

/// The ports of one protocol match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolPorts {
    /// The destination port or range; none: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<DestinationPort>,
}

/// A port number or a range: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationPort {
    /// One port, 1 to 65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i32>,
    /// A range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
}
