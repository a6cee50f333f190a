//! What the stream carries: shared items under typed keys, and how an item changes in place.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A stream revision. Revisions are given by the caller and strictly increase; a replica that
/// computes the same inputs publishes the same revisions, so a subscriber can resume on another one.
pub type Revision = u64;

/// What kind of shared item a key names; each kind has its own namespace of names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKind {
    /// A compiled policy, shared by every node with an endpoint it applies to.
    Policy,
    /// An IP set (selector members, named ports), shared by every node whose policies use it.
    IpSet,
    /// A node's BGP peers, which depend on the other nodes (the full mesh's peer list).
    BgpPeers,
    /// A node's local endpoints and the policies that apply to each.
    Endpoints,
    /// A node's host endpoints and the policies of each hook.
    HostEndpoints,
}

impl ItemKind {
    /// The kind's name in logs and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::IpSet => "ipset",
            Self::BgpPeers => "bgppeers",
            Self::Endpoints => "endpoints",
            Self::HostEndpoints => "hostendpoints",
        }
    }
}

/// The key of one shared item: its kind and its name (unique within the kind).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    /// The item's kind.
    pub kind: ItemKind,
    /// The item's name.
    pub name: String,
}

impl ItemKey {
    /// The key of `name` of `kind`.
    pub fn new(kind: ItemKind, name: impl Into<String>) -> Self {
        Self { kind, name: name.into() }
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// A value the stream carries. An item whose change can be smaller than the item itself (a set
/// that gains one member) says so through its patch.
pub trait Item: Clone + PartialEq {
    /// A change in place, such as the members a set gains and loses.
    type Patch: Clone + PartialEq + fmt::Debug;

    /// The patch that turns `self` into `newer`, or `None` when sending `newer` whole is as good.
    fn patch_to(&self, newer: &Self) -> Option<Self::Patch>;

    /// Applies a patch made by [`Item::patch_to`] from a value equal to `self`.
    fn apply(&mut self, patch: &Self::Patch) -> Result<(), PatchError>;

    /// Whether this value may stand under `key` (a value of another kind than its key's is refused
    /// by the replica). Any value fits any key unless the item says otherwise.
    fn fits(&self, _key: &ItemKey) -> bool {
        true
    }
}

/// A patch that does not fit the value it is applied to: the replica's copy has drifted, and it
/// must resubscribe for a snapshot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the patch does not fit the copy: {0}; resubscribe without a revision for a snapshot")]
pub struct PatchError(pub String);

/// The members a set gains and loses: the delta of one set-member change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPatch<M> {
    /// Members that are new.
    pub added: Vec<M>,
    /// Members that are gone.
    pub removed: Vec<M>,
}

impl<M: Ord + Clone> SetPatch<M> {
    /// The patch from `old` to `new`, or `None` when it would carry more members than `new` has
    /// (then sending `new` whole is smaller).
    pub fn between(old: &BTreeSet<M>, new: &BTreeSet<M>) -> Option<Self> {
        let added: Vec<M> = new.difference(old).cloned().collect();
        let removed: Vec<M> = old.difference(new).cloned().collect();
        (added.len() + removed.len() < new.len().max(1)).then_some(Self { added, removed })
    }

    /// Applies the patch to `members`; fails when an added member is already there or a removed
    /// one is missing, which means the copy is not the one the patch was made from.
    pub fn apply_to(&self, members: &mut BTreeSet<M>) -> Result<(), PatchError>
    where
        M: fmt::Debug,
    {
        if let Some(member) = self.removed.iter().find(|m| !members.contains(m)) {
            return Err(PatchError(format!("member {member:?} to remove is missing")));
        }
        if let Some(member) = self.added.iter().find(|m| members.contains(m)) {
            return Err(PatchError(format!("member {member:?} to add is already there")));
        }
        for member in &self.removed {
            members.remove(member);
        }
        members.extend(self.added.iter().cloned());
        Ok(())
    }
}

/// A plain set is an item whose changes travel as the members gained and lost.
impl<M: Ord + Clone + fmt::Debug> Item for BTreeSet<M> {
    type Patch = SetPatch<M>;

    fn patch_to(&self, newer: &Self) -> Option<Self::Patch> {
        SetPatch::between(self, newer)
    }

    fn apply(&mut self, patch: &Self::Patch) -> Result<(), PatchError> {
        patch.apply_to(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn set(members: &[u32]) -> BTreeSet<u32> {
        members.iter().copied().collect()
    }

    #[test]
    fn a_set_patch_carries_only_the_difference_and_round_trips() {
        let old = set(&[1, 2, 3, 4]);
        let new = set(&[1, 2, 3, 5]);
        let patch = SetPatch::between(&old, &new).unwrap();
        assert_eq!(patch, SetPatch { added: vec![5], removed: vec![4] });
        let mut copy = old.clone();
        patch.apply_to(&mut copy).unwrap();
        assert_eq!(copy, new);
    }

    #[test]
    fn a_patch_as_large_as_the_new_set_is_not_made() {
        assert_eq!(SetPatch::between(&set(&[1, 2]), &set(&[3, 4])), None, "four changes for two members");
        assert_eq!(SetPatch::between(&set(&[1]), &set(&[])), None, "emptying a set sends it whole");
    }

    #[test]
    fn a_patch_refuses_a_copy_it_was_not_made_from() {
        let patch = SetPatch { added: vec![5], removed: vec![4] };
        let error = patch.apply_to(&mut set(&[1, 2])).unwrap_err();
        assert!(error.to_string().contains("4 to remove is missing"), "{error}");
        let error = SetPatch { added: vec![1], removed: vec![] }.apply_to(&mut set(&[1])).unwrap_err();
        assert!(error.to_string().contains("already there"), "{error}");
    }

    #[test]
    fn keys_print_as_kind_and_name() {
        assert_eq!(ItemKey::new(ItemKind::IpSet, "s_abc").to_string(), "ipset/s_abc");
    }
}
