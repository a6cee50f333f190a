//! Events the engine consumes, and the observed objects it keeps (the snapshot, by key).

use std::collections::BTreeMap;
use std::sync::Arc;

use gingham_crds::api::{
    BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IPAMBlock,
    IPPool, NetworkPolicy, NetworkSet, NodeNetworkStatus, Tier,
};
use gingham_crds::netpolapi::v1alpha1::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use gingham_crds::netpolapi::v1alpha2::ClusterNetworkPolicy;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use kube::Resource;

use crate::core::ClusterSnapshot;
use crate::core::facts::PodFacts;

/// One observed object.
///
/// Variants differ in size (a Pod is large); events are moved once into the store (which keeps
/// pods as their facts), so boxing each one would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Object {
    /// An IPPool.
    Pool(IPPool),
    /// A BGPConfiguration.
    BgpConfiguration(BGPConfiguration),
    /// A BGPPeer.
    BgpPeer(BGPPeer),
    /// A FelixConfiguration.
    FelixConfiguration(FelixConfiguration),
    /// A gingham NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
    /// A GlobalNetworkPolicy.
    GlobalNetworkPolicy(GlobalNetworkPolicy),
    /// A policy Tier.
    Tier(Tier),
    /// A NetworkSet.
    NetworkSet(NetworkSet),
    /// A GlobalNetworkSet.
    GlobalNetworkSet(GlobalNetworkSet),
    /// A HostEndpoint.
    HostEndpoint(HostEndpoint),
    /// A Kubernetes NetworkPolicy.
    KubeNetworkPolicy(KubeNetworkPolicy),
    /// A ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2).
    ClusterNetworkPolicy(ClusterNetworkPolicy),
    /// An AdminNetworkPolicy (policy.networking.k8s.io/v1alpha1).
    AdminNetworkPolicy(AdminNetworkPolicy),
    /// A BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1).
    BaselineAdminNetworkPolicy(BaselineAdminNetworkPolicy),
    /// A Node.
    Node(Node),
    /// A Pod.
    Pod(Pod),
    /// A Namespace.
    Namespace(Namespace),
    /// A Secret.
    Secret(Secret),
    /// A ServiceAccount (its labels, for `serviceAccounts` matches).
    ServiceAccount(ServiceAccount),
    /// An EndpointSlice (its service's addresses and ports, for `services` matches).
    EndpointSlice(EndpointSlice),
    /// An IPAMBlock.
    Block(IPAMBlock),
    /// A node agent's report: node name and status.
    NodeStatus(String, NodeNetworkStatus),
}

/// The kinds of [`Object`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// IPPool.
    Pool,
    /// BGPConfiguration.
    BgpConfiguration,
    /// BGPPeer.
    BgpPeer,
    /// FelixConfiguration.
    FelixConfiguration,
    /// gingham NetworkPolicy.
    NetworkPolicy,
    /// GlobalNetworkPolicy.
    GlobalNetworkPolicy,
    /// Tier.
    Tier,
    /// NetworkSet.
    NetworkSet,
    /// GlobalNetworkSet.
    GlobalNetworkSet,
    /// HostEndpoint.
    HostEndpoint,
    /// Kubernetes NetworkPolicy.
    KubeNetworkPolicy,
    /// ClusterNetworkPolicy.
    ClusterNetworkPolicy,
    /// AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
    /// Node.
    Node,
    /// Pod.
    Pod,
    /// Namespace.
    Namespace,
    /// Secret.
    Secret,
    /// ServiceAccount.
    ServiceAccount,
    /// EndpointSlice.
    EndpointSlice,
    /// IPAMBlock.
    Block,
    /// A node agent's report (keyed by node name).
    NodeStatus,
}

/// An object's identity: namespace (empty for cluster-scoped kinds) and name.
pub type Key = (String, String);

/// A change the engine consumes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Event {
    /// The object was created or changed.
    Upsert(Object),
    /// The object was deleted.
    Delete(Kind, Key),
}

