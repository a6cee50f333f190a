//! The serving side: every shared item once, each node's span (the items it needs), and a bounded
//! history of revisions from which a subscriber gets a snapshot or only what it missed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::item::{Item, ItemKey, Revision};
use crate::replica::{Delivery, Update};

/// Why a batch was refused. A refused batch changes nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    /// Revisions must increase.
    #[error("revision {given} is not after the current revision {head}; publish each revision once, in order")]
    StaleRevision {
        /// The revision the batch carried.
        given: Revision,
        /// The hub's current revision.
        head: Revision,
    },
    /// A node's span names an item that the hub does not hold.
    #[error("the span of node {node} names {key}, which no batch has published; publish the item with the span")]
    DanglingKey {
        /// The node.
        node: String,
        /// The missing item.
        key: ItemKey,
    },
}

/// One revision's changes: items set, patched or removed, and spans replaced.
#[derive(Clone, Debug)]
pub struct Batch<V: Item> {
    /// Each changed item: its new value, or `None` when it is gone.
    pub items: BTreeMap<ItemKey, Option<V>>,
    /// Each node whose span changed: its whole new span, or `None` when the node is gone.
    pub spans: BTreeMap<String, Option<BTreeSet<ItemKey>>>,
}

impl<V: Item> Default for Batch<V> {
    fn default() -> Self {
        Self { items: BTreeMap::new(), spans: BTreeMap::new() }
    }
}

/// How one item changed in one revision.
#[derive(Clone, Debug)]
enum Change<P> {
    /// Set whole (new, or replaced by a value no patch describes).
    Whole,
    /// Changed in place.
    Patched(Arc<P>),
    /// Gone.
    Removed,
}

/// One node's span change in one revision.
#[derive(Clone, Debug, Default)]
struct SpanChange {
    added: BTreeSet<ItemKey>,
    removed: BTreeSet<ItemKey>,
}

/// What one revision changed, kept for subscribers that catch up.
#[derive(Clone, Debug)]
struct Event<P> {
    revision: Revision,
    items: BTreeMap<ItemKey, Change<P>>,
    spans: BTreeMap<String, SpanChange>,
}

/// What publishing a batch did: the revision, and the nodes whose span saw a change (the only ones
/// the transport needs to wake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The new current revision.
    pub revision: Revision,
    /// Nodes that have something new.
    pub nodes: BTreeSet<String>,
}

/// One node's span at one revision, taken out of the hub so that work on it (hashing its items for
/// a resync by content) holds no lock.
#[derive(Clone, Debug)]
pub struct SpanAt<V: Item> {
    /// The revision.
    pub revision: Revision,
    /// Every item of the span.
    pub items: BTreeMap<ItemKey, Arc<V>>,
}

impl<V: Item> SpanAt<V> {
    /// What a subscriber needs when the hub cannot vouch for the revision `from` it holds (another
    /// replica's, or one forgotten), but it said what it holds, item by item (`held`: a digest per
    /// item; `same` says whether a digest stands for a value): a delta by content with the whole
    /// value of every item of the span that it holds otherwise, and a removal of every item it
    /// holds outside the span; nothing when its copy is current. This is how a subscriber fails
    /// over to another replica, whose revisions do not line up with its own, without a snapshot.
    pub fn resync<D>(
        self,
        from: Revision,
        held: &BTreeMap<ItemKey, D>,
        same: impl Fn(&ItemKey, &V, &D) -> bool,
    ) -> Delivery<V> {
        let gone = held.keys().filter(|key| !self.items.contains_key(*key)).map(|key| (key.clone(), Update::Remove));
        let gone: Vec<_> = gone.collect();
        let stale = |(key, value): &(ItemKey, Arc<V>)| !held.get(key).is_some_and(|digest| same(key, value, digest));
        let mut updates: BTreeMap<ItemKey, Update<V>> =
            self.items.into_iter().filter(stale).map(|(key, value)| (key, Update::Set(value))).collect();
        updates.extend(gone);
        Delivery::Delta { from, to: self.revision, updates }
    }
}

/// The serving side's state. Pure: the transport calls [`Hub::publish`] when the computation
/// produced a revision and [`Hub::catch_up`] when a subscriber (re)connects or is woken.
#[derive(Clone, Debug)]
pub struct Hub<V: Item> {
    items: BTreeMap<ItemKey, Arc<V>>,
    spans: BTreeMap<String, BTreeSet<ItemKey>>,
    interested: BTreeMap<ItemKey, BTreeSet<String>>,
    /// The last revision that changed something in each node's span.
    touched: BTreeMap<String, Revision>,
    history: VecDeque<Event<V::Patch>>,
    /// The revision the oldest kept event was published on top of (`None`: the empty start).
    base: Option<Revision>,
    /// The first revision this hub published: nothing before it can be vouched for.
    first: Option<Revision>,
    head: Option<Revision>,
    max_history: usize,
}

