//! Pure planning for the Kubernetes datastore: from what is desired and what the API server holds,
//! the writes to make. Nothing is written when nothing changed; only objects labelled as the
//! operator's are ever deleted.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::common::conditions_equivalent;
use gingham_crds::api::{GlobalNetworkPolicy, IPAMBlock, IPPool, IPPoolStatus, NetworkPolicy, NodeNetwork};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::ApiResource;
use serde_json::Value;

use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::datastore::objects::{
    ipam_block, is_managed, managed_labels, node_network, pool_status, stamp_conditions, translated_global_policy,
    translated_policy,
};

/// The annotation holding a hash of the DaemonSet the operator last applied (the API server
/// defaults many fields, so the object itself cannot be compared).
pub const DESIRED_HASH_ANNOTATION: &str = "gingham.dev/desired-hash";

/// What the API server holds of the kinds the operator writes.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// NodeNetworks by name.
    pub node_networks: BTreeMap<String, NodeNetwork>,
    /// IPAMBlocks by name.
    pub blocks: BTreeMap<String, IPAMBlock>,
    /// gingham NetworkPolicies by (namespace, name).
    pub policies: BTreeMap<(String, String), NetworkPolicy>,
    /// GlobalNetworkPolicies with translation names (see `core::cluster_policy`), by name.
    pub global_policies: BTreeMap<String, GlobalNetworkPolicy>,
    /// IPPools by name (for their status).
    pub pools: BTreeMap<String, IPPool>,
    /// The agent DaemonSets in the operator's namespace, by name.
    pub daemon_sets: BTreeMap<String, DaemonSet>,
}

/// The object a write is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The kind, for logs and metrics.
    pub kind: &'static str,
    /// Group, version and plural, for the dynamic API.
    pub resource: ApiResource,
    /// The namespace of namespaced kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

/// One write to the API server.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply of the whole object (field manager `gingham-operator`, forced). When the
    /// body carries `metadata.resourceVersion`, the API server checks it as a precondition.
    Apply {
        /// What to apply to.
        target: Target,
        /// The applied configuration.
        body: Value,
    },
    /// Creation of an object that must not exist yet (a 409 means another writer was first).
    Create {
        /// What to create.
        target: Target,
        /// The object.
        body: Value,
    },
    /// Server-side apply of the status subresource.
    ApplyStatus {
        /// What to apply to.
        target: Target,
        /// The applied configuration (name and status only).
        body: Value,
    },
    /// Deletion of an object the operator created and no longer wants.
    Delete {
        /// What to delete.
        target: Target,
    },
}

impl Write {
    /// Whether a 409 is worth retrying as is: not when it reports a failed precondition, which only
    /// a fresh read can resolve.
    pub fn retries_conflicts(&self) -> bool {
        match self {
            Self::Create { .. } => false,
            Self::Apply { body, .. } => body.pointer("/metadata/resourceVersion").is_none(),
            Self::ApplyStatus { .. } | Self::Delete { .. } => true,
        }
    }

    /// The object written.
    pub fn target(&self) -> &Target {
        match self {
            Self::Apply { target, .. }
            | Self::Create { target, .. }
            | Self::ApplyStatus { target, .. }
            | Self::Delete { target } => target,
        }
    }
}

fn target<K: kube::Resource<DynamicType = ()>>(kind: &'static str, namespace: Option<&str>, name: &str) -> Target {
    Target {
        kind,
        resource: ApiResource::erase::<K>(&()),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    }
}

