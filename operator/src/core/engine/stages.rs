//! The engine's stages: cluster stages (pools, nodes, blocks, BGP, Felix, routing), the policy
//! objects, and writing their results into the desired state while recording what changed.

use gingham_crds::api::nodenetwork::PoolRouting;
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::{BGPConfigurationSpec, Cidr, HostEndpoint, IpFamily, NodeNetworkSpec, Wire};
use gingham_crds::naming::block_object_name;
use gingham_crds::validate::validate_felix_configuration;

use super::store::{Key, Kind, Object};
use super::{Engine, Source, Work, ipam_report};
use crate::core::bgp::{BgpInput, topology};
use crate::core::cluster_policy::is_translated_name;
use crate::core::compile::services::{ServiceEndpoints, service_of};
use crate::core::compile::{Tiers, global_name, global_policy_entry, namespaced_name, network_policy_entry};
use crate::core::facts::{NodeFacts, namespace_labels, pool_annotations};
use crate::core::felix::{agent_settings, default_config, merged_for, policy_settings, tunnel_settings};
use crate::core::hosts::{auto_create, host_endpoint_facts, node_host_endpoints};
use crate::core::ipam::{IpamInput, assign, blocks_per_pool};
use crate::core::netsets::NetSetFacts;
use crate::core::pod_pools::annotation_problems;
use crate::core::pools::{attribute_addresses, check_pools, pool_statuses};
use crate::core::translate::{PREFIX, translate};
use crate::core::{ObjectProblem, daemonset};
use ipnet::IpNet;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};

fn namespace_or_default(namespace: &str) -> &str {
    if namespace.is_empty() { "default" } else { namespace }
}

impl Engine {
    /// Runs the cluster stages an event requires, then applies what the policy index says.
    pub(super) fn run(&mut self, work: Work) {
        if work.pools {
            let (checked, problems) = check_pools(&self.store.pools());
            self.pools = checked;
            self.set_problems(Source::Pools, problems);
            self.pods_pools();
        }
        if work.nodes {
            self.read_nodes();
            self.refresh_node_peers();
        }
        let ipam = work.pools || work.nodes || work.ipam;
        if ipam {
            self.assign_blocks();
        }
        if work.nodes || work.bgp {
            self.bgp_topology();
        }
        if work.felix {
            self.felix_configuration();
        }
        if ipam || work.statuses {
            self.pool_statuses();
        }
        if work.nodes || work.felix || work.hosts {
            self.host_endpoints();
        }
        if ipam || work.bgp || work.felix {
            self.refresh_routing();
        }
        self.apply_policy_changes();
    }

    fn read_nodes(&mut self) {
        let mut problems = Vec::new();
        self.nodes = self
            .store
            .all(Kind::Node)
            .filter_map(|o| if let Object::Node(node) = o { Some(node) } else { None })
            .map(|node| {
                let (facts, mut found) = NodeFacts::from_node(node);
                problems.append(&mut found);
                (facts.name.clone(), facts)
            })
            .collect();
        self.set_problems(Source::Nodes, problems);
    }

    fn assign_blocks(&mut self) {
        let existing = self.store.blocks();
        let assignment = assign(&IpamInput {
            pools: &self.pools,
            nodes: &self.nodes,
            existing: &existing,
            statuses: &self.ipam_reports,
            max_blocks_per_node: self.settings.max_blocks_per_node,
        });
        for (name, spec) in &assignment.blocks {
            if self.desired.blocks.get(name) != Some(spec) {
                self.changes.blocks.insert(name.clone());
            }
        }
        for name in self.desired.blocks.keys().filter(|n| !assignment.blocks.contains_key(*n)) {
            self.changes.blocks.insert(name.clone());
        }
        self.set_problems(Source::Ipam, assignment.problems.clone());
        self.desired.blocks = assignment.blocks.clone();
        self.block_counts = blocks_per_pool(&self.desired.blocks);
        self.assignment = assignment;
        self.addresses.clear();
        self.address_totals.clear();
        let reporting: Vec<String> = self.ipam_reports.keys().cloned().collect();
        for node in reporting {
            self.update_addresses(&node);
        }
    }