impl<V: Item> Hub<V> {
    /// An empty hub that keeps the last `max_history` revisions for catching up.
    pub fn new(max_history: usize) -> Self {
        Self {
            items: BTreeMap::new(),
            spans: BTreeMap::new(),
            interested: BTreeMap::new(),
            touched: BTreeMap::new(),
            history: VecDeque::new(),
            base: None,
            first: None,
            head: None,
            max_history: max_history.max(1),
        }
    }

    /// The current revision (`None` before the first batch).
    pub fn head(&self) -> Option<Revision> {
        self.head
    }

    /// How many items the hub holds, each once.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// The nodes whose span holds `key`.
    pub fn interested(&self, key: &ItemKey) -> impl Iterator<Item = &str> {
        self.interested.get(key).into_iter().flatten().map(String::as_str)
    }

    /// Applies one revision's batch, or refuses it whole.
    pub fn publish(&mut self, revision: Revision, batch: Batch<V>) -> Result<Published, HubError> {
        if let Some(head) = self.head.filter(|head| revision <= *head) {
            return Err(HubError::StaleRevision { given: revision, head });
        }
        self.check_spans(&batch)?;
        let mut event = Event { revision, items: BTreeMap::new(), spans: BTreeMap::new() };
        let mut nodes = BTreeSet::new();
        for (key, value) in batch.items {
            let Some(change) = self.set_item(&key, value) else { continue };
            nodes.extend(self.interested(&key).map(str::to_owned));
            event.items.insert(key, change);
        }
        for (node, span) in batch.spans {
            let change = self.set_span(&node, span.unwrap_or_default());
            if !change.added.is_empty() || !change.removed.is_empty() {
                nodes.insert(node.clone());
                event.spans.insert(node, change);
            }
        }
        self.head = Some(revision);
        self.first.get_or_insert(revision);
        self.touched.extend(nodes.iter().map(|node| (node.clone(), revision)));
        self.history.push_back(event);
        while self.history.len() > self.max_history {
            self.base = self.history.pop_front().map(|event| event.revision);
        }
        Ok(Published { revision, nodes })
    }

    /// What `node` needs to be at the current revision, given the revision it holds: what
    /// [`Hub::resume`] gives, else a whole snapshot of its span.
    pub fn catch_up(&self, node: &str, since: Option<Revision>) -> Delivery<V> {
        since.and_then(|since| self.resume(node, since)).unwrap_or_else(|| self.snapshot(node))
    }

    /// What `node` missed since `since`, a revision of this hub: nothing when its span has not
    /// changed since, else only what changed while the hub still has that history; `None` when the
    /// hub cannot vouch for `since`. A node whose span has been quiet never needs more, however
    /// old its revision: computation is deterministic, so every revision of this hub since the last
    /// change of its span holds the same span. (Revisions of another hub, such as another replica,
    /// do not count: the caller must know that `since` is this hub's.)
    pub fn resume(&self, node: &str, since: Revision) -> Option<Delivery<V>> {
        let head = self.head?;
        let vouched = self.first.is_some_and(|first| first <= since) && since <= head;
        if vouched && !self.changed_since(node, since) {
            return Some(Delivery::Delta { from: since, to: head, updates: BTreeMap::new() });
        }
        self.knows(since).then(|| {
            let window = self.history.iter().filter(move |event| event.revision > since);
            Delivery::Delta { from: since, to: head, updates: self.updates(node, window) }
        })
    }

    /// `node`'s span at the current revision: what a snapshot or a resync by content is made of.
    pub fn span(&self, node: &str) -> SpanAt<V> {
        let span = self.spans.get(node).into_iter().flatten();
        let items = span.filter_map(|key| self.items.get(key).map(|value| (key.clone(), Arc::clone(value)))).collect();
        SpanAt { revision: self.head.unwrap_or_default(), items }
    }

    /// Whether `node`'s span changed after `since`, so that it has something to receive.
    pub fn changed_since(&self, node: &str, since: Revision) -> bool {
        self.touched.get(node).is_some_and(|touched| *touched > since)
    }

    /// A snapshot of `node`'s span at the current revision.
    fn snapshot(&self, node: &str) -> Delivery<V> {
        let SpanAt { revision, items } = self.span(node);
        Delivery::Snapshot { revision, items }
    }

