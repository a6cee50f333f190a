//! What a subscriber receives ([`Delivery`]) and the subscriber's copy of its span ([`Replica`]), which
//! applies snapshots and deltas and knows the revision it holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::item::{Item, ItemKey, PatchError, Revision};

/// One item's update in a delta.
#[derive(Clone, Debug, PartialEq)]
pub enum Update<V: Item> {
    /// The item's whole current value.
    Set(Arc<V>),
    /// A change in place to the value the subscriber holds.
    Patch(Arc<V::Patch>),
    /// The item left the span (or is gone).
    Remove,
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery<V: Item> {
    /// Every item of the span at `revision`. The subscriber replaces its copy with it; what it
    /// programmed from the old copy is diffed against the new one, never flushed first.
    Snapshot {
        /// The revision the snapshot is of.
        revision: Revision,
        /// The span's items.
        items: BTreeMap<ItemKey, Arc<V>>,
    },
    /// What changed in the span from `from` (the revision the subscriber holds) to `to`.
    Delta {
        /// The revision the delta applies to.
        from: Revision,
        /// The revision it brings the subscriber to.
        to: Revision,
        /// The changed items (none when the subscriber was already current).
        updates: BTreeMap<ItemKey, Update<V>>,
    },
}

impl<V: Item> Delivery<V> {
    /// The revision the subscriber holds once it applied this.
    pub fn revision(&self) -> Revision {
        match self {
            Self::Snapshot { revision, .. } => *revision,
            Self::Delta { to, .. } => *to,
        }
    }

    /// How many items it carries (set, patched or removed).
    pub fn len(&self) -> usize {
        match self {
            Self::Snapshot { items, .. } => items.len(),
            Self::Delta { updates, .. } => updates.len(),
        }
    }

    /// Whether it carries no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a replica could not apply a sync. Either way it keeps what it had and resubscribes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplicaError {
    /// The delta starts from another revision than the one held.
    #[error("a delta from revision {from} does not apply to revision {held:?}; resubscribe with the revision held")]
    RevisionGap {
        /// Where the delta starts.
        from: Revision,
        /// What the replica holds.
        held: Option<Revision>,
    },
    /// A value arrived under a key of another kind.
    #[error("the value sent for {key} is of another kind; resubscribe without a revision")]
    WrongKind {
        /// The item.
        key: ItemKey,
    },
    /// A patch names an item the replica does not hold.
    #[error("a patch for {key} arrived, but the copy has no such item; resubscribe without a revision")]
    PatchWithoutItem {
        /// The item.
        key: ItemKey,
    },
    /// A patch does not fit the held item.
    #[error("the patch for {key} does not apply")]
    Patch {
        /// The item.
        key: ItemKey,
        /// Why.
        #[source]
        source: PatchError,
    },
}

/// A subscriber's copy of its span. A sync is applied whole or not at all.
#[derive(Clone, Debug)]
pub struct Replica<V: Item> {
    revision: Option<Revision>,
    items: BTreeMap<ItemKey, Arc<V>>,
}

impl<V: Item> Default for Replica<V> {
    fn default() -> Self {
        Self { revision: None, items: BTreeMap::new() }
    }
}

impl<V: Item> Replica<V> {
    /// The revision held (`None` before the first snapshot): what to resubscribe with.
    pub fn revision(&self) -> Option<Revision> {
        self.revision
    }

    /// The items held.
    pub fn items(&self) -> &BTreeMap<ItemKey, Arc<V>> {
        &self.items
    }

    /// Applies a snapshot or a delta. On error nothing changes.
    pub fn apply(&mut self, sync: Delivery<V>) -> Result<(), ReplicaError> {
        match sync {
            Delivery::Snapshot { revision, items } => {
                if let Some(key) = items.iter().find(|(key, value)| !value.fits(key)).map(|(key, _)| key) {
                    return Err(ReplicaError::WrongKind { key: key.clone() });
                }
                self.items = items;
                self.revision = Some(revision);
            }
            Delivery::Delta { from, to, updates } => {
                if self.revision != Some(from) {
                    return Err(ReplicaError::RevisionGap { from, held: self.revision });
                }
                let mut items = self.items.clone();
                for (key, update) in updates {
                    apply_update(&mut items, key, update)?;
                }
                self.items = items;
                self.revision = Some(to);
            }
        }
        Ok(())
    }
}

fn apply_update<V: Item>(
    items: &mut BTreeMap<ItemKey, Arc<V>>,
    key: ItemKey,
    update: Update<V>,
) -> Result<(), ReplicaError> {
    match update {
        Update::Set(value) if !value.fits(&key) => return Err(ReplicaError::WrongKind { key }),
        Update::Set(value) => {
            items.insert(key, value);
        }
        Update::Remove => {
            items.remove(&key);
        }
        Update::Patch(patch) => {
            let Some(value) = items.get_mut(&key) else {
                return Err(ReplicaError::PatchWithoutItem { key });
            };
            Arc::make_mut(value).apply(&patch).map_err(|source| ReplicaError::Patch { key, source })?;
        }
    }
    Ok(())
}
