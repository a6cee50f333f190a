//! Network sets in the index: each contributes its nets to the sets whose key it matches, as an
//! endpoint contributes its addresses. A change to one network set re-checks only the sets in its
//! scope (the cross-namespace ones and its namespace's) and moves only the members that changed:
//! one CIDR edited is one member out and one in.

use std::collections::BTreeMap;
use std::sync::Arc;

use gingham_crds::api::IpSetMember;

use super::{Contributions, PolicyIndex, SetId};
use crate::core::netsets::{NetSetFacts, NetSetKey};

/// A network set as the index holds it.
#[derive(Debug)]
pub(super) struct NetSetEntry {
    pub(super) facts: Arc<NetSetFacts>,
    pub(super) contributions: Contributions,
}

impl PolicyIndex {
    /// Records a network set (`None`: it is gone) and moves its nets in and out of the sets it
    /// enters, leaves or changes in.
    pub fn set_network_set(&mut self, key: NetSetKey, facts: Option<NetSetFacts>) {
        let old = self.net_sets.get(&key).map(|entry| Arc::clone(&entry.facts));
        if old.as_deref() == facts.as_ref() {
            return;
        }
        match facts {
            Some(facts) => {
                let facts = Arc::new(facts);
                match self.net_sets.get_mut(&key) {
                    Some(entry) => entry.facts = facts,
                    None => {
                        let entry = NetSetEntry { facts, contributions: Contributions::default() };
                        self.net_sets.insert(key.clone(), entry);
                    }
                }
                self.reevaluate_net_set(&key);
            }
            None => {
                let Some(entry) = self.net_sets.remove(&key) else { return };
                for (id, members) in entry.contributions.0 {
                    self.change_net_members(id, &key, &members, &[]);
                }
            }
        }
    }

    /// Re-works out the members a network set brings to each set that may hold it (during a batch
    /// load, nothing: [`PolicyIndex::finish_batch`] does every set at once).
    pub(super) fn reevaluate_net_set(&mut self, key: &NetSetKey) {
        if self.deferred {
            return;
        }
        let Some(entry) = self.net_sets.get(key) else { return };
        let mut candidates: Vec<SetId> = self.cross_sets.iter().copied().collect();
        if let Some(namespace) = &entry.facts.namespace {
            candidates.extend(self.sets_by_namespace.get(namespace).into_iter().flatten());
        }
        candidates.extend(entry.contributions.0.iter().map(|(id, _)| *id));
        candidates.sort_unstable();
        candidates.dedup();
        let labels = match &entry.facts.namespace {
            Some(namespace) => self.namespace_labels(namespace),
            None => std::borrow::Cow::Owned(BTreeMap::new()),
        };
        let changes: Vec<(SetId, Vec<IpSetMember>, Vec<IpSetMember>)> = candidates
            .into_iter()
            .filter_map(|id| {
                let set = self.sets.get(&id)?;
                let new = set.key.net_members(&entry.facts, &labels);
                let old = entry.contributions.get(id);
                (old != new.as_slice()).then(|| (id, old.to_vec(), new))
            })
            .collect();
        for (id, old, new) in changes {
            self.change_net_members(id, key, &old, &new);
            if let Some(entry) = self.net_sets.get_mut(key) {
                if new.is_empty() {
                    entry.contributions.remove(id);
                } else {
                    entry.contributions.insert(id, new);
                }
            }
        }
    }

    /// The network sets of a namespace (when its labels change, their memberships may too).
    pub(super) fn net_sets_in(&self, namespace: &str) -> Vec<NetSetKey> {
        self.net_sets.keys().filter(|(ns, _)| ns.as_deref() == Some(namespace)).cloned().collect()
    }

    /// The members each network set brings to a set being created.
    pub(super) fn net_sets_joining(&self, id: SetId) -> Vec<(NetSetKey, Vec<IpSetMember>)> {
        let Some(set) = self.sets.get(&id) else { return Vec::new() };
        self.net_sets
            .iter()
            .filter_map(|(key, entry)| {
                let labels = match &entry.facts.namespace {
                    Some(namespace) => self.namespace_labels(namespace),
                    None => std::borrow::Cow::Owned(BTreeMap::new()),
                };
                let members = set.key.net_members(&entry.facts, &labels);
                (!members.is_empty()).then(|| (key.clone(), members))
            })
            .collect()
    }

    /// Adds what [`PolicyIndex::net_sets_joining`] found to a new set.
    pub(super) fn join_net_sets(&mut self, id: SetId) {
        for (key, members) in self.net_sets_joining(id) {
            self.change_net_members(id, &key, &[], &members);
            if let Some(entry) = self.net_sets.get_mut(&key) {
                entry.contributions.insert(id, members);
            }
        }
    }
}