    /// Whether the hub can tell what changed after `since`: it published `since`, or `since` is
    /// the revision its oldest kept event was published on.
    fn knows(&self, since: Revision) -> bool {
        self.head == Some(since) || self.base == Some(since) || self.history.iter().any(|event| event.revision == since)
    }

    /// The updates that take `node` from its span's state before `window` to the current one: a
    /// patch where its item changed once, in place, and stayed in the span; the whole value where it
    /// changed otherwise or entered the span; a removal where it left.
    fn updates<'a>(
        &self,
        node: &str,
        window: impl DoubleEndedIterator<Item = &'a Event<V::Patch>> + Clone,
    ) -> BTreeMap<ItemKey, Update<V>>
    where
        V::Patch: 'a,
    {
        let current = self.spans.get(node).cloned().unwrap_or_default();
        let mut before = current.clone();
        for change in window.clone().rev().filter_map(|event| event.spans.get(node)) {
            before.retain(|key| !change.added.contains(key));
            before.extend(change.removed.iter().cloned());
        }
        let mut changes: BTreeMap<&ItemKey, Vec<&Change<V::Patch>>> = BTreeMap::new();
        for event in window {
            for (key, change) in event.items.iter().filter(|(key, _)| current.contains(key) || before.contains(key)) {
                changes.entry(key).or_default().push(change);
            }
        }
        let mut updates = BTreeMap::new();
        for key in &current {
            let patch = match changes.get(key).map(Vec::as_slice) {
                _ if !before.contains(key) => None,
                None => continue,
                Some([Change::Patched(patch)]) => Some(Update::Patch(Arc::clone(patch))),
                Some(_) => None,
            };
            let whole = || self.items.get(key).map(|value| Update::Set(Arc::clone(value)));
            if let Some(update) = patch.or_else(whole) {
                updates.insert(key.clone(), update);
            }
        }
        updates.extend(before.difference(&current).map(|key| (key.clone(), Update::Remove)));
        updates
    }

    fn check_spans(&self, batch: &Batch<V>) -> Result<(), HubError> {
        let exists = |key: &ItemKey| match batch.items.get(key) {
            Some(value) => value.is_some(),
            None => self.items.contains_key(key),
        };
        let new_spans = batch.spans.iter().filter_map(|(node, span)| span.as_ref().map(|span| (node, span)));
        for (node, span) in new_spans {
            if let Some(key) = span.iter().find(|key| !exists(key)) {
                return Err(HubError::DanglingKey { node: node.clone(), key: key.clone() });
            }
        }
        // Spans the batch leaves alone must not lose their items either.
        for key in batch.items.iter().filter(|(_, value)| value.is_none()).map(|(key, _)| key) {
            let untouched = self.interested(key).find(|node| !batch.spans.contains_key(*node));
            if let Some(node) = untouched {
                return Err(HubError::DanglingKey { node: node.to_owned(), key: key.clone() });
            }
        }
        Ok(())
    }

    /// Sets or removes one item; `None` when nothing changed.
    fn set_item(&mut self, key: &ItemKey, value: Option<V>) -> Option<Change<V::Patch>> {
        match (self.items.get(key), value) {
            (None, None) => None,
            (Some(_), None) => {
                self.items.remove(key);
                Some(Change::Removed)
            }
            (Some(old), Some(new)) if **old == new => None,
            (Some(old), Some(new)) => {
                let change = old.patch_to(&new).map_or(Change::Whole, |patch| Change::Patched(Arc::new(patch)));
                self.items.insert(key.clone(), Arc::new(new));
                Some(change)
            }
            (None, Some(new)) => {
                self.items.insert(key.clone(), Arc::new(new));
                Some(Change::Whole)
            }
        }
    }

    /// Replaces one node's span and the reverse index.
    fn set_span(&mut self, node: &str, span: BTreeSet<ItemKey>) -> SpanChange {
        let old = self.spans.remove(node).unwrap_or_default();
        let change = SpanChange {
            added: span.difference(&old).cloned().collect(),
            removed: old.difference(&span).cloned().collect(),
        };
        for key in &change.added {
            self.interested.entry(key.clone()).or_default().insert(node.to_owned());
        }
        for key in &change.removed {
            if let Some(nodes) = self.interested.get_mut(key) {
                nodes.remove(node);
                if nodes.is_empty() {
                    self.interested.remove(key);
                }
            }
        }
        if !span.is_empty() {
            self.spans.insert(node.to_owned(), span);
        }
        change
    }
}
