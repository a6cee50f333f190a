//! The policy index: endpoints, policies and selector sets, kept up to date one change at a time,
//! with a record of which nodes' compiled policy must be rebuilt and which of their sets refreshed.
//!
//! Memberships are tracked per endpoint and per network set (which members it contributes to
//! which set), so a pod or network set change touches only the sets it enters or leaves and the
//! nodes that use those sets. Endpoints
//! are also indexed by label ([`labels`]), so a policy or set whose selector requires a label
//! looks only at the endpoints carrying it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use gingham_crds::api::nodenetwork::{CompiledPolicy, IpSet, LocalEndpoint, uid_matches};
use gingham_crds::api::tier::TierRank;
use gingham_crds::api::{IpSetMember, Shared};
use gingham_crds::selector::Selector;

mod batch;
mod hosts;
mod labels;
mod membership;
mod netsets;
mod nodes;

pub use self::hosts::HostEndpointFacts;
use self::labels::LabelIndex;
use self::netsets::NetSetEntry;
use super::fxhash::Map;
use super::services::ServiceEndpoints;
use super::sets::{SetKey, namespace_selector_matches};
use crate::core::facts::{PodFacts, implicit_namespace_labels};
use crate::core::netsets::NetSetKey;

/// An endpoint: `(node, namespace/pod)`.
pub type EndpointKey = (String, String);
/// A set's id within the index.
pub type SetId = u32;
/// An endpoint's id within the index, for the indexes that hold many endpoints (cheaper to keep
/// and compare than its key).
pub type EndpointId = u32;

/// Which endpoints a policy applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Applies {
    /// Endpoints of one namespace (a NetworkPolicy).
    Namespace(String),
    /// Endpoints of the namespaces the selector picks, or all (a GlobalNetworkPolicy).
    Namespaces(Option<Selector>),
}

/// Where a GlobalNetworkPolicy applies on host endpoints (Calico's `applyOnForward`, `preDNAT`
/// and `doNotTrack`; see [`hosts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostMode {
    /// Traffic to and from the host (and pods, as any policy).
    #[default]
    Normal,
    /// Also traffic forwarded through the host endpoint.
    ApplyOnForward,
    /// Before DNAT, traffic in through the host endpoint; host endpoints only.
    PreDnat,
    /// Untracked, in the raw hooks; host endpoints only.
    DoNotTrack,
}

/// A compiled policy as the index holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyEntry {
    /// `ns/name` or `global/name`.
    pub name: Arc<str>,
    /// Its tier: policies are evaluated tier by tier.
    pub tier: TierRank,
    /// Order within the tier; `None` sorts last.
    pub order: Option<f64>,
    /// The endpoint selector.
    pub selector: Selector,
    /// Where its endpoints live.
    pub applies: Applies,
    /// It governs ingress.
    pub ingress: bool,
    /// It governs egress.
    pub egress: bool,
    /// Where it applies on host endpoints (a `PreDnat` or `DoNotTrack` policy applies to no pod).
    pub host: HostMode,
    /// The compiled rules (one copy, shared by every node that uses the policy).
    pub compiled: Shared<CompiledPolicy>,
    /// The sets its rules use.
    pub sets: BTreeSet<SetKey>,
}

/// An endpoint of a node: a pod its agent reported, or a pod scheduled to the node whose CNI ADD
/// has not happened yet.
#[derive(Debug)]
struct Endpoint {
    id: EndpointId,
    namespace: String,
    /// The addresses its agent reported (one per family); none while the pod is only scheduled
    /// to the node: its policy is compiled, but it is in no set.
    addresses: Vec<IpAddr>,
    /// The Pod UID its agent reported with the address (`None`: not reported, or not known).
    uid: Option<String>,
    contributions: Contributions,
    ingress: Vec<Arc<str>>,
    egress: Vec<Arc<str>>,
}

impl Endpoint {
    /// The members it brings to `set`: none before its agent reported its address, and none while
    /// the address belongs to another Pod of the same name than `facts` describe (the agent
    /// reported another UID: the labels known are not that pod's).
    fn members_of(
        &self,
        set: &SetKey,
        namespace_labels: &BTreeMap<String, String>,
        facts: &PodFacts,
    ) -> Vec<IpSetMember> {
        if self.addresses.is_empty() || !uid_matches(facts.uid.as_deref(), self.uid.as_deref()) {
            return Vec::new();
        }
        set.members(&self.namespace, namespace_labels, facts, &self.addresses)
    }
}

