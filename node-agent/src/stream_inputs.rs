//! The agent's side of the stream (`docs/stream.md`): follows this node's span and puts the
//! streamed items (compiled policies, IP sets, the node's endpoints and BGP peers) together into
//! the snapshot's [`NodeSpan`], next to the NodeNetwork the datastore gives, so that the main loop
//! sees one input. Until the first streamed snapshot arrives the span is unknown (`None`): the
//! agent programs routes but leaves nftables and BIRD as they are. When the stream breaks, the
//! last streamed copy stays in force: nothing is flushed, and the agent logs that it keeps
//! enforcing what it has.

use std::path::Path;
use std::sync::Arc;

use gingham_crds::api::nodenetwork::StreamStatus;
use gingham_crds::api::span::{NodeSpan, SpanItem};
use gingham_stream::{ClientTls, Follower, FollowerState, Replica, Revision, StreamServer, Token, TokenError};
use tokio::sync::watch;

use crate::datastore::{Snapshot, combine};

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

/// Follows `node`'s span as `setup` says and returns the datastore's inputs with the span and the
/// stream's state in them, kept current as either side changes.
pub fn follow(inputs: watch::Receiver<Snapshot>, setup: StreamSetup, node: &str) -> watch::Receiver<Snapshot> {
    let follower: Follower<SpanItem> = Follower::new(setup.servers, node, setup.token);
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
