//! The agent's side of the stream (`docs/stream.md`): follows this node's span and puts the
//! streamed items (compiled policies, IP sets, the node's endpoints and BGP peers) together into
//! the snapshot's [`NodeSpan`], next to the NodeNetwork the datastore gives, so that the main loop
//! sees one input. Until the first streamed snapshot arrives the span is unknown (`None`): the
//! agent programs routes but leaves nftables and BIRD as they are. When the stream breaks, the
//! last streamed copy stays in force: nothing is flushed, and the agent logs that it keeps
//! enforcing what it has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gingham_crds::api::nodenetwork::StreamStatus;
use gingham_crds::api::span::{NodeSpan, SpanItem};
use gingham_stream::{Follower, FollowerState, Replica, Revision, StreamServer};
use tokio::sync::watch;

use crate::datastore::{Snapshot, combine};

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

/// The span `replica` holds for `node`, once it holds a revision (`None` before the first
/// streamed snapshot). What the datastore's NodeNetwork says plays no part.
pub fn span(replica: &Replica<SpanItem>, node: &str) -> Option<NodeSpan> {
    replica.revision()?;
    Some(NodeSpan::assemble(node, replica.items().iter().map(|(key, item)| (key, &**item))))
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

/// Follows `node`'s span from `servers` and returns the datastore's inputs with the span and the
/// stream's state in them, kept current as either side changes.
pub fn follow(
    inputs: watch::Receiver<Snapshot>,
    servers: Vec<StreamServer>,
    node: &str,
    token: String,
) -> watch::Receiver<Snapshot> {
    let follower: Follower<SpanItem> = Follower::new(servers, node, token);
    let (replica, state) = (follower.replica(), follower.state());
    tokio::spawn(follower.run());
    let node = node.to_string();
    let mut logged = FollowerState::Connecting;
    let streamed = combine(replica, state, move |replica: &Arc<Replica<SpanItem>>, state: &FollowerState| {
        if *state != logged {
            log_state(state);
            logged = state.clone();
        }
        (span(replica, &node), stream_status(state, replica.revision()))
    });
    combine(inputs, streamed, |inputs: &Snapshot, (span, stream): &(Option<NodeSpan>, StreamStatus)| Snapshot {
        span: span.clone(),
        stream: Some(stream.clone()),
        ..inputs.clone()
    })
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
