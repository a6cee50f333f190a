//! API writes per event: a stand-in for the API server that holds what the operator wrote, and
//! counts the writes the operator's own writer decides on (`datastore::kubernetes::plan::plan`,
//! the function the Kubernetes datastore calls each round) for the objects the engine's changes
//! name, exactly as the controller hands them over.

use std::collections::BTreeMap;

use gingham_crds::api::{GlobalNetworkPolicy, IPAMBlock, IPPool, NetworkPolicy};
use gingham_operator::core::DesiredState;
use gingham_operator::core::engine::Changes;
use gingham_operator::datastore::kubernetes::plan::{Observed, Write, plan};
use gingham_operator::datastore::objects::{node_network, translated_policy_name};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::de::DeserializeOwned;

/// NodeNetworks written per call of the writer while the first apply is replayed, so that the
/// bodies of 10,000 objects are never held at once.
const CHUNK: usize = 250;

/// The largest object written of one kind.
#[derive(Clone, Debug, Default)]
pub(crate) struct Largest {
    /// Objects of the kind written.
    pub(crate) objects: usize,
    /// Bytes of the JSON of the largest.
    pub(crate) bytes: usize,
    /// Its name.
    pub(crate) name: String,
    /// Bytes of the JSON of all of them.
    pub(crate) total: usize,
}

/// The writes of one round, by kind and operation (`apply`, `create`, `status`, `delete`).
pub(crate) type Writes = BTreeMap<(&'static str, &'static str), usize>;

/// What the API server holds of the operator's objects, and the largest object written per kind.
pub(crate) struct ApiServer {
    observed: Observed,
    now: Time,
    largest: BTreeMap<&'static str, Largest>,
}

fn from_body<T: DeserializeOwned>(body: &serde_json::Value) -> Option<T> {
    serde_json::from_value(body.clone()).ok()
}

impl ApiServer {
    /// An API server holding `pools` (whose status the operator writes) and nothing the operator
    /// writes, then given the operator's first apply of `desired` (every object created). The
    /// writer is called with the changes of a few hundred NodeNetworks at a time, so that it never
    /// holds the bodies of every NodeNetwork at once.
    pub(crate) fn load(desired: &DesiredState, pools: Vec<IPPool>) -> Self {
        let pools = pools.into_iter().filter_map(|p| Some((p.metadata.name.clone()?, p))).collect();
        let mut server = Self {
            observed: Observed { pools, ..Observed::default() },
            now: Time(k8s_openapi::jiff::Timestamp::now()),
            largest: BTreeMap::new(),
        };
        let names: Vec<String> = desired.node_networks.keys().cloned().collect();
        let mut first = Changes {
            blocks: desired.blocks.keys().cloned().collect(),
            pool_statuses: desired.pool_statuses.keys().cloned().collect(),
            translated_policies: desired.translated_policies.keys().cloned().collect(),
            agent_daemon_set: desired.agent_daemon_set.is_some(),
            ..Changes::default()
        };
        for chunk in names.chunks(CHUNK) {
            let changes = Changes { node_networks: chunk.iter().cloned().collect(), ..std::mem::take(&mut first) };
            server.write(desired, &changes);
        }
        server
    }