/// The members one endpoint contributes to each set, sorted by set id (a few entries: a list
/// is much smaller than a map).
#[derive(Debug, Default)]
struct Contributions(Vec<(SetId, Vec<IpSetMember>)>);

impl Contributions {
    fn get(&self, id: SetId) -> &[IpSetMember] {
        self.0.binary_search_by_key(&id, |(i, _)| *i).map_or(&[], |at| self.0[at].1.as_slice())
    }

    fn insert(&mut self, id: SetId, members: Vec<IpSetMember>) {
        match self.0.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => self.0[at].1 = members,
            Err(at) => self.0.insert(at, (id, members)),
        }
    }

    fn remove(&mut self, id: SetId) {
        if let Ok(at) = self.0.binary_search_by_key(&id, |(i, _)| *i) {
            self.0.remove(at);
        }
    }
}

#[derive(Debug)]
struct SetEntry {
    key: SetKey,
    members: BTreeMap<IpSetMember, u32>,
    /// The set as nodes carry it, its IPv4 and its IPv6 set: one copy each, shared by every node
    /// that uses the set, rebuilt when its members change.
    views: [Shared<IpSet>; 2],
    contributors: BTreeSet<EndpointId>,
    /// The network sets contributing members.
    net_contributors: BTreeSet<NetSetKey>,
    users: u32,
}

/// What the last changes require.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dirty {
    /// Nodes whose compiled policy must be rebuilt.
    pub rebuild: BTreeSet<String>,
    /// Sets whose members changed: every node using one (see [`PolicyIndex::set_users`]) must
    /// get its new view.
    pub refresh: BTreeSet<SetId>,
}

/// The index. See the module documentation.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    namespaces: Map<String, BTreeMap<String, String>>,
    pods: Map<String, Arc<PodFacts>>,
    /// NetworkSets and GlobalNetworkSets, with what each contributes to which set.
    net_sets: Map<NetSetKey, NetSetEntry>,
    /// Endpoints by node, then by name (so a node's endpoints come out sorted).
    endpoints: Map<String, BTreeMap<String, Endpoint>>,
    /// Each endpoint's key by its id; the ids of removed endpoints wait in `free_ids`.
    keys: Vec<EndpointKey>,
    free_ids: Vec<EndpointId>,
    by_namespace: Map<String, BTreeSet<EndpointId>>,
    by_name: Map<String, BTreeSet<String>>,
    /// Every endpoint by its pod's labels (where policies look for the endpoints they select).
    labelled: LabelIndex,
    /// Endpoints with an address by their pod's labels (where sets look for members).
    addressed: LabelIndex,
    policies: Map<Arc<str>, PolicyEntry>,
    /// The ids of the sets each policy uses.
    policy_sets: Map<Arc<str>, Vec<SetId>>,
    policies_by_namespace: Map<String, BTreeSet<Arc<str>>>,
    global_policies: BTreeSet<Arc<str>>,
    set_ids: Map<SetKey, SetId>,
    sets: Map<SetId, SetEntry>,
    next_set: SetId,
    sets_by_namespace: Map<String, BTreeSet<SetId>>,
    cross_sets: BTreeSet<SetId>,
    /// Services' endpoints, by (namespace, name), and the sets of each.
    services: Map<(String, String), ServiceEndpoints>,
    service_sets: Map<(String, String), BTreeSet<SetId>>,
    /// Sets whose members changed since their view was built.
    stale_views: BTreeSet<SetId>,
    node_sets: Map<String, BTreeSet<SetId>>,
    set_nodes: Map<SetId, BTreeSet<String>>,
    node_policies: Map<String, BTreeSet<Arc<str>>>,
    policy_nodes: Map<Arc<str>, BTreeSet<String>>,
    /// Each node's host endpoints, sorted by name.
    host_endpoints: Map<String, Vec<HostEndpointFacts>>,
    /// Every usable pool's network by name, for the pools pods' annotations ask for.
    pools: BTreeMap<String, ipnet::IpNet>,
    /// Namespaces' pool annotations (IPv4, IPv6), for their pods that have none of their own.
    namespace_pools: Map<String, [Option<String>; 2]>,
    deferred: bool,
    dirty: Dirty,
}

