//! The set registry: creating and dropping sets as policies come and go, and keeping their
//! members in step with the endpoints' contributions.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::nodenetwork::IpSet;
use gingham_crds::api::{IpFamily, IpSetMember, Shared};

use super::{EndpointId, EndpointKey, PolicyIndex, SetEntry, SetId};
use crate::core::compile::services::ServiceEndpoints;
use crate::core::compile::sets::{Scope, SetKey};
use crate::core::netsets::NetSetKey;

impl PolicyIndex {
    /// The members an endpoint brings to a set being created, if any (none without an address:
    /// a pod only scheduled here, of which there may be many).
    fn joins(&self, set: &SetKey, key: EndpointKey) -> Option<(EndpointKey, EndpointId, Vec<IpSetMember>)> {
        let endpoint = self.endpoint(&key).filter(|e| !e.addresses.is_empty())?;
        let labels = self.namespace_labels(&endpoint.namespace);
        let facts = self.facts(&key.1, &endpoint.namespace);
        let members = endpoint.members_of(set, &labels, &facts);
        let id = endpoint.id;
        (!members.is_empty()).then_some((key, id, members))
    }

    /// Moves an endpoint's contribution to set `id` from `old` to `new` members.
    pub(super) fn change_members(&mut self, id: SetId, endpoint: EndpointId, old: &[IpSetMember], new: &[IpSetMember]) {
        let Some(set) = self.sets.get_mut(&id) else { return };
        set.move_members(old, new);
        if new.is_empty() {
            set.contributors.remove(&endpoint);
        } else {
            set.contributors.insert(endpoint);
        }
        self.stale_views.insert(id);
        self.dirty.refresh.insert(id);
    }

    /// Moves a network set's contribution to set `id` from `old` to `new` members (both sorted, as
    /// a network set's nets are): only the members that differ are counted out and in, so one CIDR
    /// changed in a set of 100,000 is two map operations, not 200,000.
    pub(super) fn change_net_members(
        &mut self,
        id: SetId,
        net_set: &NetSetKey,
        old: &[IpSetMember],
        new: &[IpSetMember],
    ) {
        let Some(set) = self.sets.get_mut(&id) else { return };
        let (gone, came) = sorted_difference(old, new);
        set.move_members(&gone, &came);
        if new.is_empty() {
            set.net_contributors.remove(net_set);
        } else {
            set.net_contributors.insert(net_set.clone());
        }
        self.stale_views.insert(id);
        self.dirty.refresh.insert(id);
    }

    /// Takes a reference to a set, creating it on first use; returns its id.
    pub(super) fn acquire_set(&mut self, key: &SetKey) -> SetId {
        if let Some(&id) = self.set_ids.get(key)
            && let Some(set) = self.sets.get_mut(&id)
        {
            set.users += 1;
            return id;
        }
        let id = self.next_set;
        self.next_set += 1;
        self.set_ids.insert(key.clone(), id);
        let views = IpFamily::BOTH.map(|family| Shared::new(key.view(family, [])));
        let set = SetEntry {
            key: key.clone(),
            members: BTreeMap::new(),
            views,
            contributors: BTreeSet::new(),
            net_contributors: BTreeSet::new(),
            users: 1,
        };
        self.sets.insert(id, set);
        if let Some(service) = &key.service {
            // No endpoint contributes: the members are the service's, whenever it is known.
            let name = (service.namespace.clone(), service.name.clone());
            self.service_sets.entry(name.clone()).or_default().insert(id);
            let members = self.services.get(&name).map(|s| s.members(service.ports)).unwrap_or_default();
            self.replace_members(id, members);
            return id;
        }
        match &key.scope {
            Scope::Namespace(ns) => self.sets_by_namespace.entry(ns.clone()).or_default().insert(id),
            Scope::Namespaces(_) | Scope::Everywhere => self.cross_sets.insert(id),
        };
        if self.deferred {
            return id;
        }
        let namespace = match &key.scope {
            Scope::Namespace(ns) => Some(ns.as_str()),
            Scope::Namespaces(_) | Scope::Everywhere => None,
        };
        let found: Vec<(EndpointKey, EndpointId, Vec<IpSetMember>)> = self
            .candidates(&self.addressed, &key.selector, namespace)
            .into_iter()
            .filter_map(|candidate| self.joins(key, candidate))
            .collect();
        for (endpoint_key, endpoint_id, members) in found {
            self.change_members(id, endpoint_id, &[], &members);
            if let Some(endpoint) = self.endpoint_mut(&endpoint_key) {
                endpoint.contributions.insert(id, members);
            }
        }
        self.join_net_sets(id);
        id
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
        self.stale_views.remove(&id);
        for key in self.keys_of(set.contributors.iter().copied()) {
            if let Some(endpoint) = self.endpoint_mut(&key) {
                endpoint.contributions.remove(id);
            }
        }
        for key in &set.net_contributors {
            if let Some(entry) = self.net_sets.get_mut(key) {
                entry.contributions.remove(id);
            }
        }
        if let Some(service) = &key.service {
            let name = (service.namespace.clone(), service.name.clone());
            if let Some(ids) = self.service_sets.get_mut(&name) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.service_sets.remove(&name);
                }
            }
            return;
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

