//! The incremental engine: feed it events, read the desired state and what changed.
//!
//! ```text
//! let mut engine = Engine::new(settings);          // or Engine::load(snapshot, settings)
//! engine.apply(Event::Upsert(Object::Pod(pod)));
//! let changed = engine.take_changes();              // write only these
//! let desired = engine.desired();
//! ```
//!
//! Cluster-level objects (pools, nodes, blocks, BGP, Felix configuration, secrets) are few and
//! change rarely: they re-run the cluster stages (pool check, block assignment, BGP topology,
//! per-node routing), which cost O(nodes) and write only the objects whose content changed. Pods,
//! namespaces, policies and the endpoint lists in node reports go through the policy index, which
//! rebuilds only the nodes whose endpoints' policies changed and patches the sets that changed on
//! the nodes that use them. [`crate::core::compute`] is `Engine::from_snapshot`, the oracle the
//! incremental path is tested against.

mod cluster_policies;
mod stages;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::NodeNetworkStatus;

pub use self::store::Event;
use self::store::{Key, Kind, Object, Store};
use super::bgp::NodeBgp;
use super::compile::Tiers;
use super::compile::index::PolicyIndex;
use super::compile::services::service_of;
use super::facts::NodeFacts;
use super::ipam::Assignment;
use super::pools::CheckedPool;
use super::{ClusterSnapshot, DesiredState, ObjectProblem, OperatorSettings};

/// What changed in the desired state since the last [`Engine::take_changes`]. A key whose object
/// is no longer in the desired state was deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// NodeNetworks, by node name.
    pub node_networks: BTreeSet<String>,
    /// Spans, by node name: streamed, never written to the API server.
    pub spans: BTreeSet<String>,
    /// IPAMBlocks, by object name.
    pub blocks: BTreeSet<String>,
    /// Pool statuses, by pool name.
    pub pool_statuses: BTreeSet<String>,
    /// Translated policies, by (namespace, name).
    pub translated_policies: BTreeSet<(String, String)>,
    /// Translated global policies (of the network-policy-api kinds), by name.
    pub translated_global_policies: BTreeSet<String>,
    /// The agent DaemonSet.
    pub agent_daemon_set: bool,
    /// The problem list.
    pub problems: bool,
}

impl Changes {
    /// How many objects these changes write (for metrics and the benchmark).
    pub fn object_count(&self) -> usize {
        self.node_networks.len()
            + self.blocks.len()
            + self.pool_statuses.len()
            + self.translated_policies.len()
            + self.translated_global_policies.len()
            + usize::from(self.agent_daemon_set)
    }
}

/// Where a problem came from, so each source can be replaced on its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Pools,
    Nodes,
    Ipam,
    Bgp,
    Felix,
    DaemonSet,
    Object(Kind, Key),
}

/// Which cluster stages an event requires.
#[derive(Clone, Copy, Debug, Default)]
struct Work {
    pools: bool,
    nodes: bool,
    ipam: bool,
    bgp: bool,
    statuses: bool,
    felix: bool,
    hosts: bool,
}

/// The incremental engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    settings: OperatorSettings,
    store: Store,
    pools: BTreeMap<String, CheckedPool>,
    nodes: BTreeMap<String, NodeFacts>,
    ipam_reports: BTreeMap<String, NodeNetworkStatus>,
    assignment: Assignment,
    bgp: BTreeMap<String, Option<NodeBgp>>,
    index: PolicyIndex,
    /// What `nodes` peers of cluster policies can select.
    node_peers: Vec<super::cluster_policy::translate::NodePeer>,
    /// The translation's name of each cluster policy, by (kind, source name).
    cluster_translations: BTreeMap<(Kind, String), String>,
    tiers: Tiers,
    addresses: BTreeMap<String, BTreeMap<String, u64>>,
    address_totals: BTreeMap<String, u64>,
    block_counts: BTreeMap<String, u32>,
    problems: BTreeMap<Source, Vec<ObjectProblem>>,
    desired: DesiredState,
    changes: Changes,
}

impl Engine {
    /// An engine that has observed nothing yet.
    pub fn new(settings: OperatorSettings) -> Self {
        Self::load(ClusterSnapshot::default(), settings)
    }

    /// An engine loaded with a copy of a whole snapshot in one batch (see [`Engine::load`]).
    pub fn from_snapshot(snapshot: &ClusterSnapshot, settings: OperatorSettings) -> Self {
        Self::load(snapshot.clone(), settings)
    }