fn key_of<T: Resource>(object: &T) -> Key {
    (object.meta().namespace.clone().unwrap_or_default(), object.meta().name.clone().unwrap_or_default())
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Pool(_) => Kind::Pool,
            Object::BgpConfiguration(_) => Kind::BgpConfiguration,
            Object::BgpPeer(_) => Kind::BgpPeer,
            Object::FelixConfiguration(_) => Kind::FelixConfiguration,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
            Object::GlobalNetworkPolicy(_) => Kind::GlobalNetworkPolicy,
            Object::Tier(_) => Kind::Tier,
            Object::NetworkSet(_) => Kind::NetworkSet,
            Object::GlobalNetworkSet(_) => Kind::GlobalNetworkSet,
            Object::HostEndpoint(_) => Kind::HostEndpoint,
            Object::KubeNetworkPolicy(_) => Kind::KubeNetworkPolicy,
            Object::ClusterNetworkPolicy(_) => Kind::ClusterNetworkPolicy,
            Object::AdminNetworkPolicy(_) => Kind::AdminNetworkPolicy,
            Object::BaselineAdminNetworkPolicy(_) => Kind::BaselineAdminNetworkPolicy,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Namespace(_) => Kind::Namespace,
            Object::Secret(_) => Kind::Secret,
            Object::ServiceAccount(_) => Kind::ServiceAccount,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Block(_) => Kind::Block,
            Object::NodeStatus(..) => Kind::NodeStatus,
        }
    }

    /// The object's key.
    pub fn key(&self) -> Key {
        match self {
            Object::Pool(o) => key_of(o),
            Object::BgpConfiguration(o) => key_of(o),
            Object::BgpPeer(o) => key_of(o),
            Object::FelixConfiguration(o) => key_of(o),
            Object::NetworkPolicy(o) => key_of(o),
            Object::GlobalNetworkPolicy(o) => key_of(o),
            Object::Tier(o) => key_of(o),
            Object::NetworkSet(o) => key_of(o),
            Object::GlobalNetworkSet(o) => key_of(o),
            Object::HostEndpoint(o) => key_of(o),
            Object::KubeNetworkPolicy(o) => key_of(o),
            Object::ClusterNetworkPolicy(o) => key_of(o),
            Object::AdminNetworkPolicy(o) => key_of(o),
            Object::BaselineAdminNetworkPolicy(o) => key_of(o),
            Object::Node(o) => key_of(o),
            Object::Pod(o) => key_of(o),
            Object::Namespace(o) => key_of(o),
            Object::Secret(o) => key_of(o),
            Object::ServiceAccount(o) => key_of(o),
            Object::EndpointSlice(o) => key_of(o),
            Object::Block(o) => key_of(o),
            Object::NodeStatus(node, _) => (String::new(), node.clone()),
        }
    }
}

/// A snapshot's objects, consumed, kind by kind.
pub fn objects(snapshot: ClusterSnapshot) -> impl Iterator<Item = Object> {
    let s = snapshot;
    s.pools
        .into_iter()
        .map(Object::Pool)
        .chain(s.bgp_configurations.into_iter().map(Object::BgpConfiguration))
        .chain(s.bgp_peers.into_iter().map(Object::BgpPeer))
        .chain(s.felix_configurations.into_iter().map(Object::FelixConfiguration))
        .chain(s.network_policies.into_iter().map(Object::NetworkPolicy))
        .chain(s.global_network_policies.into_iter().map(Object::GlobalNetworkPolicy))
        .chain(s.tiers.into_iter().map(Object::Tier))
        .chain(s.network_sets.into_iter().map(Object::NetworkSet))
        .chain(s.global_network_sets.into_iter().map(Object::GlobalNetworkSet))
        .chain(s.host_endpoints.into_iter().map(Object::HostEndpoint))
        .chain(s.kube_network_policies.into_iter().map(Object::KubeNetworkPolicy))
        .chain(s.cluster_network_policies.into_iter().map(Object::ClusterNetworkPolicy))
        .chain(s.admin_network_policies.into_iter().map(Object::AdminNetworkPolicy))
        .chain(s.baseline_admin_network_policies.into_iter().map(Object::BaselineAdminNetworkPolicy))
        .chain(s.nodes.into_iter().map(Object::Node))
        .chain(s.pods.into_iter().map(Object::Pod))
        .chain(s.namespaces.into_iter().map(Object::Namespace))
        .chain(s.secrets.into_iter().map(Object::Secret))
        .chain(s.service_accounts.into_iter().map(Object::ServiceAccount))
        .chain(s.endpoint_slices.into_iter().map(Object::EndpointSlice))
        .chain(s.blocks.into_iter().map(Object::Block))
        .chain(s.node_statuses.into_iter().map(|(n, st)| Object::NodeStatus(n, st)))
}

/// Every observed object, by kind and key. Pods, the many, are kept as their [`PodFacts`] (what the
/// core reads of them), not as whole objects.
#[derive(Clone, Debug, Default)]
pub struct Store {
    objects: BTreeMap<Kind, BTreeMap<Key, Object>>,
    pods: BTreeMap<Key, Arc<PodFacts>>,
}

impl Store {
    /// Loads a snapshot, consuming it: each object moves in (a pod is reduced to its facts as it
    /// comes), so the snapshot's memory is released while the store fills.
    pub fn load(snapshot: ClusterSnapshot) -> Self {
        let mut store = Self::default();
        for object in objects(snapshot) {
            store.upsert(object);
        }
        store
    }

    /// Stores an object; returns the previous version (of a pod: as rebuilt from its facts).
    pub fn upsert(&mut self, object: Object) -> Option<Object> {
        let key = object.key();
        match object {
            Object::Pod(pod) => {
                let previous = self.pods.insert(key.clone(), Arc::new(PodFacts::from_pod(&pod)));
                previous.map(|facts| Object::Pod(facts.to_pod(&key.0, &key.1)))
            }
            other => self.objects.entry(other.kind()).or_default().insert(key, other),
        }
    }

