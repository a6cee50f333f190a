//! The stream's view of the desired state (issue 13): every shared item (compiled policy, IP set)
//! once, the per-node items that depend on the rest of the cluster (BGP peers, the endpoints'
//! policy lists), and each node's span. A pure function of the desired state, so every operator
//! replica that computed the same state serves the same items.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::span::SpanItem;
use gingham_stream::{Batch, ItemKey, ItemKind};

use super::DesiredState;

/// Every item once, and which items each node needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamState {
    /// Every item, by key.
    pub items: BTreeMap<ItemKey, SpanItem>,
    /// Each node's span.
    pub spans: BTreeMap<String, BTreeSet<ItemKey>>,
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

/// The items of one node's span: its policies and sets (shared with every node that uses them, so
/// cloning one is cloning a pointer), its peers and its endpoints (its own).
fn node_items(node: &str, spec: &NodeNetworkSpec) -> Vec<(ItemKey, SpanItem)> {
    let policy = &spec.policy;
    let mut items = Vec::with_capacity(policy.policies.len() + policy.ip_sets.len() + 2);
    for compiled in &policy.policies {
        items.push((ItemKey::new(ItemKind::Policy, compiled.name.clone()), SpanItem::Policy(compiled.clone())));
    }
    for set in &policy.ip_sets {
        items.push((ItemKey::new(ItemKind::IpSet, set.name.clone()), SpanItem::IpSet(set.clone())));
    }
    if let Some(bgp) = &spec.bgp {
        items.push((ItemKey::new(ItemKind::BgpPeers, node), SpanItem::BgpPeers(bgp.peers.clone())));
    }
    items.push((ItemKey::new(ItemKind::Endpoints, node), SpanItem::Endpoints(policy.endpoints.clone())));
    items
}

impl StreamState {
    /// The stream's view of `desired`; refuses a state in which one item name has two contents.
    pub fn of(desired: &DesiredState) -> Result<Self, ItemConflict> {
        let mut state = Self::default();
        let mut owners: BTreeMap<ItemKey, &str> = BTreeMap::new();
        for (node, spec) in &desired.node_networks {
            let mut span = BTreeSet::new();
            for (key, item) in node_items(node, spec) {
                match state.items.get(&key) {
                    Some(held) if *held != item => {
                        let first = owners.get(&key).copied().unwrap_or_default().to_string();
                        return Err(ItemConflict { key, first, second: node.clone() });
                    }
                    Some(_) => {}
                    None => {
                        owners.insert(key.clone(), node);
                        state.items.insert(key.clone(), item);
                    }
                }
                span.insert(key);
            }
            state.spans.insert(node.clone(), span);
        }
        Ok(state)
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