/// The namespace of an endpoint named `namespace/pod`.
fn namespace_of(name: &str) -> &str {
    name.split_once('/').map_or("default", |(ns, _)| ns)
}

/// Evaluation order: by tier, then by order (none last), then by name.
fn policy_order(a: &PolicyEntry, b: &PolicyEntry) -> std::cmp::Ordering {
    let key = |p: &PolicyEntry| (p.order.is_none(), p.order.unwrap_or(0.0));
    let (a_none, a_order) = key(a);
    let (b_none, b_order) = key(b);
    a.tier
        .evaluation_order(&b.tier)
        .then(a_none.cmp(&b_none))
        .then(a_order.total_cmp(&b_order))
        .then_with(|| a.name.cmp(&b.name))
}

impl PolicyIndex {
    fn endpoint(&self, key: &EndpointKey) -> Option<&Endpoint> {
        self.endpoints.get(&key.0)?.get(&key.1)
    }

    fn endpoint_mut(&mut self, key: &EndpointKey) -> Option<&mut Endpoint> {
        self.endpoints.get_mut(&key.0)?.get_mut(&key.1)
    }

    /// The key of the endpoint with id `id`.
    fn key_of(&self, id: EndpointId) -> Option<&EndpointKey> {
        self.keys.get(usize::try_from(id).ok()?)
    }

    /// The keys of endpoints by their ids.
    fn keys_of(&self, ids: impl IntoIterator<Item = EndpointId>) -> Vec<EndpointKey> {
        ids.into_iter().filter_map(|id| self.key_of(id).cloned()).collect()
    }

    fn endpoint_keys(&self) -> Vec<EndpointKey> {
        self.endpoints.iter().flat_map(|(node, eps)| eps.keys().map(move |name| (node.clone(), name.clone()))).collect()
    }

    /// An index that defers working out set memberships and which policies apply to which
    /// endpoint until [`PolicyIndex::finish_batch`]: for loading a whole snapshot at once.
    pub fn batch() -> Self {
        Self { deferred: true, ..Self::default() }
    }

    /// Takes what the changes so far require (the views of the sets to refresh are up to date).
    pub fn take_dirty(&mut self) -> Dirty {
        self.refresh_views();
        std::mem::take(&mut self.dirty)
    }