    /// An engine loaded with a whole snapshot in one batch. It consumes the snapshot, releasing the
    /// observed objects as it takes them in, so the two are not held in full at the same time. Its
    /// changes list everything.
    pub fn load(snapshot: ClusterSnapshot, settings: OperatorSettings) -> Self {
        let mut engine = Self {
            settings,
            store: Store::load(snapshot),
            pools: BTreeMap::new(),
            nodes: BTreeMap::new(),
            ipam_reports: BTreeMap::new(),
            assignment: Assignment::default(),
            bgp: BTreeMap::new(),
            index: PolicyIndex::batch(),
            node_peers: Vec::new(),
            cluster_translations: BTreeMap::new(),
            tiers: Tiers::default(),
            addresses: BTreeMap::new(),
            address_totals: BTreeMap::new(),
            block_counts: BTreeMap::new(),
            problems: BTreeMap::new(),
            desired: DesiredState::default(),
            changes: Changes::default(),
        };
        engine.tiers = Tiers::new(&engine.store.tiers());
        engine.load_policy_inputs();
        engine.index.finish_batch();
        // No span exists yet: each is built once, whole, when its node's routing is first worked
        // out, so what the batch marked dirty needs no second rebuild.
        engine.index.take_dirty();
        let all = Work { pools: true, nodes: true, ipam: true, bgp: true, statuses: true, felix: true, hosts: true };
        engine.run(all);
        engine
    }

    /// The desired state.
    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    /// The desired state, consuming the engine.
    pub fn into_desired(self) -> DesiredState {
        self.desired
    }

    /// What changed since the last call (or since creation).
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Everything observed, as a snapshot (what [`crate::core::compute`] would be given).
    pub fn snapshot(&self) -> ClusterSnapshot {
        self.store.to_snapshot()
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) {
        let (kind, key, previous, current) = match event {
            Event::Upsert(object) => {
                let (kind, key) = (object.kind(), object.key());
                let previous = self.store.upsert(object);
                let current = self.store.get(kind, &key).cloned();
                (kind, key, previous, current)
            }
            Event::Delete(kind, key) => {
                let previous = self.store.delete(kind, &key);
                (kind, key, previous, None)
            }
        };
        let mut work = Work::default();
        match kind {
            Kind::Pool => work.pools = true,
            Kind::Block => work.ipam = true,
            Kind::Node => work.nodes = true,
            Kind::BgpConfiguration | Kind::BgpPeer | Kind::Secret => work.bgp = true,
            Kind::FelixConfiguration => work.felix = true,
            Kind::NodeStatus => work = self.node_status_changed(&key.1, previous.as_ref(), current.as_ref()),
            Kind::Pod
            | Kind::Namespace
            | Kind::NetworkPolicy
            | Kind::GlobalNetworkPolicy
            | Kind::KubeNetworkPolicy
            | Kind::NetworkSet
            | Kind::GlobalNetworkSet
            | Kind::ServiceAccount
            | Kind::ClusterNetworkPolicy
            | Kind::AdminNetworkPolicy
            | Kind::BaselineAdminNetworkPolicy => {
                self.policy_object_changed(kind, &key, current.as_ref());
            }
            Kind::Tier => self.tiers_changed(),
            Kind::EndpointSlice => {
                let services = [previous.as_ref(), current.as_ref()].into_iter().flatten().filter_map(|o| match o {
                    Object::EndpointSlice(slice) => service_of(slice),
                    _ => None,
                });
                for service in services.collect::<BTreeSet<_>>() {
                    self.service_changed(&service);
                }
            }
            Kind::HostEndpoint => work.hosts = true,
        }
        self.run(work);
    }

    fn node_status_changed(&mut self, node: &str, previous: Option<&Object>, current: Option<&Object>) -> Work {
        let status = |o: Option<&Object>| match o {
            Some(Object::NodeStatus(_, s)) => Some(s.clone()),
            _ => None,
        };
        let (old, new) = (status(previous).unwrap_or_default(), status(current));
        let new_ipam = new.as_ref().map(|s| s.ipam.clone()).unwrap_or_default();
        let new_tunnel = new.as_ref().and_then(|s| s.tunnel_address.clone());
        let new_tunnel6 = new.as_ref().and_then(|s| s.tunnel_address6.clone());
        if old.endpoints != new.as_ref().map(|s| s.endpoints.clone()).unwrap_or_default() {
            self.index.set_node_endpoints(node, new.as_ref().map_or(&[], |s| s.endpoints.as_slice()));
        }
        match &new {
            Some(status) => {
                self.ipam_reports.insert(node.to_string(), ipam_report(status));
            }
            None => {
                self.ipam_reports.remove(node);
            }
        }
        let allocated_changed = old.ipam.allocated != new_ipam.allocated;
        if allocated_changed {
            self.update_addresses(node);
        }
        Work {
            ipam: old.ipam.pressure != new_ipam.pressure
                || old.ipam.capacity != new_ipam.capacity
                || old.tunnel_address != new_tunnel
                || old.tunnel_address6 != new_tunnel6,
            statuses: allocated_changed,
            ..Work::default()
        }
    }
}

/// What block assignment reads of an agent's status: IPAM usage and the tunnel addresses.
fn ipam_report(status: &NodeNetworkStatus) -> NodeNetworkStatus {
    NodeNetworkStatus {
        ipam: status.ipam.clone(),
        tunnel_address: status.tunnel_address.clone(),
        tunnel_address6: status.tunnel_address6.clone(),
        ..NodeNetworkStatus::default()
    }
}

#[cfg(test)]
mod tests;
