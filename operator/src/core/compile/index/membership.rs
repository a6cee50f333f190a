//! The set registry: creating and dropping sets as policies come and go, and keeping their
//! members in step with the endpoints' contributions.

use std::collections::{BTreeMap, BTreeSet};

use super::{EndpointKey, PolicyIndex, SetEntry, SetId};
use crate::core::compile::sets::{Scope, SetKey};

impl PolicyIndex {
    pub(super) fn change_members(&mut self, id: SetId, key: &EndpointKey, old: &[String], new: &[String]) {
        let Some(set) = self.sets.get_mut(&id) else { return };
        for member in old {
            if let Some(count) = set.members.get_mut(member) {
                *count -= 1;
                if *count == 0 {
                    set.members.remove(member);
                }
            }
        }
        for member in new {
            *set.members.entry(member.clone()).or_insert(0) += 1;
        }
        if new.is_empty() {
            set.contributors.remove(key);
        } else {
            set.contributors.insert(key.clone());
        }
        for node in self.set_nodes.get(&id).into_iter().flatten() {
            self.dirty.refresh.entry(node.clone()).or_default().insert(id);
        }
    }

    pub(super) fn acquire_set(&mut self, key: &SetKey) {
        if let Some(set) = self.set_ids.get(key).and_then(|id| self.sets.get_mut(id)) {
            set.users += 1;
            return;
        }
        let id = self.next_set;
        self.next_set += 1;
        self.set_ids.insert(key.clone(), id);
        match &key.scope {
            Scope::Namespace(ns) => self.sets_by_namespace.entry(ns.clone()).or_default().insert(id),
            Scope::Namespaces(_) | Scope::Everywhere => self.cross_sets.insert(id),
        };
        let candidates: Box<dyn Iterator<Item = &EndpointKey>> = match &key.scope {
            Scope::Namespace(ns) => Box::new(self.by_namespace.get(ns).into_iter().flatten()),
            Scope::Namespaces(_) | Scope::Everywhere => Box::new(self.endpoints.keys()),
        };
        let found: Vec<(EndpointKey, Vec<String>)> = candidates
            .filter_map(|endpoint_key| {
                let endpoint = self.endpoints.get(endpoint_key)?;
                let labels = self.namespace_labels(&endpoint.namespace);
                let facts = self.facts(&endpoint_key.1, &endpoint.namespace);
                let members = key.members(&endpoint.namespace, &labels, &facts, &endpoint.address);
                (!members.is_empty()).then(|| (endpoint_key.clone(), members))
            })
            .collect();
        let set = SetEntry {
            key: key.clone(),
            name: key.name(),
            members: BTreeMap::new(),
            contributors: BTreeSet::new(),
            users: 1,
        };
        self.sets.insert(id, set);
        for (endpoint_key, members) in found {
            self.change_members(id, &endpoint_key, &[], &members);
            if let Some(endpoint) = self.endpoints.get_mut(&endpoint_key) {
                endpoint.contributions.insert(id, members);
            }
        }
    }

    pub(super) fn release_set(&mut self, key: &SetKey) {
        let Some(&id) = self.set_ids.get(key) else { return };
        let Some(set) = self.sets.get_mut(&id) else { return };
        set.users -= 1;
        if set.users > 0 {
            return;
        }
        let Some(set) = self.sets.remove(&id) else { return };
        self.set_ids.remove(key);
        for contributor in &set.contributors {
            if let Some(endpoint) = self.endpoints.get_mut(contributor) {
                endpoint.contributions.remove(id);
            }
        }
        match &key.scope {
            Scope::Namespace(ns) => {
                if let Some(ids) = self.sets_by_namespace.get_mut(ns) {
                    ids.remove(&id);
                }
            }
            Scope::Namespaces(_) | Scope::Everywhere => {
                self.cross_sets.remove(&id);
            }
        }
    }

    /// A set's name and sorted members.
    pub fn set_view(&self, id: SetId) -> Option<(&str, Vec<String>)> {
        self.sets.get(&id).map(|s| (s.name.as_str(), s.members.keys().cloned().collect()))
    }
}