    fn namespace_labels(&self, namespace: &str) -> Cow<'_, BTreeMap<String, String>> {
        match self.namespaces.get(namespace) {
            Some(labels) => Cow::Borrowed(labels),
            None => Cow::Owned(implicit_namespace_labels(namespace)),
        }
    }

    fn facts(&self, name: &str, namespace: &str) -> Cow<'_, PodFacts> {
        match self.pods.get(name) {
            Some(facts) => Cow::Borrowed(&**facts),
            None => Cow::Owned(PodFacts::bare(namespace)),
        }
    }

    /// The facts of the pod behind an endpoint name, as a handle that does not borrow the index.
    fn shared_facts(&self, name: &str) -> Arc<PodFacts> {
        self.pods.get(name).cloned().unwrap_or_else(|| Arc::new(PodFacts::bare(namespace_of(name))))
    }

    /// Records an endpoint in the label indexes under its pod's labels.
    fn index_labels(&mut self, id: EndpointId, facts: &PodFacts, addressed: bool) {
        self.labelled.insert(id, facts.labels.iter());
        if addressed {
            self.addressed.insert(id, facts.labels.iter());
        }
    }

    /// Forgets an endpoint recorded in the label indexes under these facts' labels.
    fn unindex_labels(&mut self, id: EndpointId, facts: &PodFacts, addressed: bool) {
        self.labelled.remove(id, facts.labels.iter());
        if addressed {
            self.addressed.remove(id, facts.labels.iter());
        }
    }

    /// The endpoints that may match `selector` in `namespace` (`None`: in any): the ones `index`
    /// names when the selector requires a label and that list is the shorter, else the
    /// namespace's endpoints, else all.
    fn candidates(&self, index: &LabelIndex, selector: &Selector, namespace: Option<&str>) -> Vec<EndpointKey> {
        let in_namespace = |ns: &str| self.by_namespace.get(ns);
        match (index.plan(selector.expr()), namespace) {
            (Some(plan), Some(ns)) if plan.cost() < in_namespace(ns).map_or(0, BTreeSet::len) => {
                let keys = self.keys_of(index.endpoints(&plan));
                keys.into_iter().filter(|key| namespace_of(&key.1) == ns).collect()
            }
            (Some(plan), None) => self.keys_of(index.endpoints(&plan)),
            (_, Some(ns)) => self.keys_of(in_namespace(ns).into_iter().flatten().copied()),
            (None, None) => self.endpoint_keys(),
        }
    }

    /// Records a namespace's labels (`None`: the namespace object is gone).
    pub fn set_namespace(&mut self, name: &str, labels: Option<BTreeMap<String, String>>) {
        let changed = match labels {
            Some(labels) => self.namespaces.insert(name.to_string(), labels.clone()) != Some(labels),
            None => self.namespaces.remove(name).is_some(),
        };
        // A batch load works out every endpoint at its end.
        if changed && !self.deferred {
            let keys = self.keys_of(self.by_namespace.get(name).into_iter().flatten().copied());
            for key in keys {
                self.reevaluate(&key);
            }
            for key in self.net_sets_in(name) {
                self.reevaluate_net_set(&key);
            }
        }
    }

    /// Records a pod's facts (`None`: the pod is gone) under `namespace/name`. A pod scheduled to
    /// a node becomes an endpoint there at once, without an address, so its policy is compiled
    /// before its CNI ADD.
    pub fn set_pod(&mut self, name: &str, facts: Option<Arc<PodFacts>>) {
        if facts.as_deref() == self.pods.get(name).map(Arc::as_ref) {
            return;
        }
        let old = self.shared_facts(name);
        match facts {
            Some(facts) => self.pods.insert(name.to_string(), facts),
            None => self.pods.remove(name),
        };
        let new = self.shared_facts(name);
        if old.labels != new.labels {
            self.relabel(name, &old, &new);
        }
        if old.uid != new.uid || old.pool_annotations != new.pool_annotations {
            // The compiled endpoint policy carries the UID and the pools.
            let nodes = self.by_name.get(name).into_iter().flatten().cloned();
            self.dirty.rebuild.extend(nodes);
        }
        if old.node != new.node {
            if let Some(node) = &old.node {
                let key = (node.clone(), name.to_string());
                if self.endpoint(&key).is_some_and(|e| e.addresses.is_empty()) {
                    self.remove_endpoint(&key);
                }
            }
            if let Some(node) = &new.node {
                let key = (node.clone(), name.to_string());
                if self.endpoint(&key).is_none() {
                    self.add_endpoint(key, Vec::new(), None);
                }
            }
        }
        let nodes: Vec<String> = self.by_name.get(name).into_iter().flatten().cloned().collect();
        for node in nodes {
            self.reevaluate(&(node, name.to_string()));
        }
    }

    /// Records the usable pools by name (their networks); the nodes of pods whose annotations
    /// name pools are rebuilt when they change.
    pub fn set_pools(&mut self, pools: BTreeMap<String, ipnet::IpNet>) {
        if pools == self.pools {
            return;
        }
        self.pools = pools;
        let annotated = self.pods.iter().filter(|(_, facts)| facts.pool_annotations.iter().any(Option::is_some));
        let nodes: Vec<String> =
            annotated.flat_map(|(name, _)| self.by_name.get(name).into_iter().flatten().cloned()).collect();
        self.dirty.rebuild.extend(nodes);
    }

    /// Records a namespace's pool annotations (IPv4, IPv6; `None`s: none, or the namespace is
    /// gone); the nodes of its endpoints are rebuilt when they change.
    pub fn set_namespace_pools(&mut self, name: &str, annotations: [Option<String>; 2]) {
        let changed = if annotations.iter().all(Option::is_none) {
            self.namespace_pools.remove(name).is_some()
        } else {
            self.namespace_pools.insert(name.to_string(), annotations.clone()) != Some(annotations)
        };
        if changed {
            let keys = self.keys_of(self.by_namespace.get(name).into_iter().flatten().copied());
            self.dirty.rebuild.extend(keys.into_iter().map(|(node, _)| node));
        }
    }

    /// The usable pools by name, as last set.
    pub fn pools(&self) -> &BTreeMap<String, ipnet::IpNet> {
        &self.pools
    }

    /// Moves a pod's endpoints in the label indexes from its old labels to its new ones.
    fn relabel(&mut self, name: &str, old: &PodFacts, new: &PodFacts) {
        let nodes: Vec<String> = self.by_name.get(name).into_iter().flatten().cloned().collect();
        for node in nodes {
            let Some(endpoint) = self.endpoint(&(node, name.to_string())) else { continue };
            let (id, addressed) = (endpoint.id, !endpoint.addresses.is_empty());
            self.unindex_labels(id, old, addressed);
            self.index_labels(id, new, addressed);
        }
    }

    /// Replaces a node's endpoints with what its agent reports (addresses of both families and
    /// Pod UID). An endpoint the agent no longer reports stays, without its addresses, while its
    /// pod is still scheduled to the node. An address that is not one is logged, and the endpoint
    /// is in no set.
    pub fn set_node_endpoints(&mut self, node: &str, reported: &[LocalEndpoint]) {
        let addresses = |(index, endpoint): (usize, &LocalEndpoint)| {
            let mut addresses = Vec::new();
            for (field, address) in endpoint.all_addresses() {
                match address.decoded(&format!("status.endpoints[{index}].{field}")) {
                    Ok(address) => addresses.push(*address),
                    Err(error) => {
                        tracing::warn!(node, %error, "an endpoint the agent reported is in no set");
                        return Vec::new();
                    }
                }
            }
            // IPv4 first, one address per family: the order of members is the sets' business.
            addresses.sort_by_key(|a| (a.is_ipv6(), *a));
            addresses.dedup();
            addresses
        };
        let wanted: BTreeMap<&str, (Vec<IpAddr>, Option<&str>)> = reported
            .iter()
            .enumerate()
            .map(|(index, e)| (e.name.as_str(), (addresses((index, e)), e.uid.as_deref())))
            .collect();
        let existing: Vec<String> = self
            .endpoints
            .get(node)
            .into_iter()
            .flatten()
            .filter(|(name, _)| !wanted.contains_key(name.as_str()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in existing {
            let key = (node.to_string(), name);
            let scheduled_here = self.pods.get(&key.1).and_then(|facts| facts.node.as_deref()) == Some(node);
            if scheduled_here {
                self.readdress(&key, Vec::new(), None);
            } else {
                self.remove_endpoint(&key);
            }
        }
        for (name, (addresses, uid)) in wanted {
            let key = (node.to_string(), name.to_string());
            let uid = uid.map(str::to_string);
            if self.endpoint(&key).is_some() {
                self.readdress(&key, addresses, uid);
            } else {
                self.add_endpoint(key, addresses, uid);
            }
        }
    }

    fn add_endpoint(&mut self, key: EndpointKey, addresses: Vec<IpAddr>, uid: Option<String>) {
        let namespace = namespace_of(&key.1).to_string();
        let facts = self.shared_facts(&key.1);
        let id = match self.free_ids.pop() {
            Some(id) => {
                if let Some(slot) = usize::try_from(id).ok().and_then(|at| self.keys.get_mut(at)) {
                    slot.clone_from(&key);
                }
                id
            }
            None => {
                self.keys.push(key.clone());
                EndpointId::try_from(self.keys.len() - 1).unwrap_or(EndpointId::MAX)
            }
        };
        self.index_labels(id, &facts, !addresses.is_empty());
        match self.by_namespace.get_mut(&namespace) {
            Some(ids) => {
                ids.insert(id);
            }
            None => {
                self.by_namespace.insert(namespace.clone(), BTreeSet::from([id]));
            }
        }
        self.by_name.entry(key.1.clone()).or_default().insert(key.0.clone());
        let endpoint = Endpoint {
            id,
            namespace,
            addresses,
            uid,
            contributions: Contributions::default(),
            ingress: Vec::new(),
            egress: Vec::new(),
        };
        self.endpoints.entry(key.0.clone()).or_default().insert(key.1.clone(), endpoint);
        self.dirty.rebuild.insert(key.0.clone());
        self.reevaluate(&key);
    }

    /// Gives an endpoint new addresses and reported Pod UID (or none) and re-works out its set
    /// memberships.
    fn readdress(&mut self, key: &EndpointKey, addresses: Vec<IpAddr>, uid: Option<String>) {
        let Some(endpoint) = self.endpoint_mut(key) else { return };
        if endpoint.addresses == addresses && endpoint.uid == uid {
            return;
        }
        if endpoint.uid != uid {
            // The compiled endpoint policy carries the UID when the Pod object gives none.
            endpoint.uid = uid;
            self.dirty.rebuild.insert(key.0.clone());
        }
        let Some(endpoint) = self.endpoint_mut(key) else { return };
        let (was, is, id) = (!endpoint.addresses.is_empty(), !addresses.is_empty(), endpoint.id);
        endpoint.addresses = addresses;
        if was != is {
            let facts = self.shared_facts(&key.1);
            if is {
                self.addressed.insert(id, facts.labels.iter());
            } else {
                self.addressed.remove(id, facts.labels.iter());
            }
        }
        self.reevaluate(key);
    }

    fn remove_endpoint(&mut self, key: &EndpointKey) {
        let Some(local) = self.endpoints.get_mut(&key.0) else { return };
        let Some(endpoint) = local.remove(&key.1) else { return };
        if local.is_empty() {
            self.endpoints.remove(&key.0);
        }
        let facts = self.shared_facts(&key.1);
        self.unindex_labels(endpoint.id, &facts, !endpoint.addresses.is_empty());
        for (set, members) in endpoint.contributions.0 {
            self.change_members(set, endpoint.id, &members, &[]);
        }
        if let Some(ids) = self.by_namespace.get_mut(&endpoint.namespace) {
            ids.remove(&endpoint.id);
        }
        self.free_ids.push(endpoint.id);
        if let Some(nodes) = self.by_name.get_mut(&key.1) {
            nodes.remove(&key.0);
            if nodes.is_empty() {
                self.by_name.remove(&key.1);
            }
        }
        self.dirty.rebuild.insert(key.0.clone());
    }

    /// Re-works out an endpoint's set memberships and policies (during a batch load, nothing:
    /// [`PolicyIndex::finish_batch`] works out every endpoint at once).
    fn reevaluate(&mut self, key: &EndpointKey) {
        if self.deferred {
            return;
        }
        let Some(endpoint) = self.endpoint(key) else { return };
        let endpoint_id = endpoint.id;
        let mut candidates: BTreeSet<SetId> = self.cross_sets.clone();
        candidates.extend(self.sets_by_namespace.get(&endpoint.namespace).into_iter().flatten());
        candidates.extend(endpoint.contributions.0.iter().map(|(id, _)| *id));
        let mut changes = Vec::new();
        {
            let labels = self.namespace_labels(&endpoint.namespace);
            let facts = self.facts(&key.1, &endpoint.namespace);
            for id in candidates {
                let Some(set) = self.sets.get(&id) else { continue };
                let new = endpoint.members_of(&set.key, &labels, &facts);
                let old = endpoint.contributions.get(id);
                if old != new.as_slice() {
                    changes.push((id, old.to_vec(), new));
                }
            }
        }
        for (id, old, new) in changes {
            self.change_members(id, endpoint_id, &old, &new);
            if let Some(endpoint) = self.endpoint_mut(key) {
                if new.is_empty() {
                    endpoint.contributions.remove(id);
                } else {
                    endpoint.contributions.insert(id, new);
                }
            }
        }
        self.reapply(key);
    }

    /// Re-works out which policies apply to an endpoint.
    fn reapply(&mut self, key: &EndpointKey) {
        if self.deferred {
            return;
        }
        let Some(endpoint) = self.endpoint(key) else { return };
        let labels = self.namespace_labels(&endpoint.namespace);
        let facts = self.facts(&key.1, &endpoint.namespace);
        let (ingress, egress) = self.applying(&endpoint.namespace, &labels, &facts);
        if endpoint.ingress != ingress || endpoint.egress != egress {
            self.set_policies(key, ingress, egress);
        }
    }

    /// The policies that apply to an endpoint in `namespace` (with those labels) whose pod has
    /// `facts`, in order: those governing ingress, and those governing egress.
    fn applying(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        facts: &PodFacts,
    ) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
        let candidates = self.policies_by_namespace.get(namespace).into_iter().flatten().chain(&self.global_policies);
        let mut applying: Vec<&PolicyEntry> = candidates
            .filter_map(|name| self.policies.get(name))
            .filter(|p| match &p.applies {
                Applies::Namespace(ns) => ns == namespace,
                Applies::Namespaces(None) => true,
                Applies::Namespaces(Some(selector)) => namespace_selector_matches(selector, namespace_labels),
            })
            .filter(|p| !matches!(p.host, HostMode::PreDnat | HostMode::DoNotTrack))
            .filter(|p| p.selector.matches(&facts.labels))
            .collect();
        applying.sort_by(|a, b| policy_order(a, b));
        let ingress: Vec<Arc<str>> = applying.iter().filter(|p| p.ingress).map(|p| p.name.clone()).collect();
        let egress: Vec<Arc<str>> = applying.iter().filter(|p| p.egress).map(|p| p.name.clone()).collect();
        (ingress, egress)
    }

    /// Gives an endpoint its policy lists; its node's compiled policy must be rebuilt.
    fn set_policies(&mut self, key: &EndpointKey, ingress: Vec<Arc<str>>, egress: Vec<Arc<str>>) {
        if let Some(endpoint) = self.endpoint_mut(key) {
            endpoint.ingress = ingress;
            endpoint.egress = egress;
        }
        self.dirty.rebuild.insert(key.0.clone());
    }

    /// Adds or replaces a policy.
    pub fn upsert_policy(&mut self, entry: PolicyEntry) {
        if self.policies.get(&entry.name) == Some(&entry) {
            return;
        }
        let mut affected = BTreeSet::new();
        let set_ids: Vec<SetId> = entry.sets.iter().map(|key| self.acquire_set(key)).collect();
        if let Some(old) = self.remove_policy_entry(&entry.name) {
            affected.extend(self.selected_endpoints(&old));
            self.dirty.rebuild.extend(self.host_nodes_selected(&old));
        }
        self.dirty.rebuild.extend(self.host_nodes_selected(&entry));
        self.policy_sets.insert(entry.name.clone(), set_ids);
        affected.extend(self.selected_endpoints(&entry));
        match &entry.applies {
            Applies::Namespace(ns) => {
                self.policies_by_namespace.entry(ns.clone()).or_default().insert(entry.name.clone());
            }
            Applies::Namespaces(_) => {
                self.global_policies.insert(entry.name.clone());
            }
        }
        let name = entry.name.clone();
        self.policies.insert(name.clone(), entry);
        self.dirty.rebuild.extend(self.policy_nodes.get(&name).into_iter().flatten().cloned());
        for key in affected {
            self.reapply(&key);
        }
    }

    /// Removes a policy.
    pub fn delete_policy(&mut self, name: &str) {
        if let Some(old) = self.remove_policy_entry(name) {
            self.dirty.rebuild.extend(self.policy_nodes.get(name).into_iter().flatten().cloned());
            self.dirty.rebuild.extend(self.host_nodes_selected(&old));
            for key in self.selected_endpoints(&old) {
                self.reapply(&key);
            }
        }
    }

    /// The endpoints a policy's selector picks within its scope: only their policy lists can
    /// change when it comes, goes or changes (its namespace selector is checked by `reapply`).
    fn selected_endpoints(&self, policy: &PolicyEntry) -> Vec<EndpointKey> {
        if self.deferred {
            return Vec::new();
        }
        let namespace = match &policy.applies {
            Applies::Namespace(ns) => Some(ns.as_str()),
            Applies::Namespaces(_) => None,
        };
        let mut found = self.candidates(&self.labelled, &policy.selector, namespace);
        found.retain(|key| policy.selector.matches(&self.facts(&key.1, namespace_of(&key.1)).labels));
        found
    }

    fn remove_policy_entry(&mut self, name: &str) -> Option<PolicyEntry> {
        let old = self.policies.remove(name)?;
        match &old.applies {
            Applies::Namespace(ns) => {
                if let Some(names) = self.policies_by_namespace.get_mut(ns) {
                    names.remove(name);
                }
            }
            Applies::Namespaces(_) => {
                self.global_policies.remove(name);
            }
        }
        self.policy_sets.remove(name);
        for key in &old.sets {
            self.release_set(key);
        }
        Some(old)
    }
}

#[cfg(test)]
mod tests;