    /// Removes an object; returns it (a pod as rebuilt from its facts).
    pub fn delete(&mut self, kind: Kind, key: &Key) -> Option<Object> {
        match kind {
            Kind::Pod => self.pods.remove(key).map(|facts| Object::Pod(facts.to_pod(&key.0, &key.1))),
            _ => self.objects.get_mut(&kind).and_then(|objects| objects.remove(key)),
        }
    }

    /// The objects of one kind (pods excepted: see [`Store::pods`]), by key.
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.objects.get(&kind).into_iter().flat_map(|objects| objects.values())
    }

    /// The objects of one kind in one namespace (pods excepted), by key.
    pub fn in_namespace<'a>(&'a self, kind: Kind, namespace: &'a str) -> impl Iterator<Item = &'a Object> {
        let objects = self.objects.get(&kind).into_iter();
        objects
            .flat_map(move |objects| {
                objects.range((namespace.to_string(), String::new())..).take_while(move |((ns, _), _)| ns == namespace)
            })
            .map(|(_, object)| object)
    }

    /// Every pod's facts, by key.
    pub fn pods(&self) -> &BTreeMap<Key, Arc<PodFacts>> {
        &self.pods
    }

    /// Whether the store holds this object.
    pub fn contains(&self, kind: Kind, key: &Key) -> bool {
        match kind {
            Kind::Pod => self.pods.contains_key(key),
            _ => self.objects.get(&kind).is_some_and(|objects| objects.contains_key(key)),
        }
    }

    /// One object (pods excepted: see [`Store::pods`]).
    pub fn get(&self, kind: Kind, key: &Key) -> Option<&Object> {
        self.objects.get(&kind).and_then(|objects| objects.get(key))
    }

    /// The store as a snapshot.
    pub fn to_snapshot(&self) -> ClusterSnapshot {
        let mut s = ClusterSnapshot {
            pods: self.pods.iter().map(|((ns, name), facts)| facts.to_pod(ns, name)).collect(),
            ..ClusterSnapshot::default()
        };
        for object in self.objects.values().flat_map(|objects| objects.values()).cloned() {
            match object {
                Object::Pool(o) => s.pools.push(o),
                Object::BgpConfiguration(o) => s.bgp_configurations.push(o),
                Object::BgpPeer(o) => s.bgp_peers.push(o),
                Object::FelixConfiguration(o) => s.felix_configurations.push(o),
                Object::NetworkPolicy(o) => s.network_policies.push(o),
                Object::GlobalNetworkPolicy(o) => s.global_network_policies.push(o),
                Object::Tier(o) => s.tiers.push(o),
                Object::NetworkSet(o) => s.network_sets.push(o),
                Object::GlobalNetworkSet(o) => s.global_network_sets.push(o),
                Object::HostEndpoint(o) => s.host_endpoints.push(o),
                Object::KubeNetworkPolicy(o) => s.kube_network_policies.push(o),
                Object::ClusterNetworkPolicy(o) => s.cluster_network_policies.push(o),
                Object::AdminNetworkPolicy(o) => s.admin_network_policies.push(o),
                Object::BaselineAdminNetworkPolicy(o) => s.baseline_admin_network_policies.push(o),
                Object::Node(o) => s.nodes.push(o),
                Object::Pod(o) => s.pods.push(o),
                Object::Namespace(o) => s.namespaces.push(o),
                Object::Secret(o) => s.secrets.push(o),
                Object::ServiceAccount(o) => s.service_accounts.push(o),
                Object::EndpointSlice(o) => s.endpoint_slices.push(o),
                Object::Block(o) => s.blocks.push(o),
                Object::NodeStatus(node, status) => {
                    s.node_statuses.insert(node, status);
                }
            }
        }
        s
    }
}

/// Typed views of the store.
macro_rules! typed {
    ($fn_name:ident, $variant:ident, $ty:ty, $kind:ident) => {
        impl Store {
            /// Every object of this kind.
            pub fn $fn_name(&self) -> Vec<$ty> {
                self.all(Kind::$kind)
                    .filter_map(|o| if let Object::$variant(x) = o { Some(x.clone()) } else { None })
                    .collect()
            }
        }
    };
}

typed!(pools, Pool, IPPool, Pool);
typed!(tiers, Tier, Tier, Tier);
typed!(host_endpoints, HostEndpoint, HostEndpoint, HostEndpoint);
typed!(bgp_peers, BgpPeer, BGPPeer, BgpPeer);
typed!(felix_configurations, FelixConfiguration, FelixConfiguration, FelixConfiguration);
typed!(secrets, Secret, Secret, Secret);
typed!(blocks, Block, IPAMBlock, Block);
typed!(bgp_configurations, BgpConfiguration, BGPConfiguration, BgpConfiguration);
