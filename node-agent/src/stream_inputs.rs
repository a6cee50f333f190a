//! The agent's side of the stream (`docs/stream.md`): follows this node's span and lays the
//! streamed items (compiled policies, IP sets, endpoints, BGP peers) over the NodeNetwork the
//! datastore gives, so that the main loop sees one input as before. Until the first snapshot
//! arrives, the NodeNetwork's own copy is used. When the stream breaks, the last streamed copy stays
//! in force: nothing is flushed, and the agent logs that it keeps enforcing what it has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gingham_crds::api::Shared;
use gingham_crds::api::nodenetwork::StreamStatus;
use gingham_crds::api::span::SpanItem;
use gingham_stream::{Follower, FollowerState, ItemKey, ItemKind, Replica, Revision, StreamServer};
use tokio::sync::watch;

use crate::datastore::{NodeNetworkState, Snapshot};

/// The stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamInputError {
    /// The token file could not be read.
    #[error("cannot read the stream token file {path}: {source}; give the agent's token with --stream-token-file")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Servers were given but no token file.
    #[error("--stream-server needs --stream-token-file (the token that authenticates this node)")]
    MissingToken,
}

/// Reads the agent's token (surrounding whitespace is dropped).
pub fn read_token(path: &Path) -> Result<String, StreamInputError> {
    std::fs::read_to_string(path)
        .map(|token| token.trim().to_string())
        .map_err(|source| StreamInputError::Token { path: path.to_path_buf(), source })
}

/// The datastore's snapshot with the streamed items in place of the NodeNetwork's own copies.
/// Before the first streamed snapshot (`replica` holds no revision) the snapshot is unchanged.
pub fn overlay(snapshot: &Snapshot, replica: &Replica<SpanItem>, node: &str) -> Snapshot {
    let NodeNetworkState::Found(node_network) = &snapshot.node_network else { return snapshot.clone() };
    if replica.revision().is_none() {
        return snapshot.clone();
    }
    let mut node_network = node_network.clone();
    let (spec, items) = (&mut node_network.spec, replica.items());
    spec.policy.policies.clear();
    spec.policy.ip_sets.clear();
    for item in items.values() {
        match &**item {
            SpanItem::Policy(policy) => spec.policy.policies.push(Shared::clone(policy)),
            SpanItem::IpSet(set) => spec.policy.ip_sets.push(Shared::clone(set)),
            SpanItem::BgpPeers(_) | SpanItem::Endpoints(_) => {}
        }
    }
    let own = |kind| items.get(&ItemKey::new(kind, node)).map(|item| &**item);
    spec.policy.endpoints = match own(ItemKind::Endpoints) {
        Some(SpanItem::Endpoints(endpoints)) => endpoints.clone(),
        _ => Vec::new(),
    };
    if let (Some(bgp), Some(SpanItem::BgpPeers(peers))) = (spec.bgp.as_mut(), own(ItemKind::BgpPeers)) {
        bgp.peers.clone_from(peers);
    }
    Snapshot {
        node_network: NodeNetworkState::Found(node_network),
        blocks: snapshot.blocks.clone(),
        stream: snapshot.stream.clone(),
    }
}

/// The stream's state as status shows it: the revision is the last one that changed the span (not
/// every heartbeat's), so that status is written when something changed, not every few seconds.
pub fn stream_status(state: &FollowerState, applied: Option<Revision>) -> StreamStatus {
    let (name, server, reason) = match state {
        FollowerState::Connecting => ("Connecting", None, None),
        FollowerState::Streaming { server, .. } => ("Streaming", Some(server.clone()), None),
        FollowerState::Disconnected { reason, .. } => ("Disconnected", None, Some(reason.clone())),
    };
    StreamStatus { state: name.to_string(), revision: applied, server, reason }
}

/// Follows `node`'s span from `servers` and returns the datastore's inputs with the streamed items
/// laid over them and the stream's state, kept current as either side changes.
pub fn follow(
    mut inputs: watch::Receiver<Snapshot>,
    servers: Vec<StreamServer>,
    node: &str,
    token: String,
) -> watch::Receiver<Snapshot> {
    let follower: Follower<SpanItem> = Follower::new(servers, node, token);
    let (mut replica, mut state) = (follower.replica(), follower.state());
    tokio::spawn(follower.run());
    let node = node.to_string();
    let merge = move |inputs: &Snapshot, replica: &Replica<SpanItem>, state: &FollowerState| {
        let mut merged = overlay(inputs, replica, &node);
        merged.stream = Some(stream_status(state, replica.revision()));
        merged
    };
    let (sender, receiver) = watch::channel(merge(&inputs.borrow(), &replica.borrow(), &state.borrow()));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = inputs.changed() => if changed.is_err() { return },
                changed = replica.changed() => if changed.is_err() { return },
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    log_state(&state.borrow());
                }
            }
            let current: Arc<Replica<SpanItem>> = Arc::clone(&replica.borrow_and_update());
            let merged = merge(&inputs.borrow_and_update(), &current, &state.borrow_and_update());
            sender.send_if_modified(|held| {
                let changed = *held != merged;
                if changed {
                    *held = merged;
                }
                changed
            });
        }
    });
    receiver
}

fn log_state(state: &FollowerState) {
    match state {
        FollowerState::Connecting => {}
        FollowerState::Streaming { revision, server } => tracing::debug!(revision, server, "stream current"),
        FollowerState::Disconnected { revision, reason } => {
            tracing::warn!(?revision, reason, "stream broken; enforcing what is held and reconnecting");
        }
    }
}

#[cfg(test)]
#[path = "stream_inputs_tests.rs"]
mod tests;