    /// Re-attributes one node's reported address use to its blocks' pools.
    pub(super) fn update_addresses(&mut self, node: &str) {
        for (pool, count) in self.addresses.remove(node).unwrap_or_default() {
            if let Some(total) = self.address_totals.get_mut(&pool) {
                *total -= count;
            }
        }
        let allocated = self.ipam_reports.get(node).map_or(0, |s| s.ipam.allocated);
        let pools: Vec<&str> = self
            .assignment
            .node_blocks
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|cidr| self.desired.blocks.get(&block_object_name(cidr.as_str())).map(|b| b.pool.as_str()))
            .collect();
        let shares = attribute_addresses(allocated, &pools);
        for (pool, count) in &shares {
            *self.address_totals.entry(pool.clone()).or_insert(0) += count;
        }
        if !shares.is_empty() {
            self.addresses.insert(node.to_string(), shares);
        }
    }

    fn pool_statuses(&mut self) {
        let statuses = pool_statuses(&self.pools, &self.block_counts, &self.address_totals);
        for (name, status) in &statuses {
            if self.desired.pool_statuses.get(name) != Some(status) {
                self.changes.pool_statuses.insert(name.clone());
            }
        }
        for name in self.desired.pool_statuses.keys().filter(|n| !statuses.contains_key(*n)) {
            self.changes.pool_statuses.insert(name.clone());
        }
        self.desired.pool_statuses = statuses;
    }

    fn bgp_topology(&mut self) {
        let config = self
            .store
            .bgp_configurations()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some("default"))
            .map(|c| c.spec)
            .unwrap_or_else(BGPConfigurationSpec::default);
        let (peers, secrets) = (self.store.bgp_peers(), self.store.secrets());
        let input = BgpInput {
            config: &config,
            nodes: &self.nodes,
            peers: &peers,
            secrets: &secrets,
            namespace: &self.settings.namespace,
        };
        let (bgp, problems) = topology(&input);
        self.bgp = bgp;
        self.set_problems(Source::Bgp, problems);
    }

    fn felix_configuration(&mut self) {
        let configs = self.store.felix_configurations();
        let mut problems = Vec::new();
        for config in &configs {
            if let Err(errors) = validate_felix_configuration(config) {
                problems.extend(errors.iter().map(|e| ObjectProblem {
                    kind: "FelixConfiguration".into(),
                    namespace: None,
                    name: config.metadata.name.clone().unwrap_or_default(),
                    reason: "InvalidConfiguration".into(),
                    message: e.to_string(),
                }));
            }
        }
        self.set_problems(Source::Felix, problems);
        match daemonset::render(default_config(&configs), &self.settings) {
            Ok(rendered) => {
                self.set_problems(Source::DaemonSet, Vec::new());
                if self.desired.agent_daemon_set.as_ref() != Some(&rendered) {
                    self.desired.agent_daemon_set = Some(rendered);
                    self.changes.agent_daemon_set = true;
                }
            }
            Err(error) => {
                let problem = ObjectProblem {
                    kind: "FelixConfiguration".into(),
                    namespace: None,
                    name: "default".into(),
                    reason: "RenderFailed".into(),
                    message: error.to_string(),
                };
                self.set_problems(Source::DaemonSet, vec![problem]);
            }
        }
    }

    /// Works out every node's host endpoints (objects and automatic ones) and hands them to the
    /// policy index, which rebuilds the nodes whose endpoints changed.
    fn host_endpoints(&mut self) {
        let mut objects = Vec::new();
        let stored: Vec<HostEndpoint> = self.store.host_endpoints();
        let mut reported = Vec::new();
        for object in stored {
            let (facts, problems) = host_endpoint_facts(&object);
            objects.extend(facts.map(|facts| (object.spec.node.clone(), facts)));
            let source = Source::Object(Kind::HostEndpoint, Object::HostEndpoint(object).key());
            reported.push(source.clone());
            self.set_problems(source, problems);
        }
        let gone: Vec<Source> = self
            .problems
            .keys()
            .filter(|source| matches!(source, Source::Object(Kind::HostEndpoint, _)) && !reported.contains(source))
            .cloned()
            .collect();
        for source in gone {
            self.set_problems(source, Vec::new());
        }
        let configs = self.store.felix_configurations();
        for (name, facts) in &self.nodes {
            let endpoints = node_host_endpoints(facts, &objects, auto_create(&merged_for(&configs, name)));
            self.index.set_host_endpoints(name, endpoints);
        }
    }

    /// Rewrites every node's NodeNetwork and the BGP sessions of its span, writing only what
    /// changed; adds NodeNetworks and spans for new nodes and drops those of deleted ones.
    fn refresh_routing(&mut self) {
        let configs = self.store.felix_configurations();
        let pools: Vec<PoolRouting> = self
            .pools
            .values()
            .filter(|p| p.is_valid())
            .map(|p| PoolRouting {
                name: p.name.clone(),
                cidr: Wire::new(p.spec.cidr.as_str()),
                ipip_mode: p.spec.ipip_mode,
                vxlan_mode: p.spec.vxlan_mode,
                nat_outgoing: p.spec.nat_outgoing,
                disable_bgp_export: p.spec.disable_bgp_export,
            })
            .collect();
        let gone: Vec<String> =
            self.desired.node_networks.keys().filter(|n| !self.nodes.contains_key(*n)).cloned().collect();
        for node in gone {
            self.desired.node_networks.remove(&node);
            self.desired.spans.remove(&node);
            self.index.set_host_endpoints(&node, Vec::new());
            self.index.forget_node(&node);
            self.changes.node_networks.insert(node.clone());
            self.changes.spans.insert(node);
        }
        for (name, facts) in &self.nodes {
            let felix = merged_for(&configs, name);
            let mut tunnel = tunnel_settings(&felix);
            if let Some(node_tunnel) = self.assignment.tunnels.get(name) {
                tunnel.blocks.clone_from(&node_tunnel.v4.blocks);
                tunnel.vtep_mac.clone_from(&node_tunnel.v4.vtep_mac);
                tunnel.blocks6.clone_from(&node_tunnel.v6.blocks);
                tunnel.vtep_mac_v6.clone_from(&node_tunnel.v6.vtep_mac);
            }
            let bgp = self.bgp.get(name).cloned().flatten();
            let address = |family| facts.address_of(family).map(|a| Wire::from(Cidr(a)));
            let spec = NodeNetworkSpec {
                address: address(IpFamily::IPv4),
                address6: address(IpFamily::IPv6),
                blocks: self.assignment.node_blocks.get(name).cloned().unwrap_or_default(),
                pools: pools.clone(),
                tunnel,
                bgp: bgp.as_ref().map(|bgp| bgp.spec.clone()),
                policy: policy_settings(&felix),
                agent: agent_settings(&felix),
            };
            let peers = bgp.map(|bgp| bgp.peers).unwrap_or_default();
            if self.desired.node_networks.get(name) != Some(&spec) {
                self.desired.node_networks.insert(name.clone(), spec);
                self.changes.node_networks.insert(name.clone());
            }
            match self.desired.spans.get_mut(name) {
                Some(span) if span.bgp_peers == peers => {}
                Some(span) => {
                    span.bgp_peers = peers;
                    self.changes.spans.insert(name.clone());
                }
                None => {
                    let span = NodeSpan { bgp_peers: peers, ..self.index.build_node(name) };
                    self.desired.spans.insert(name.clone(), span);
                    self.changes.spans.insert(name.clone());
                }
            }
        }
    }

    /// Rebuilds the spans of the nodes the policy index marked, and patches refreshed sets in the
    /// others.
    fn apply_policy_changes(&mut self) {
        let dirty = self.index.take_dirty();
        for node in &dirty.rebuild {
            let Some(span) = self.desired.spans.get_mut(node) else { continue };
            let rebuilt = self.index.build_node(node);
            if (&span.endpoints, &span.policies, &span.ip_sets, &span.host_endpoints)
                != (&rebuilt.endpoints, &rebuilt.policies, &rebuilt.ip_sets, &rebuilt.host_endpoints)
            {
                *span = NodeSpan { bgp_peers: std::mem::take(&mut span.bgp_peers), ..rebuilt };
                self.changes.spans.insert(node.clone());
            }
        }
        for id in dirty.refresh {
            let Some(views) = self.index.set_views(id) else { continue };
            for node in self.index.set_users(id).filter(|n| !dirty.rebuild.contains(*n)) {
                let Some(span) = self.desired.spans.get_mut(node) else { continue };
                for view in views {
                    let Ok(position) = span.ip_sets.binary_search_by(|s| s.name.cmp(&view.name)) else {
                        continue;
                    };
                    let set = &mut span.ip_sets[position];
                    if *set != *view {
                        *set = view.clone();
                        self.changes.spans.insert(node.clone());
                    }
                }
            }
        }
    }

    /// Takes in the tiers as they are now; when any changed (one came or went, or its order or
    /// default action changed), every policy is compiled again, since each names its tier.
    pub(super) fn tiers_changed(&mut self) {
        let tiers = Tiers::new(&self.store.tiers());
        if tiers == self.tiers {
            return;
        }
        self.tiers = tiers;
        let kinds = [
            Kind::NetworkPolicy,
            Kind::GlobalNetworkPolicy,
            Kind::KubeNetworkPolicy,
            Kind::ClusterNetworkPolicy,
            Kind::AdminNetworkPolicy,
            Kind::BaselineAdminNetworkPolicy,
        ];
        for kind in kinds {
            let objects: Vec<Object> = self.store.all(kind).cloned().collect();
            for object in objects {
                self.policy_object_changed(kind, &object.key(), Some(&object));
            }
        }
    }

    /// Feeds namespaces, pods, node reports and policies to the index (the batch load).
    pub(super) fn load_policy_inputs(&mut self) {
        self.refresh_node_peers();
        let pods: Vec<Key> = self.store.pods().keys().cloned().collect();
        for key in pods {
            self.policy_object_changed(Kind::Pod, &key, None);
        }
        let services: BTreeSet<(String, String)> = self
            .store
            .all(Kind::EndpointSlice)
            .filter_map(|o| if let Object::EndpointSlice(slice) = o { service_of(slice) } else { None })
            .collect();
        for service in services {
            self.service_changed(&service);
        }
        let kinds = [
            Kind::Namespace,
            Kind::NodeStatus,
            Kind::NetworkPolicy,
            Kind::GlobalNetworkPolicy,
            Kind::KubeNetworkPolicy,
            Kind::NetworkSet,
            Kind::GlobalNetworkSet,
            Kind::ClusterNetworkPolicy,
            Kind::AdminNetworkPolicy,
            Kind::BaselineAdminNetworkPolicy,
        ];
        for kind in kinds {
            let keys: Vec<Key> = self.store.all(kind).map(Object::key).collect();
            for key in keys {
                let Some(object) = self.store.get(kind, &key).cloned() else { continue };
                if let Object::NodeStatus(node, status) = &object {
                    self.index.set_node_endpoints(node, &status.endpoints);
                    self.ipam_reports.insert(node.clone(), ipam_report(status));
                } else {
                    self.policy_object_changed(kind, &key, Some(&object));
                }
            }
        }
    }

    /// Feeds one pod, namespace or policy change to the index.
    pub(super) fn policy_object_changed(&mut self, kind: Kind, key: &Key, current: Option<&Object>) {
        let namespace = namespace_or_default(&key.0);
        match (kind, current) {
            (Kind::Pod, _) => {
                let facts = self.store.pods().get(key).cloned();
                let pools = facts.as_ref().map(|f| f.pool_annotations.clone()).unwrap_or_default();
                self.annotation_problems(Kind::Pod, key, &pools);
                let facts = facts.map(|facts| {
                    let account = facts.service_account.as_ref().map(|name| (key.0.clone(), name.clone()));
                    let labels = account.and_then(|account| match self.store.get(Kind::ServiceAccount, &account) {
                        Some(Object::ServiceAccount(sa)) => sa.metadata.labels.as_ref(),
                        _ => None,
                    });
                    facts.with_service_account(labels)
                });
                self.index.set_pod(&format!("{namespace}/{}", key.1), facts);
            }
            (Kind::ServiceAccount, _) => {
                // Its pods see its labels as pseudo-labels: re-feed them (the index moves only
                // those whose labels changed, in the sets that care).
                let pods: Vec<Key> = self
                    .store
                    .pods()
                    .range((key.0.clone(), String::new())..)
                    .take_while(|((ns, _), _)| *ns == key.0)
                    .filter(|(_, facts)| facts.service_account.as_deref() == Some(key.1.as_str()))
                    .map(|(pod, _)| pod.clone())
                    .collect();
                for pod in pods {
                    self.policy_object_changed(Kind::Pod, &pod, None);
                }
            }
            (Kind::Namespace, current) => {
                let (labels, pools) = match current {
                    Some(Object::Namespace(ns)) => (Some(namespace_labels(ns)), pool_annotations(&ns.metadata)),
                    _ => (None, [None, None]),
                };
                self.index.set_namespace(&key.1, labels);
                self.annotation_problems(Kind::Namespace, key, &pools);
                self.index.set_namespace_pools(&key.1, pools);
            }
            (Kind::NetworkSet | Kind::GlobalNetworkSet, current) => {
                let (set_key, facts, problems) = match current {
                    Some(Object::NetworkSet(set)) => NetSetFacts::of_network_set(set),
                    Some(Object::GlobalNetworkSet(set)) => NetSetFacts::of_global_network_set(set),
                    _ => {
                        let namespace = (kind == Kind::NetworkSet).then(|| namespace.to_string());
                        ((namespace, key.1.clone()), NetSetFacts::default(), Vec::new())
                    }
                };
                self.set_problems(Source::Object(kind, key.clone()), problems);
                self.index.set_network_set(set_key, current.is_some().then_some(facts));
            }
            (Kind::NetworkPolicy, _) if key.1.starts_with(PREFIX) => {}
            (Kind::GlobalNetworkPolicy, _) if is_translated_name(&key.1) => {}
            (Kind::ClusterNetworkPolicy | Kind::AdminNetworkPolicy | Kind::BaselineAdminNetworkPolicy, current) => {
                self.cluster_policy_changed(kind, key, current);
            }
            (Kind::NetworkPolicy, Some(Object::NetworkPolicy(policy))) => {
                let (entry, problems) = network_policy_entry(policy, &self.tiers);
                self.set_problems(Source::Object(kind, key.clone()), problems);
                match entry {
                    Some(entry) => self.index.upsert_policy(entry),
                    None => self.index.delete_policy(&namespaced_name(namespace, &key.1)),
                }
            }
            (Kind::GlobalNetworkPolicy, Some(Object::GlobalNetworkPolicy(policy))) => {
                let (entry, problems) = global_policy_entry(policy, &self.tiers);
                self.set_problems(Source::Object(kind, key.clone()), problems);
                match entry {
                    Some(entry) => self.index.upsert_policy(entry),
                    None => self.index.delete_policy(&global_name(&key.1)),
                }
            }
            (Kind::KubeNetworkPolicy, Some(Object::KubeNetworkPolicy(knp))) => {
                let (translated_key, translated, problem) = translate(knp);
                let (entry, mut problems) = network_policy_entry(&translated, &self.tiers);
                problems.extend(problem);
                self.set_problems(Source::Object(kind, key.clone()), problems);
                if self.desired.translated_policies.get(&translated_key) != Some(&translated) {
                    self.desired.translated_policies.insert(translated_key.clone(), translated);
                    self.changes.translated_policies.insert(translated_key);
                }
                match entry {
                    Some(entry) => self.index.upsert_policy(entry),
                    None => self.index.delete_policy(&namespaced_name(namespace, &format!("{PREFIX}{}", key.1))),
                }
            }
            (Kind::NetworkPolicy | Kind::GlobalNetworkPolicy | Kind::KubeNetworkPolicy, _) => {
                self.set_problems(Source::Object(kind, key.clone()), Vec::new());
                let name = match kind {
                    Kind::GlobalNetworkPolicy => global_name(&key.1),
                    Kind::KubeNetworkPolicy => {
                        let translated_key = (namespace.to_string(), format!("{PREFIX}{}", key.1));
                        if self.desired.translated_policies.remove(&translated_key).is_some() {
                            self.changes.translated_policies.insert(translated_key);
                        }
                        namespaced_name(namespace, &format!("{PREFIX}{}", key.1))
                    }
                    _ => namespaced_name(namespace, &key.1),
                };
                self.index.delete_policy(&name);
            }
            _ => {}
        }
    }

    /// Gives the policy index a Service's endpoints, from all of its EndpointSlices (those of its
    /// namespace are looked at, not every slice).
    pub(super) fn service_changed(&mut self, (namespace, name): &(String, String)) {
        let slices: Vec<&EndpointSlice> = self
            .store
            .in_namespace(Kind::EndpointSlice, namespace)
            // A slice written without a namespace is in `default`, as a pod is.
            .chain(self.store.in_namespace(Kind::EndpointSlice, "").filter(|_| namespace == "default"))
            .filter_map(|o| if let Object::EndpointSlice(slice) = o { Some(slice) } else { None })
            .filter(|slice| service_of(slice).is_some_and(|(ns, n)| (&ns, &n) == (namespace, name)))
            .collect();
        let endpoints = (!slices.is_empty()).then(|| ServiceEndpoints::from_slices(slices));
        self.index.set_service(namespace, name, endpoints);
    }

    /// Hands the usable pools to the policy index (pods' pool annotations resolve against them)
    /// and, when they changed, reports again on every pod with a pool annotation.
    fn pods_pools(&mut self) {
        let usable: BTreeMap<String, IpNet> =
            self.pools.values().filter(|p| p.is_valid()).filter_map(|p| Some((p.name.clone(), p.network?))).collect();
        if &usable == self.index.pools() {
            return;
        }
        self.index.set_pools(usable);
        let mut annotated: Vec<(Kind, Key, [Option<String>; 2])> = self
            .store
            .pods()
            .iter()
            .filter(|(_, facts)| facts.pool_annotations.iter().any(Option::is_some))
            .map(|(key, facts)| (Kind::Pod, key.clone(), facts.pool_annotations.clone()))
            .collect();
        for object in self.store.all(Kind::Namespace) {
            if let Object::Namespace(ns) = object {
                let pools = pool_annotations(&ns.metadata);
                if pools.iter().any(Option::is_some) {
                    annotated.push((Kind::Namespace, object.key(), pools));
                }
            }
        }
        for (kind, key, pools) in annotated {
            self.annotation_problems(kind, &key, &pools);
        }
    }

    /// Reports (or clears) the problems of a Pod's or Namespace's pool annotations.
    fn annotation_problems(&mut self, kind: Kind, key: &Key, annotations: &[Option<String>; 2]) {
        let (kind_name, namespace) = match kind {
            Kind::Pod => ("Pod", Some(namespace_or_default(&key.0))),
            _ => ("Namespace", None),
        };
        let problems = annotation_problems(kind_name, namespace, &key.1, annotations, self.index.pools());
        self.set_problems(Source::Object(kind, key.clone()), problems);
    }

    pub(super) fn set_problems(&mut self, source: Source, problems: Vec<ObjectProblem>) {
        let previous = self.problems.get(&source).map_or(&[][..], Vec::as_slice);
        if previous == problems.as_slice() {
            return;
        }
        if problems.is_empty() {
            self.problems.remove(&source);
        } else {
            self.problems.insert(source, problems);
        }
        let mut all: Vec<ObjectProblem> = self.problems.values().flatten().cloned().collect();
        all.sort();
        self.desired.problems = all;
        self.changes.problems = true;
    }
}
