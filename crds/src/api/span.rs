//! The items of a node's span as gingham's stream carries them (issue 13): the shared compiled
//! policies and IP sets, each computed once for every node that uses it, and the per-node parts
//! that depend on the rest of the cluster (BGP peers, the endpoints' policy lists). An IP set that
//! gains or loses members travels as those members only.

use std::collections::BTreeSet;

use gingham_stream::{Item, ItemKey, ItemKind, PatchError, SetPatch};
use serde::{Deserialize, Serialize};

use super::nodenetwork::{BgpPeerSession, CompiledPolicy, EndpointPolicy, IpSet};
use super::shared::Shared;
use super::value::{IpSetMember, Wire};

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
}

impl SpanItem {
    /// The kind of key this item belongs under (a value under a key of another kind is refused).
    pub fn kind(&self) -> ItemKind {
        match self {
            Self::Policy(_) => ItemKind::Policy,
            Self::IpSet(_) => ItemKind::IpSet,
            Self::BgpPeers(_) => ItemKind::BgpPeers,
            Self::Endpoints(_) => ItemKind::Endpoints,
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
        if (&old.name, old.kind) != (&new.name, new.kind) {
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
    use crate::api::nodenetwork::IpSetKind;

    fn set(members: &[&str]) -> SpanItem {
        SpanItem::IpSet(Shared::new(IpSet {
            name: "s_web".into(),
            kind: IpSetKind::Addresses,
            members: members.iter().map(|m| Wire::new(*m)).collect(),
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
    fn a_patch_that_does_not_fit_is_refused() {
        let patch = SpanPatch::IpSetMembers(SetPatch { added: vec![], removed: vec![Wire::new("10.9.9.9")] });
        assert!(set(&["10.0.0.1"]).apply(&patch).is_err());
        let mut policy = SpanItem::Policy(Shared::default());
        assert!(policy.apply(&patch).unwrap_err().to_string().contains("no IP set"));
    }
}