/// The writes that make `observed` match `desired`: for everything, or (with `changes`) for the
/// objects named there only, `observed` then holding only those. `now` stamps conditions whose
/// status changed.
pub fn plan(desired: &DesiredState, observed: &Observed, changes: Option<&Changes>, now: &Time) -> Vec<Write> {
    let mut writes = Vec::new();
    // Serializing these types cannot fail in practice; if it ever does, say so and skip the write.
    let apply = |target: Target, body: Result<Value, serde_json::Error>| match body {
        Ok(body) => Some(Write::Apply { target, body }),
        Err(error) => {
            tracing::error!(kind = target.kind, name = target.name, %error, "cannot serialize an object to write");
            None
        }
    };

    let wanted = |set: Option<&BTreeSet<String>>, name: &String| set.is_none_or(|set| set.contains(name));
    for (name, spec) in desired.node_networks.iter().filter(|(n, _)| wanted(changes.map(|c| &c.node_networks), n)) {
        let current = observed.node_networks.get(name);
        if current.is_none_or(|c| c.spec != *spec || !is_managed(c.metadata.labels.as_ref())) {
            let body = serde_json::to_value(node_network(name, spec, None));
            writes.extend(apply(target::<NodeNetwork>("NodeNetwork", None, name), body));
        }
    }
    // Blocks are written with preconditions, so that a block is never assigned twice even if two
    // replicas briefly both believe they lead: a new block is created (409 if it exists), a
    // changed one is applied at the resourceVersion it was read at (409 if it changed since).
    for (name, spec) in desired.blocks.iter().filter(|(n, _)| wanted(changes.map(|c| &c.blocks), n)) {
        let target = target::<IPAMBlock>("IPAMBlock", None, name);
        let mut object = ipam_block(name, spec);
        match observed.blocks.get(name) {
            None => match serde_json::to_value(object) {
                Ok(body) => writes.push(Write::Create { target, body }),
                Err(error) => tracing::error!(name, %error, "cannot serialize a block to create"),
            },
            Some(c) if c.spec != *spec || !is_managed(c.metadata.labels.as_ref()) => {
                object.metadata.resource_version = c.metadata.resource_version.clone();
                writes.extend(apply(target, serde_json::to_value(object)));
            }
            Some(_) => {}
        }
    }
    let mut wanted_policies = BTreeSet::new();
    let policy_changed = |key: &(String, String)| changes.is_none_or(|c| c.translated_policies.contains(key));
    for (key, policy) in desired.translated_policies.iter().filter(|(key, _)| policy_changed(key)) {
        let object = translated_policy(key, policy);
        let name = object.metadata.name.clone().unwrap_or_default();
        let current = observed.policies.get(&(key.0.clone(), name.clone()));
        if current.is_none_or(|c| {
            c.spec != object.spec
                || c.metadata.owner_references != object.metadata.owner_references
                || !is_managed(c.metadata.labels.as_ref())
        }) {
            let body = serde_json::to_value(&object);
            writes.extend(apply(target::<NetworkPolicy>("NetworkPolicy", Some(&key.0), &name), body));
        }
        wanted_policies.insert((key.0.clone(), name));
    }
    let global_changed = |name: &String| changes.is_none_or(|c| c.translated_global_policies.contains(name));
    for (name, policy) in desired.translated_global_policies.iter().filter(|(name, _)| global_changed(name)) {
        let object = translated_global_policy(name, policy);
        if observed.global_policies.get(name).is_none_or(|c| {
            c.spec != object.spec
                || c.metadata.owner_references != object.metadata.owner_references
                || !is_managed(c.metadata.labels.as_ref())
        }) {
            let body = serde_json::to_value(&object);
            writes.extend(apply(target::<GlobalNetworkPolicy>("GlobalNetworkPolicy", None, name), body));
        }
    }
    for (name, status) in desired.pool_statuses.iter().filter(|(n, _)| wanted(changes.map(|c| &c.pool_statuses), n)) {
        let Some(pool) = observed.pools.get(name) else { continue };
        let status = stamp_conditions(status, pool.status.as_ref(), now);
        if pool.status.as_ref().is_none_or(|current| !pool_status_equivalent(current, &status)) {
            writes.push(Write::ApplyStatus {
                target: target::<IPPool>("IPPool", None, name),
                body: pool_status(name, &status),
            });
        }
    }
    let mut wanted_daemon_sets = BTreeSet::new();
    let daemon_set_changed = changes.is_none_or(|c| c.agent_daemon_set);
    if let Some(daemon_set) = desired.agent_daemon_set.as_ref().filter(|_| daemon_set_changed) {
        let (object, hash) = hashed_daemon_set(daemon_set);
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let current_hash = observed
            .daemon_sets
            .get(&name)
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(DESIRED_HASH_ANNOTATION));
        if current_hash != Some(&hash) {
            let body = serde_json::to_value(&object);
            writes.extend(apply(target::<DaemonSet>("DaemonSet", Some(&namespace), &name), body));
        }
        wanted_daemon_sets.insert(name);
    }

    let delete = |t: Target| Write::Delete { target: t };
    for (name, current) in &observed.node_networks {
        if !desired.node_networks.contains_key(name) && is_managed(current.metadata.labels.as_ref()) {
            writes.push(delete(target::<NodeNetwork>("NodeNetwork", None, name)));
        }
    }
    for (name, current) in &observed.blocks {
        if !desired.blocks.contains_key(name) && is_managed(current.metadata.labels.as_ref()) {
            writes.push(delete(target::<IPAMBlock>("IPAMBlock", None, name)));
        }
    }
    for ((namespace, name), current) in &observed.policies {
        let key = (namespace.clone(), name.clone());
        if !wanted_policies.contains(&key) && is_managed(current.metadata.labels.as_ref()) {
            writes.push(delete(target::<NetworkPolicy>("NetworkPolicy", Some(namespace), name)));
        }
    }
    for (name, current) in &observed.global_policies {
        if !desired.translated_global_policies.contains_key(name) && is_managed(current.metadata.labels.as_ref()) {
            writes.push(delete(target::<GlobalNetworkPolicy>("GlobalNetworkPolicy", None, name)));
        }
    }
    for (name, current) in &observed.daemon_sets {
        if !wanted_daemon_sets.contains(name) && is_managed(current.metadata.labels.as_ref()) {
            let namespace = current.metadata.namespace.as_deref();
            writes.push(delete(target::<DaemonSet>("DaemonSet", namespace, name)));
        }
    }
    writes
}

/// Whether two pool statuses say the same thing, ignoring condition timestamps.
fn pool_status_equivalent(a: &IPPoolStatus, b: &IPPoolStatus) -> bool {
    a.observed_generation == b.observed_generation
        && a.blocks_in_use == b.blocks_in_use
        && a.addresses_in_use == b.addresses_in_use
        && conditions_equivalent(&a.conditions, &b.conditions)
}

/// The DaemonSet to apply, labelled and annotated with a hash of its content.
fn hashed_daemon_set(daemon_set: &DaemonSet) -> (DaemonSet, String) {
    let mut object = daemon_set.clone();
    object.metadata.labels.get_or_insert_with(BTreeMap::new).extend(managed_labels());
    object.status = None;
    let text = serde_json::to_string(&object).unwrap_or_default();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let hash = format!("{hash:016x}");
    object.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(DESIRED_HASH_ANNOTATION.into(), hash.clone());
    (object, hash)
}
