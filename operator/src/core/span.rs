//! The stream's view of the desired state (issue 13): every shared item (compiled policy, IP set)
//! once, the per-node items that depend on the rest of the cluster (BGP peers, the endpoints'
//! policy lists), and each node's span. A pure function of the desired state, so every operator
//! replica that computed the same state serves the same items.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::span::SpanItem;
use gingham_stream::{Batch, ItemKey};

use super::DesiredState;

/// Every item once, and which items each node needs. Kept up to date per changed node
/// ([`StreamState::update`]); [`StreamState::of`] computes it whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamState {
    /// Every item, by key.
    pub items: BTreeMap<ItemKey, SpanItem>,
    /// Each node's span.
    pub spans: BTreeMap<String, BTreeSet<ItemKey>>,
    /// How many spans hold each item; an item no span holds is dropped.
    users: BTreeMap<ItemKey, usize>,
}

/// Two nodes carry different content under one item's name: the compilation is not content
/// addressed where it must be, and the stream cannot serve both.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "item {key} differs between node {first} and node {second}; shared items must be compiled the same for every node"
)]
pub struct ItemConflict {
    /// The item.
    pub key: ItemKey,
    /// The node whose copy was taken.
    pub first: String,
    /// The node whose copy differs.
    pub second: String,
}

/// One node's items, each under its key.
type NodeItems = Vec<(ItemKey, SpanItem)>;

impl StreamState {
    /// The stream's view of `desired`; refuses a state in which one item name has two contents.
    pub fn of(desired: &DesiredState) -> Result<Self, ItemConflict> {
        let mut state = Self::default();
        state.update(desired, desired.spans.keys().map(String::as_str))?;
        Ok(state)
    }

    /// Brings the spans of `nodes` (those whose span changed, or went) and the items they
    /// hold up to `desired`, and returns what changed as one batch for the hub. Items that no span
    /// holds any more are dropped. On a conflict nothing is changed.
    pub fn update<'a>(
        &mut self,
        desired: &DesiredState,
        nodes: impl IntoIterator<Item = &'a str>,
    ) -> Result<Batch<SpanItem>, ItemConflict> {
        // First look, change nothing: each node's items, and no two contents under one name.
        let wanted: Vec<(&str, Option<NodeItems>)> =
            nodes.into_iter().map(|node| (node, desired.spans.get(node).map(|span| span.items(node)))).collect();
        let mut seen: BTreeMap<&ItemKey, (&SpanItem, &str)> = BTreeMap::new();
        for (node, items) in &wanted {
            for (key, item) in items.iter().flatten() {
                match seen.get(key) {
                    Some((first_item, first)) if *first_item != item => {
                        return Err(ItemConflict {
                            key: key.clone(),
                            first: (*first).to_string(),
                            second: (*node).to_string(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(key, (item, node));
                    }
                }
            }
        }
        let mut batch = Batch::default();
        let mut released = Vec::new();
        for (key, (item, _)) in seen {
            if self.items.get(key) != Some(item) {
                self.items.insert(key.clone(), item.clone());
                batch.items.insert(key.clone(), Some(item.clone()));
            }
        }
        for (node, items) in wanted {
            let span: Option<BTreeSet<ItemKey>> = items.map(|items| items.into_iter().map(|(key, _)| key).collect());
            let old = match &span {
                Some(span) if self.spans.get(node) == Some(span) => continue,
                Some(span) => self.spans.insert(node.to_string(), span.clone()),
                None => self.spans.remove(node),
            };
            if span.is_none() && old.is_none() {
                continue;
            }
            let (old, new) = (old.unwrap_or_default(), span.clone().unwrap_or_default());
            for key in new.difference(&old) {
                *self.users.entry(key.clone()).or_default() += 1;
            }
            for key in old.difference(&new) {
                if let Some(count) = self.users.get_mut(key) {
                    *count = count.saturating_sub(1);
                    released.push(key.clone());
                }
            }
            batch.spans.insert(node.to_string(), span);
        }
        for key in released {
            if self.users.get(&key) == Some(&0) {
                self.users.remove(&key);
                self.items.remove(&key);
                batch.items.insert(key, None);
            }
        }
        Ok(batch)
    }

    /// The batch that takes a hub holding `self` to `next`: the items that changed, appeared or
    /// went, and the spans that changed.
    pub fn batch_to(&self, next: &Self) -> Batch<SpanItem> {
        let mut batch = Batch::default();
        for (key, item) in &next.items {
            if self.items.get(key) != Some(item) {
                batch.items.insert(key.clone(), Some(item.clone()));
            }
        }
        batch
            .items
            .extend(self.items.keys().filter(|key| !next.items.contains_key(*key)).map(|key| (key.clone(), None)));
        for (node, span) in &next.spans {
            if self.spans.get(node) != Some(span) {
                batch.spans.insert(node.clone(), Some(span.clone()));
            }
        }
        batch
            .spans
            .extend(self.spans.keys().filter(|node| !next.spans.contains_key(*node)).map(|node| (node.clone(), None)));
        batch
    }
}

#[cfg(test)]
#[path = "span_tests.rs"]
mod tests;
