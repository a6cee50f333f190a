//! The Kubernetes network-policy-api kinds (`policy.networking.k8s.io`), which gingham reads and
//! translates but does not own: ClusterNetworkPolicy (`v1alpha2`), and AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy (`v1alpha1`), which clusters such as OpenShift 4.x still run.
//!
//! The types follow the CRDs the network-policy-api project publishes (v0.2.0 for
//! ClusterNetworkPolicy, v0.1.7 for the v1alpha1 kinds), standard and experimental channels, so a
//! manifest written for either decodes here. The CRDs themselves come from that project; gingham
//! generates none for this group (see docs/cluster-network-policy.md).

pub mod v1alpha1;
pub mod v1alpha2;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "policy.networking.k8s.io";

/// Pods selected by namespace labels AND pod labels (`pods` subjects and peers, both versions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPod {
    /// Namespaces by label; empty: all namespaces.
    #[serde(default)]
    pub namespace_selector: LabelSelector,
    /// Pods by label within those namespaces; empty: all pods.
    #[serde(default)]
    pub pod_selector: LabelSelector,
}

/// The pods a policy applies to: exactly one field is set (both versions share the shape).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Every pod of the namespaces these labels select (empty: all namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The selected pods of the selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

/// A peer of an ingress or egress rule, in either version: exactly one field is set. Ingress
/// peers have only `namespaces` and `pods`; the schema keeps the others out there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Every pod of the namespaces these labels select (empty: all namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The selected pods of the selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// The addresses (`node.status.addresses`) of the nodes these labels select (empty: all
    /// nodes). Egress only; experimental channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<LabelSelector>,
    /// CIDRs. Egress only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    /// Domain names (Accept/Allow rules only). Egress only; experimental channel; gingham does
    /// not implement it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_names: Option<Vec<String>>,
}

/// An inclusive port range (`start < end`), with the protocol in v1alpha1 (default TCP) and
/// without it in v1alpha2 (the enclosing protocol says).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRange {
    /// TCP, UDP or SCTP (v1alpha1 only; default TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The first port.
    pub start: i32,
    /// The last port.
    pub end: i32,
}

/// The status every kind of the group carries: conditions the implementation reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}

#[cfg(test)]
mod tests;
