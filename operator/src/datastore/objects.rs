//! The objects the operator writes, built the same way for every datastore: named, labelled as
//! managed by the operator, with the spec or status the core computed.

use std::collections::BTreeMap;

use gingham_crds::api::{
    API_VERSION, GlobalNetworkPolicy, IPAMBlock, IPAMBlockSpec, IPPoolStatus, NetworkPolicy, NodeNetwork,
    NodeNetworkSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

/// The field manager of every server-side apply, and the value of the managed-by label.
pub const MANAGER: &str = "gingham-operator";
/// The label that marks objects the operator created (and may therefore delete).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The prefix of translated Kubernetes NetworkPolicies.
pub const KNP_PREFIX: &str = "knp.";

/// The operator's labels.
pub fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGER.to_string())])
}

/// Whether labels mark an object as the operator's.
pub fn is_managed(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels.and_then(|l| l.get(MANAGED_BY_LABEL)).is_some_and(|v| v == MANAGER)
}

/// A NodeNetwork with its spec (and, for the file datastore, its generation).
pub fn node_network(name: &str, spec: &NodeNetworkSpec, generation: Option<i64>) -> NodeNetwork {
    let mut object = NodeNetwork::new(name, spec.clone());
    object.metadata.labels = Some(managed_labels());
    object.metadata.generation = generation;
    object
}

/// An IPAMBlock.
pub fn ipam_block(name: &str, spec: &IPAMBlockSpec) -> IPAMBlock {
    let mut object = IPAMBlock::new(name, spec.clone());
    object.metadata.labels = Some(managed_labels());
    object
}

/// The object name of a translated policy: the core's name when it set one, else `knp.<source>`.
pub fn translated_policy_name(key_name: &str, policy: &NetworkPolicy) -> String {
    match policy.metadata.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ if key_name.starts_with(KNP_PREFIX) => key_name.to_string(),
        _ => format!("{KNP_PREFIX}{key_name}"),
    }
}

/// A translated policy, named and namespaced, with the operator's labels added to the core's.
pub fn translated_policy(key: &(String, String), policy: &NetworkPolicy) -> NetworkPolicy {
    let mut object = policy.clone();
    object.metadata.name = Some(translated_policy_name(&key.1, policy));
    object.metadata.namespace = Some(key.0.clone());
    object.metadata.labels.get_or_insert_with(BTreeMap::new).extend(managed_labels());
    object.metadata.resource_version = None;
    object.metadata.managed_fields = None;
    object
}

/// A translated global policy (of a network-policy-api kind), named, with the operator's labels
/// added to the core's.
pub fn translated_global_policy(name: &str, policy: &GlobalNetworkPolicy) -> GlobalNetworkPolicy {
    let mut object = policy.clone();
    object.metadata.name = Some(name.to_string());
    object.metadata.labels.get_or_insert_with(BTreeMap::new).extend(managed_labels());
    object.metadata.resource_version = None;
    object.metadata.managed_fields = None;
    object
}

/// An IPPool carrying only its name and status (the status subresource's body, and the file
/// datastore's `status/ippools/<pool>.yaml`).
pub fn pool_status(name: &str, status: &IPPoolStatus) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "IPPool",
        "metadata": { "name": name },
        "status": status,
    })
}

/// Keeps each condition's transition time when its status did not change since `current`; stamps
/// `now` otherwise (the core has no clock).
pub fn stamp_conditions(desired: &IPPoolStatus, current: Option<&IPPoolStatus>, now: &Time) -> IPPoolStatus {
    let mut status = desired.clone();
    for condition in &mut status.conditions {
        let previous = current.and_then(|c| c.conditions.iter().find(|p| p.type_ == condition.type_));
        condition.last_transition_time = match previous {
            Some(p) if p.status == condition.status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
    }
    status
}
