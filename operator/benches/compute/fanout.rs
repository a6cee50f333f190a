//! The stream's side of each event: the batch the operator's feed publishes for the round
//! ([`StreamView::advance`]), applied to a hub, and what the gRPC server would send each
//! subscriber that holds the previous revision (the hub's catch-up, encoded as on the wire).

use gingham_crds::api::span::SpanItem;
use gingham_operator::core::DesiredState;
use gingham_operator::core::engine::Changes;
use gingham_operator::stream::StreamView;
use gingham_stream::wire::encode;
use gingham_stream::{Delivery, Hub, Revision};
use prost::Message;

/// What one round costs the stream.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamCost {
    /// Items set, patched or removed.
    pub(crate) items: usize,
    /// Nodes that receive a message.
    pub(crate) nodes: usize,
    /// Bytes of every message the round sends.
    pub(crate) bytes: usize,
    /// Bytes of the median message.
    pub(crate) median: usize,
    /// Bytes of the largest message to one node.
    pub(crate) largest: usize,
}

impl StreamCost {
    /// Bytes per node that receives something.
    pub(crate) fn per_node(&self) -> f64 {
        self.bytes as f64 / self.nodes.max(1) as f64
    }
}

/// The operator's stream view and the hub it feeds.
pub(crate) struct Fanout {
    view: StreamView,
    hub: Hub<SpanItem>,
    revision: Revision,
}

impl Fanout {
    /// The hub after the first revision: everything in `desired` (the first round after a load).
    pub(crate) fn load(desired: &DesiredState, changes: &Changes) -> Self {
        let mut fanout = Self { view: StreamView::default(), hub: Hub::new(16), revision: 0 };
        fanout.publish(desired, changes, true);
        fanout
    }

    /// How many items the hub holds.
    pub(crate) fn items(&self) -> usize {
        self.hub.item_count()
    }

    /// Publishes one round and measures what subscribers that were up to date receive.
    pub(crate) fn round(&mut self, desired: &DesiredState, changes: &Changes) -> StreamCost {
        self.publish(desired, changes, false)
    }

    fn publish(&mut self, desired: &DesiredState, changes: &Changes, reloaded: bool) -> StreamCost {
        let batch = match self.view.advance(desired, changes, reloaded) {
            Ok(batch) if batch.items.is_empty() && batch.spans.is_empty() => return StreamCost::default(),
            Ok(batch) => batch,
            Err(conflict) => {
                eprintln!("the stream refuses the round: {conflict}");
                return StreamCost::default();
            }
        };
        let items = batch.items.len();
        let held = self.revision;
        self.revision += 1;
        let published = match self.hub.publish(self.revision, batch) {
            Ok(published) => published,
            Err(error) => {
                eprintln!("the hub refuses the round: {error}");
                return StreamCost::default();
            }
        };
        let mut cost = StreamCost { items, ..StreamCost::default() };
        let mut sizes = Vec::with_capacity(published.nodes.len());
        if reloaded {
            // Every node's snapshot: not an event's cost.
            return cost;
        }
        for node in &published.nodes {
            let delivery = match self.hub.catch_up(node, Some(held)) {
                Delivery::Delta { updates, .. } if updates.is_empty() => continue,
                delivery => delivery,
            };
            let bytes = encode(&delivery).map_or(0, |message| message.encoded_len());
            sizes.push(bytes);
        }
        sizes.sort_unstable();
        cost.nodes = sizes.len();
        cost.bytes = sizes.iter().sum();
        cost.median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
        cost.largest = sizes.last().copied().unwrap_or(0);
        cost
    }
}