    /// Records a Service's endpoints (`None`: it has no EndpointSlice any more) and gives the
    /// sets of that service their new members: only those sets change, and only the nodes that
    /// use them are patched.
    pub fn set_service(&mut self, namespace: &str, name: &str, endpoints: Option<ServiceEndpoints>) {
        let key = (namespace.to_string(), name.to_string());
        let changed = match endpoints {
            Some(endpoints) => self.services.insert(key.clone(), endpoints.clone()) != Some(endpoints),
            None => self.services.remove(&key).is_some(),
        };
        if !changed {
            return;
        }
        let ids: Vec<SetId> = self.service_sets.get(&key).into_iter().flatten().copied().collect();
        for id in ids {
            let Some(ports) = self.sets.get(&id).and_then(|set| set.key.service.as_ref()).map(|s| s.ports) else {
                continue;
            };
            let members = self.services.get(&key).map(|s| s.members(ports)).unwrap_or_default();
            self.replace_members(id, members);
        }
    }

    /// Gives a set that no endpoint contributes to (a service set) exactly these members.
    fn replace_members(&mut self, id: SetId, members: Vec<IpSetMember>) {
        let Some(set) = self.sets.get_mut(&id) else { return };
        let fresh: BTreeMap<IpSetMember, u32> = members.into_iter().map(|m| (m, 1)).collect();
        if set.members != fresh {
            set.members = fresh;
            self.stale_views.insert(id);
            self.dirty.refresh.insert(id);
        }
    }

    /// A set as nodes carry it, its IPv4 and its IPv6 set (up to date after
    /// [`PolicyIndex::take_dirty`]).
    pub fn set_views(&self, id: SetId) -> Option<&[Shared<IpSet>; 2]> {
        self.sets.get(&id).map(|s| &s.views)
    }

    /// The nodes that use a set.
    pub fn set_users(&self, id: SetId) -> impl Iterator<Item = &String> {
        self.set_nodes.get(&id).into_iter().flatten()
    }

    /// Rebuilds the views of the sets whose members changed.
    pub(super) fn refresh_views(&mut self) {
        for id in std::mem::take(&mut self.stale_views) {
            if let Some(set) = self.sets.get_mut(&id) {
                // Each family's view is rebuilt only when it changed, so that an IPv4 member
                // leaving does not make the IPv6 set look changed.
                for (view, family) in set.views.iter_mut().zip(IpFamily::BOTH) {
                    let fresh = set.key.view(family, set.members.keys());
                    if **view != fresh {
                        *view = Shared::new(fresh);
                    }
                }
            }
        }
    }
}

impl SetEntry {
    /// Counts `old` members out and `new` ones in: a member stays while anything contributes it
    /// (two pods or network sets may bring the same address or CIDR).
    fn move_members(&mut self, old: &[IpSetMember], new: &[IpSetMember]) {
        for member in old {
            if let Some(count) = self.members.get_mut(member) {
                *count -= 1;
                if *count == 0 {
                    self.members.remove(member);
                }
            }
        }
        for member in new {
            *self.members.entry(*member).or_insert(0) += 1;
        }
    }
}

/// The members only in `old` and those only in `new`, of two sorted lists.
fn sorted_difference(old: &[IpSetMember], new: &[IpSetMember]) -> (Vec<IpSetMember>, Vec<IpSetMember>) {
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                gone.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                gone.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                came.push(*b);
                j += 1;
            }
            (None, None) => return (gone, came),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use gingham_crds::api::Decode;

    use super::*;

    fn members(texts: &[&str]) -> Vec<IpSetMember> {
        let mut list: Vec<IpSetMember> = texts.iter().map(|t| IpSetMember::decode(t).unwrap()).collect();
        list.sort();
        list
    }

    #[test]
    fn sorted_lists_differ_by_what_each_alone_holds() {
        let old = members(&["10.0.0.0/8", "10.1.0.0/16", "fd00::/64"]);
        let new = members(&["10.1.0.0/16", "10.2.0.0/16", "fd00::/64"]);
        assert_eq!(sorted_difference(&old, &new), (members(&["10.0.0.0/8"]), members(&["10.2.0.0/16"])));
        assert_eq!(sorted_difference(&[], &members(&["10.0.0.1"])), (vec![], members(&["10.0.0.1"])));
        assert_eq!(sorted_difference(&old, &old), (vec![], vec![]));
    }
}