    /// The largest object written so far, by kind.
    pub(crate) fn largest(&self) -> &BTreeMap<&'static str, Largest> {
        &self.largest
    }

    /// Makes the writes the operator makes for one round's `changes`, and counts them.
    pub(crate) fn write(&mut self, desired: &DesiredState, changes: &Changes) -> Writes {
        let writes = plan(desired, &self.observed_of(changes), Some(changes), &self.now);
        let mut counted = Writes::new();
        for write in &writes {
            let target = write.target();
            let op = match write {
                Write::Apply { .. } => "apply",
                Write::Create { .. } => "create",
                Write::ApplyStatus { .. } => "status",
                Write::Delete { .. } => "delete",
            };
            *counted.entry((target.kind, op)).or_default() += 1;
            self.store(desired, write);
        }
        counted
    }

    /// What the Kubernetes datastore hands the writer: the objects `changes` names, as held.
    fn observed_of(&self, changes: &Changes) -> Observed {
        fn pick<K: Ord + Clone, V: Clone>(held: &BTreeMap<K, V>, keys: impl Iterator<Item = K>) -> BTreeMap<K, V> {
            keys.filter_map(|key| Some((key.clone(), held.get(&key)?.clone()))).collect()
        }
        let held = &self.observed;
        // Translated policies are held under their object name (`knp.<name>`), as the watch finds them.
        let policy_names = changes
            .translated_policies
            .iter()
            .map(|(namespace, name)| (namespace.clone(), translated_policy_name(name, &NetworkPolicy::default())));
        Observed {
            node_networks: pick(&held.node_networks, changes.node_networks.iter().cloned()),
            blocks: pick(&held.blocks, changes.blocks.iter().cloned()),
            policies: pick(&held.policies, policy_names),
            global_policies: pick(&held.global_policies, changes.translated_global_policies.iter().cloned()),
            pools: pick(&held.pools, changes.pool_statuses.iter().cloned()),
            daemon_sets: if changes.agent_daemon_set { held.daemon_sets.clone() } else { BTreeMap::new() },
        }
    }

    /// Holds what a write leaves in the API server, and notes its size.
    fn store(&mut self, desired: &DesiredState, write: &Write) {
        let target = write.target().clone();
        let name = target.name.clone();
        let held = &mut self.observed;
        let body = match write {
            Write::Delete { .. } => {
                match target.kind {
                    "NodeNetwork" => drop(held.node_networks.remove(&name)),
                    "IPAMBlock" => drop(held.blocks.remove(&name)),
                    "NetworkPolicy" => drop(held.policies.remove(&(target.namespace.unwrap_or_default(), name))),
                    "GlobalNetworkPolicy" => drop(held.global_policies.remove(&name)),
                    _ => drop(held.daemon_sets.remove(&name)),
                }
                return;
            }
            Write::Apply { body, .. } | Write::Create { body, .. } | Write::ApplyStatus { body, .. } => body,
        };
        let size = serde_json::to_vec(body).map_or(0, |json| json.len());
        let largest = self.largest.entry(target.kind).or_default();
        largest.objects += 1;
        largest.total += size;
        if size > largest.bytes {
            (largest.bytes, largest.name) = (size, name.clone());
        }
        match (write, target.kind) {
            (Write::ApplyStatus { .. }, _) => {
                if let Some(pool) = held.pools.get_mut(&name) {
                    pool.status = body.get("status").and_then(|status| serde_json::from_value(status.clone()).ok());
                }
            }
            // The spec applied is the desired one: held as the operator built it, so that its
            // compiled policies and sets stay shared and 10,000 nodes' copies fit in memory.
            (_, "NodeNetwork") => {
                if let Some(spec) = desired.node_networks.get(&name) {
                    held.node_networks.insert(name.clone(), node_network(&name, spec, None));
                }
            }
            (_, "IPAMBlock") => {
                if let Some(block) = from_body::<IPAMBlock>(body) {
                    held.blocks.insert(name, block);
                }
            }
            (_, "NetworkPolicy") => {
                if let Some(policy) = from_body::<NetworkPolicy>(body) {
                    held.policies.insert((target.namespace.unwrap_or_default(), name), policy);
                }
            }
            (_, "GlobalNetworkPolicy") => {
                if let Some(policy) = from_body::<GlobalNetworkPolicy>(body) {
                    held.global_policies.insert(name, policy);
                }
            }
            _ => {
                if let Some(daemon_set) = from_body::<DaemonSet>(body) {
                    held.daemon_sets.insert(name, daemon_set);
                }
            }
        }
    }
}
