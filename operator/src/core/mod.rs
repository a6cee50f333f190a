//! The pure core: `desired = f(observed)`. No I/O, no kube client, no clock.
//!
//! [`compute`] is the full recompute and the test oracle; the incremental engine must always agree
//! with it.

pub mod bgp;
pub mod cluster_policy;
pub mod compile;
pub mod daemonset;
pub mod engine;
pub mod facts;
pub mod felix;
pub mod hosts;
pub mod ipam;
pub mod netsets;
pub mod pod_pools;
pub mod pools;
pub mod span;
#[cfg(test)]
pub(crate) mod testkit;
pub mod translate;

#[cfg(test)]
mod compute_tests;
#[cfg(test)]
pub(crate) mod policy_tests;

use std::collections::BTreeMap;

use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::{
    BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IPAMBlock,
    IPAMBlockSpec, IPPool, IPPoolStatus, NetworkPolicy, NetworkSet, NodeNetworkSpec, NodeNetworkStatus, Tier,
};
use gingham_crds::netpolapi::v1alpha1::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use gingham_crds::netpolapi::v1alpha2::ClusterNetworkPolicy;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;

/// Everything the operator observes.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// IP pools.
    pub pools: Vec<IPPool>,
    /// BGP configurations (`default` is the one that counts).
    pub bgp_configurations: Vec<BGPConfiguration>,
    /// BGP peers.
    pub bgp_peers: Vec<BGPPeer>,
    /// Felix configurations (`default` and `node.<name>`).
    pub felix_configurations: Vec<FelixConfiguration>,
    /// gingham NetworkPolicies, including the `knp.*` translations the operator wrote earlier.
    pub network_policies: Vec<NetworkPolicy>,
    /// GlobalNetworkPolicies.
    pub global_network_policies: Vec<GlobalNetworkPolicy>,
    /// Policy tiers (the built-in ones exist without an object).
    pub tiers: Vec<Tier>,
    /// NetworkSets (namespaced labelled nets that rule selectors match).
    pub network_sets: Vec<NetworkSet>,
    /// GlobalNetworkSets.
    pub global_network_sets: Vec<GlobalNetworkSet>,
    /// Host endpoints (the automatic ones exist without an object).
    pub host_endpoints: Vec<HostEndpoint>,
    /// Kubernetes NetworkPolicies, to translate.
    pub kube_network_policies: Vec<KubeNetworkPolicy>,
    /// ClusterNetworkPolicies (policy.networking.k8s.io/v1alpha2), to translate.
    pub cluster_network_policies: Vec<ClusterNetworkPolicy>,
    /// AdminNetworkPolicies (policy.networking.k8s.io/v1alpha1), to translate.
    pub admin_network_policies: Vec<AdminNetworkPolicy>,
    /// BaselineAdminNetworkPolicies (policy.networking.k8s.io/v1alpha1), to translate.
    pub baseline_admin_network_policies: Vec<BaselineAdminNetworkPolicy>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Pods (labels, node, named container ports).
    pub pods: Vec<Pod>,
    /// Namespaces (labels).
    pub namespaces: Vec<Namespace>,
    /// Secrets in the operator's namespace (BGP passwords).
    pub secrets: Vec<Secret>,
    /// ServiceAccounts (their labels, for `serviceAccounts` matches).
    pub service_accounts: Vec<ServiceAccount>,
    /// EndpointSlices (the addresses and ports of services, for `services` matches).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// The IPAM blocks assigned so far: the operator's own state, kept stable across recomputes.
    pub blocks: Vec<IPAMBlock>,
    /// Each node agent's last report (endpoints and their addresses, IPAM pressure), by node name.
    pub node_statuses: BTreeMap<String, NodeNetworkStatus>,
}

/// Settings of the operator itself (not from the cluster).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSettings {
    /// The namespace the operator and the agent DaemonSet live in.
    pub namespace: String,
    /// The agent container image.
    pub agent_image: String,
    /// At most this many blocks per node (Calico's default is 20).
    pub max_blocks_per_node: usize,
    /// The operator's stream, as the agent DaemonSet points the agents at it (none: the agents use
    /// the NodeNetwork's copy).
    pub agent_stream: Option<daemonset::AgentStream>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            namespace: "gingham-system".into(),
            agent_image: "ghcr.io/gingham/node-agent:latest".into(),
            max_blocks_per_node: 20,
            agent_stream: None,
        }
    }
}

/// A problem with one object, reported as a status condition and an Event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectProblem {
    /// The object's kind.
    pub kind: String,
    /// The object's namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// A CamelCase reason, e.g. `CIDROverlap`.
    pub reason: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Everything the operator wants to exist.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredState {
    /// One NodeNetwork spec per node, by node name: what is the node's own.
    pub node_networks: BTreeMap<String, NodeNetworkSpec>,
    /// One span per node, by node name (the same nodes): what the node needs from the rest of the
    /// cluster, streamed to its agent and never written to the API server.
    pub spans: BTreeMap<String, NodeSpan>,
    /// Every assigned block, by object name (`naming::block_object_name`).
    pub blocks: BTreeMap<String, IPAMBlockSpec>,
    /// Each pool's status, by pool name.
    pub pool_statuses: BTreeMap<String, IPPoolStatus>,
    /// The `knp.<name>` translations of Kubernetes NetworkPolicies, by (namespace, name).
    pub translated_policies: BTreeMap<(String, String), NetworkPolicy>,
    /// The translations of the network-policy-api kinds, by name (`kube-admin.cnp.<name>` and so
    /// on, see [`cluster_policy`]).
    pub translated_global_policies: BTreeMap<String, GlobalNetworkPolicy>,
    /// The agent DaemonSet, rendered from the merged FelixConfiguration.
    pub agent_daemon_set: Option<DaemonSet>,
    /// Problems to surface as conditions and Events.
    pub problems: Vec<ObjectProblem>,
}

/// The full recompute: everything the operator wants, from everything it observes. It loads the
/// snapshot into an [`engine::Engine`] in one batch; feeding the same objects as events one by one
/// must give the same result (the engine's property test checks that).
pub fn compute(snapshot: &ClusterSnapshot, settings: &OperatorSettings) -> DesiredState {
    engine::Engine::from_snapshot(snapshot, settings.clone()).into_desired()
}
