//! The agent's side of the stream (`docs/stream.md`): follows this node's span and lays the
//! streamed items (compiled policies, IP sets, endpoints, BGP peers) over the NodeNetwork the
//! datastore gives, so that the main loop sees one input as before. Until the first snapshot
//! arrives, the NodeNetwork's own copy is used. When the stream breaks, the last streamed copy stays
//! in force: nothing is flushed, and the agent logs that it keeps enforcing what it has.

use std::path::Path;
use std::sync::Arc;

use gingham_crds::api::Shared;
use gingham_crds::api::nodenetwork::StreamStatus;
use gingham_crds::api::span::SpanItem;
use gingham_stream::{
    ClientTls, Follower, FollowerState, ItemKey, ItemKind, Replica, Revision, StreamServer, Token, TokenError,
};
use tokio::sync::watch;

use crate::datastore::{NodeNetworkState, Snapshot};

/// The stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StreamInputError {
    /// The token file could not be read.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Servers were given but no token file.
    #[error("--stream-server needs --stream-token-file (the token that authenticates this node)")]
    MissingToken,
    /// An `https://` server without a CA to check it against.
    #[error(
        "--stream-server {server} is https:// and needs --stream-ca-file FILE (the CA that signed the operator's stream certificate)"
    )]
    MissingCa {
        /// The server.
        server: String,
    },
    /// A CA for a server that is not `https://`.
    #[error(
        "--stream-ca-file is given but --stream-server {server} is not https://: use https:// so that the operator's certificate is checked (the stream carries BGP passwords)"
    )]
    NotTls {
        /// The server.
        server: String,
    },
}

/// What the agent follows: its servers, each `https://` one checked with the CA, and the token it
/// presents (its file read again at every connection, since the kubelet rotates projected tokens).
#[derive(Clone, Debug)]
pub struct StreamSetup {
    /// The servers.
    pub servers: Vec<StreamServer>,
    /// The token.
    pub token: Token,
}

/// Checks the stream flags together; `None` without servers. The token must be readable now; the
/// CA may come later (the kubelet adds it once the operator has published it).
pub fn setup(
    servers: &[StreamServer],
    token_file: Option<&Path>,
    tls: Option<&ClientTls>,
) -> Result<Option<StreamSetup>, StreamInputError> {
    if servers.is_empty() {
        return Ok(None);
    }
    let token = Token::File(token_file.ok_or(StreamInputError::MissingToken)?.to_path_buf());
    token.read()?;
    let servers = servers
        .iter()
        .map(|server| match (server.is_tls(), tls) {
            (true, Some(tls)) => Ok(server.clone().verified_by(tls)),
            (true, None) => Err(StreamInputError::MissingCa { server: server.to_string() }),
            (false, Some(_)) => Err(StreamInputError::NotTls { server: server.to_string() }),
            (false, None) => Ok(server.clone()),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(StreamSetup { servers, token }))
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

/// Follows `node`'s span as `setup` says and returns the datastore's inputs with the streamed items
/// laid over them and the stream's state, kept current as either side changes.
pub fn follow(mut inputs: watch::Receiver<Snapshot>, setup: StreamSetup, node: &str) -> watch::Receiver<Snapshot> {
    let follower: Follower<SpanItem> = Follower::new(setup.servers, node, setup.token);
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
