//! The items of a node's span as gingham's stream carries them (issue 13): the shared compiled
//! policies and IP sets, each computed once for every node that uses it, and the per-node parts
//! that depend on the rest of the cluster (BGP peers, the endpoints' policy lists). An IP set that
//! gains or loses members travels as those members only. [`NodeSpan`] is one node's span put
//! together: what the operator computes for the node and what the agent enforces.

use std::collections::BTreeSet;

use gingham_stream::{Item, ItemKey, ItemKind, PatchError, SetPatch};
use serde::{Deserialize, Serialize};

use super::hostpolicy::HostEndpointPolicy;
use super::nodenetwork::{BgpPeerSession, CompiledPolicy, EndpointPolicy, IpSet};
use super::shared::Shared;
use super::value::{IpSetMember, Wire};

/// One node's span, put together: everything the node needs that is not its own alone. The
/// operator computes it next to the node's NodeNetwork; the stream carries it as items
/// ([`NodeSpan::items`]) and the agent puts them back together ([`NodeSpan::assemble`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpan {
    /// Every local endpoint whose policy is known, with its policies in order. An endpoint
    /// missing here has its traffic dropped.
    #[serde(default)]
    pub endpoints: Vec<EndpointPolicy>,
    /// The policies the endpoints refer to, by name.
    #[serde(default)]
    pub policies: Vec<Shared<CompiledPolicy>>,
    /// The address sets the policies refer to (selector memberships, named ports), by name.
    #[serde(default)]
    pub ip_sets: Vec<Shared<IpSet>>,
    /// The BGP sessions BIRD should run (empty when BGP is off for the node).
    #[serde(default)]
    pub bgp_peers: Vec<BgpPeerSession>,
    /// The node's host endpoints, with the policies of each hook (empty: none; the host's
    /// interfaces are not policed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_endpoints: Vec<HostEndpointPolicy>,
}

impl NodeSpan {
    /// The span as the stream's items for `node`: each policy and set under its own name (shared
    /// with every node that uses it; cloning one clones a pointer), the peers and endpoints under
    /// the node's name, and its host endpoints (when it has any) under the node's name.
    pub fn items(&self, node: &str) -> Vec<(ItemKey, SpanItem)> {
        let mut items = Vec::with_capacity(self.policies.len() + self.ip_sets.len() + 3);
        for compiled in &self.policies {
            items.push((ItemKey::new(ItemKind::Policy, compiled.name.clone()), SpanItem::Policy(compiled.clone())));
        }
        for set in &self.ip_sets {
            items.push((ItemKey::new(ItemKind::IpSet, set.name.clone()), SpanItem::IpSet(set.clone())));
        }
        items.push((ItemKey::new(ItemKind::BgpPeers, node), SpanItem::BgpPeers(self.bgp_peers.clone())));
        items.push((ItemKey::new(ItemKind::Endpoints, node), SpanItem::Endpoints(self.endpoints.clone())));
        // Only when the node has host endpoints: an agent that predates them keeps working.
        if !self.host_endpoints.is_empty() {
            items.push((
                ItemKey::new(ItemKind::HostEndpoints, node),
                SpanItem::HostEndpoints(self.host_endpoints.clone()),
            ));
        }
        items
    }

    /// Puts `node`'s span back together from the items it holds (in key order, so policies and
    /// sets come sorted by name). Peers and endpoints under another node's name are not its own
    /// and are ignored.
    pub fn assemble<'a>(node: &str, items: impl IntoIterator<Item = (&'a ItemKey, &'a SpanItem)>) -> Self {
        let mut span = Self::default();
        for (key, item) in items {
            match item {
                SpanItem::Policy(policy) => span.policies.push(Shared::clone(policy)),
                SpanItem::IpSet(set) => span.ip_sets.push(Shared::clone(set)),
                SpanItem::BgpPeers(peers) if key.name == node => span.bgp_peers.clone_from(peers),
                SpanItem::Endpoints(endpoints) if key.name == node => span.endpoints.clone_from(endpoints),
                SpanItem::HostEndpoints(hosts) if key.name == node => span.host_endpoints.clone_from(hosts),
                SpanItem::BgpPeers(_) | SpanItem::Endpoints(_) | SpanItem::HostEndpoints(_) => {}
            }
        }
        span
    }
}

/// One item of a span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SpanItem {
    /// A compiled policy (key: its name, `<namespace>/<name>` or `global/<name>`), shared with
    /// the desired state it was taken from.
    Policy(Shared<CompiledPolicy>),
    /// An IP set (key: its name), shared likewise.
    IpSet(Shared<IpSet>),
    /// A node's BGP sessions (key: the node's name).
    BgpPeers(Vec<BgpPeerSession>),
    /// A node's local endpoints and the policies of each (key: the node's name).
    Endpoints(Vec<EndpointPolicy>),
    /// A node's host endpoints and the policies of each hook (key: the node's name).
    HostEndpoints(Vec<HostEndpointPolicy>),
}

impl SpanItem {
    /// The kind of key this item belongs under (a value under a key of another kind is refused).
    pub fn kind(&self) -> ItemKind {
        match self {
            Self::Policy(_) => ItemKind::Policy,
            Self::IpSet(_) => ItemKind::IpSet,
            Self::BgpPeers(_) => ItemKind::BgpPeers,
            Self::Endpoints(_) => ItemKind::Endpoints,
            Self::HostEndpoints(_) => ItemKind::HostEndpoints,
        }
    }
}

