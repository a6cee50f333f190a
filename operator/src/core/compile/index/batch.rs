//! The end of a batch load: every endpoint's set memberships and policies at once, then every
//! network set's memberships. Endpoints whose
//! pods carry the same labels (which name their namespace) are in the same sets and under the same
//! policies, so each such group is matched once; only the members (addresses, named ports) are
//! worked out per endpoint.

use std::sync::Arc;

use gingham_crds::api::nodenetwork::uid_matches;

use super::{PolicyIndex, SetId};
use crate::core::compile::fxhash::Map;
use crate::core::facts::{LabelList, PodFacts};

/// What the endpoints of one namespace whose pods carry the same labels match.
struct Matched {
    namespace: String,
    sets: Vec<SetId>,
    ingress: Vec<Arc<str>>,
    egress: Vec<Arc<str>>,
}

impl PolicyIndex {
    /// Works out every endpoint's set memberships and policies after a batch load and switches to
    /// incremental mode. The result is the one [`PolicyIndex::reevaluate`] gives each endpoint.
    pub fn finish_batch(&mut self) {
        self.deferred = false;
        let mut groups: Map<LabelList, Matched> = Map::default();
        for key in self.endpoint_keys() {
            let Some(endpoint) = self.endpoint(&key) else { continue };
            let (endpoint_id, addresses, uid) = (endpoint.id, endpoint.addresses.clone(), endpoint.uid.clone());
            let namespace = endpoint.namespace.clone();
            let facts = self.shared_facts(&key.1);
            let fresh;
            let matched = match groups.get(&facts.labels) {
                Some(known) if known.namespace == namespace => known,
                Some(_) => {
                    fresh = self.matched(&namespace, &facts);
                    &fresh
                }
                None => groups.entry(facts.labels.clone()).or_insert(self.matched(&namespace, &facts)),
            };
            if !addresses.is_empty() && uid_matches(facts.uid.as_deref(), uid.as_deref()) {
                for &id in &matched.sets {
                    let Some(set) = self.sets.get(&id) else { continue };
                    let members = set.key.members_of_match(&facts, &addresses);
                    if members.is_empty() {
                        continue;
                    }
                    self.change_members(id, endpoint_id, &[], &members);
                    if let Some(endpoint) = self.endpoint_mut(&key) {
                        endpoint.contributions.insert(id, members);
                    }
                }
            }
            if self.endpoint(&key).is_some_and(|e| e.ingress != matched.ingress || e.egress != matched.egress) {
                self.set_policies(&key, matched.ingress.clone(), matched.egress.clone());
            }
        }
        let net_sets: Vec<_> = self.net_sets.keys().cloned().collect();
        for key in net_sets {
            self.reevaluate_net_set(&key);
        }
    }

    /// The sets and policies an endpoint in `namespace` whose pod has `facts` matches.
    fn matched(&self, namespace: &str, facts: &PodFacts) -> Matched {
        let labels = self.namespace_labels(namespace);
        let in_namespace = self.sets_by_namespace.get(namespace).into_iter().flatten();
        let mut sets: Vec<SetId> = self
            .cross_sets
            .iter()
            .chain(in_namespace)
            .copied()
            .filter(|id| self.sets.get(id).is_some_and(|set| set.key.matches(namespace, &labels, &facts.labels)))
            .collect();
        sets.sort_unstable();
        sets.dedup();
        let (ingress, egress) = self.applying(namespace, &labels, facts);
        Matched { namespace: namespace.to_string(), sets, ingress, egress }
    }
}
