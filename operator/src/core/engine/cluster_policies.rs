//! The engine's handling of the network-policy-api kinds: each is translated into a
//! GlobalNetworkPolicy (see [`crate::core::cluster_policy`]) that goes to the policy index and to
//! the desired state. `nodes` peers resolve against the nodes' addresses, so a change to the
//! nodes' labels or addresses translates these policies again.

use super::store::{Key, Kind, Object};
use super::{Engine, Source};
use crate::core::cluster_policy::normalize::{from_anp, from_banp, from_cnp};
use crate::core::cluster_policy::translate::{NodePeer, translate};
use crate::core::compile::{global_name, global_policy_entry};

/// The kinds this module translates.
pub(super) const KINDS: [Kind; 3] =
    [Kind::ClusterNetworkPolicy, Kind::AdminNetworkPolicy, Kind::BaselineAdminNetworkPolicy];

impl Engine {
    /// The node peers of the nodes in the store.
    fn observed_node_peers(&self) -> Vec<NodePeer> {
        self.store
            .all(Kind::Node)
            .filter_map(|o| if let Object::Node(node) = o { Some(NodePeer::of(node)) } else { None })
            .collect()
    }

    /// Reads the nodes for `nodes` peers; when what they offer changed, translates every cluster
    /// policy again.
    pub(super) fn refresh_node_peers(&mut self) {
        let peers = self.observed_node_peers();
        if peers == self.node_peers {
            return;
        }
        self.node_peers = peers;
        for kind in KINDS {
            let keys: Vec<Key> = self.store.all(kind).map(Object::key).collect();
            for key in keys {
                let current = self.store.get(kind, &key).cloned();
                self.cluster_policy_changed(kind, &key, current.as_ref());
            }
        }
    }

    /// Translates one ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy
    /// (`current`: `None` when deleted) and replaces its previous translation.
    pub(super) fn cluster_policy_changed(&mut self, kind: Kind, key: &Key, current: Option<&Object>) {
        let (normalized, mut problems) = match current {
            Some(Object::ClusterNetworkPolicy(o)) => from_cnp(o),
            Some(Object::AdminNetworkPolicy(o)) => from_anp(o),
            Some(Object::BaselineAdminNetworkPolicy(o)) => from_banp(o),
            _ => (None, Vec::new()),
        };
        let translated = normalized.map(|policy| {
            let (name, policy, more) = translate(&policy, &self.node_peers);
            problems.extend(more);
            (name, policy)
        });
        let source = (kind, key.1.clone());
        let previous = self.cluster_translations.remove(&source);
        let wanted = translated.as_ref().and_then(|(name, policy)| policy.as_ref().map(|_| name.clone()));
        if let Some(old) = previous.filter(|old| Some(old) != wanted.as_ref()) {
            if self.desired.translated_global_policies.remove(&old).is_some() {
                self.changes.translated_global_policies.insert(old.clone());
            }
            self.index.delete_policy(&global_name(&old));
        }
        if let Some((name, Some(policy))) = translated {
            let (entry, more) = global_policy_entry(&policy, &self.tiers);
            problems.extend(more);
            match entry {
                Some(entry) => self.index.upsert_policy(entry),
                None => self.index.delete_policy(&global_name(&name)),
            }
            if self.desired.translated_global_policies.get(&name) != Some(&policy) {
                self.desired.translated_global_policies.insert(name.clone(), policy);
                self.changes.translated_global_policies.insert(name.clone());
            }
            self.cluster_translations.insert(source, name);
        }
        self.set_problems(Source::Object(kind, key.clone()), problems);
    }
}