/// A change in place to a span item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SpanPatch {
    /// The members an IP set gains and loses.
    IpSetMembers(SetPatch<Wire<IpSetMember>>),
}

impl Item for SpanItem {
    type Patch = SpanPatch;

    fn patch_to(&self, newer: &Self) -> Option<SpanPatch> {
        let (Self::IpSet(old), Self::IpSet(new)) = (self, newer) else { return None };
        if (&old.name, old.kind, old.family) != (&new.name, new.kind, new.family) {
            return None;
        }
        let members = |set: &IpSet| set.members.iter().cloned().collect::<BTreeSet<_>>();
        SetPatch::between(&members(old), &members(new)).map(SpanPatch::IpSetMembers)
    }

    fn fits(&self, key: &ItemKey) -> bool {
        self.kind() == key.kind
    }

    fn apply(&mut self, patch: &SpanPatch) -> Result<(), PatchError> {
        let (Self::IpSet(set), SpanPatch::IpSetMembers(members_patch)) = (self, patch) else {
            return Err(PatchError("an IP set patch arrived for an item that is no IP set".into()));
        };
        let set: &mut IpSet = set;
        let mut members: BTreeSet<Wire<IpSetMember>> = std::mem::take(&mut set.members).into_iter().collect();
        let applied = members_patch.apply_to(&mut members);
        // Sorted, as the operator writes them; on a refused patch the copy is restored whole.
        set.members = members.into_iter().collect();
        applied
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api::nodenetwork::{IpSetKind, TierPolicies};

    fn set(members: &[&str]) -> SpanItem {
        SpanItem::IpSet(Shared::new(IpSet {
            name: "s_web".into(),
            kind: IpSetKind::Addresses,
            members: members.iter().map(|m| Wire::new(*m)).collect(),
            ..IpSet::default()
        }))
    }

    #[test]
    fn a_set_that_gains_one_member_travels_as_that_member() {
        let (old, new) =
            (set(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]), set(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]));
        let patch = old.patch_to(&new).unwrap();
        assert_eq!(patch, SpanPatch::IpSetMembers(SetPatch { added: vec![Wire::new("10.0.0.4")], removed: vec![] }));
        let json = serde_json::to_string(&patch).unwrap();
        assert_eq!(json, r#"{"ipSetMembers":{"added":["10.0.0.4"],"removed":[]}}"#);
        let mut copy = old.clone();
        copy.apply(&patch).unwrap();
        assert_eq!(copy, new, "members stay sorted");
    }

    #[test]
    fn other_items_and_renamed_sets_travel_whole() {
        let policy = SpanItem::Policy(Shared::new(CompiledPolicy { name: "global/a".into(), ..Default::default() }));
        let changed = SpanItem::Policy(Shared::new(CompiledPolicy {
            name: "global/a".into(),
            ingress: vec![Default::default()],
            ..Default::default()
        }));
        assert_eq!(policy.patch_to(&changed), None);
        let SpanItem::IpSet(mut renamed) = set(&["10.0.0.1"]) else { unreachable!() };
        renamed.name = "s_other".into();
        assert_eq!(set(&["10.0.0.1"]).patch_to(&SpanItem::IpSet(renamed)), None);
        assert_eq!(policy.kind(), ItemKind::Policy);
        assert!(policy.fits(&ItemKey::new(ItemKind::Policy, "global/a")));
        assert!(!policy.fits(&ItemKey::new(ItemKind::IpSet, "global/a")), "a policy under a set's key is refused");
    }

    #[test]
    fn a_span_travels_as_items_and_comes_back_whole() {
        let SpanItem::IpSet(ip_set) = set(&["10.0.0.1"]) else { unreachable!() };
        let span = NodeSpan {
            endpoints: vec![EndpointPolicy {
                name: "ns/a".into(),
                ingress: vec![TierPolicies::default_tier(["global/a"])],
                ..Default::default()
            }],
            policies: vec![Shared::new(CompiledPolicy { name: "global/a".into(), ..Default::default() })],
            ip_sets: vec![ip_set],
            bgp_peers: vec![BgpPeerSession { name: "mesh_b".into(), ..Default::default() }],
            host_endpoints: vec![HostEndpointPolicy {
                name: "node-a-eth0".into(),
                interface_name: Some("eth0".into()),
                pre_dnat_ingress: vec![TierPolicies::default_tier(["global/a"])],
                ..Default::default()
            }],
        };
        let mut items = span.items("node-a");
        let keys: Vec<String> = items.iter().map(|(key, _)| key.to_string()).collect();
        assert_eq!(
            keys,
            ["policy/global/a", "ipset/s_web", "bgppeers/node-a", "endpoints/node-a", "hostendpoints/node-a"]
        );
        // Another node's own items, as a replica never holds them but a careless caller might pass.
        items.push((ItemKey::new(ItemKind::Endpoints, "node-b"), SpanItem::Endpoints(Vec::new())));
        items.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(NodeSpan::assemble("node-a", items.iter().map(|(key, item)| (key, item))), span);
    }

    #[test]
    fn a_patch_that_does_not_fit_is_refused() {
        let patch = SpanPatch::IpSetMembers(SetPatch { added: vec![], removed: vec![Wire::new("10.9.9.9")] });
        assert!(set(&["10.0.0.1"]).apply(&patch).is_err());
        let mut policy = SpanItem::Policy(Shared::default());
        assert!(policy.apply(&patch).unwrap_err().to_string().contains("no IP set"));
    }
}
