//! The operator's side of the stream (`docs/stream.md`): after each round the stream's view is
//! brought up to date from the engine's changes and published as the next revision, and a gRPC
//! server serves every node its span.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gingham_crds::api::span::SpanItem;
use gingham_stream::{Authenticator, Batch, Publisher, Revision, SpanService, StaticTokens, serve_tcp, serve_unix};

use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::core::span::{ItemConflict, StreamState};

/// How often a quiet subscriber gets an empty delta (liveness and the current revision).
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How many revisions the hub remembers for subscribers that come back.
const HISTORY: usize = 1024;

/// The stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The tokens file could not be read.
    #[error("cannot read the stream tokens file {path}: {source}")]
    ReadTokens {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tokens file is not a map of token to node name.
    #[error("the stream tokens file {path} must map each token to a node name (`<token>: <node>` lines): {message}")]
    ParseTokens {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen for the stream on {listen}: {source}; pick a free --stream-addr")]
    Bind {
        /// The address.
        listen: Listen,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the stream listens: `HOST:PORT`, or `unix:/path/to/socket` (the lab).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket (a stale one is replaced).
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        text.parse()
            .map(Self::Tcp)
            .map_err(|_| format!("{text:?} is neither HOST:PORT (0.0.0.0:5473) nor unix:/path/to/socket"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl StreamError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ReadTokens { .. } | Self::ParseTokens { .. } => "stream_tokens",
            Self::Bind { .. } => "stream_bind",
        }
    }
}

/// Reads a tokens file: a YAML map from each agent's token to its node's name.
pub fn read_tokens(path: &Path) -> Result<StaticTokens, StreamError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| StreamError::ReadTokens { path: path.to_path_buf(), source })?;
    let tokens: BTreeMap<String, String> = serde_saphyr::from_str(&text)
        .map_err(|error| StreamError::ParseTokens { path: path.to_path_buf(), message: error.to_string() })?;
    Ok(StaticTokens(tokens))
}

/// The tokens of a tokens file, read again when an unknown token is presented and the file changed
/// since it was last read (a node that joined after the operator started); a file that became
/// unreadable keeps the tokens last read. Unknown tokens against an unchanged file cost one `stat`.
pub struct TokenFile {
    path: PathBuf,
    read: RwLock<(Option<FileStamp>, StaticTokens)>,
}

/// What tells a file changed: its modification time and length.
type FileStamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

impl TokenFile {
    /// Reads the file once; it must be readable and well formed now.
    pub fn open(path: &Path) -> Result<Self, StreamError> {
        let stamped = stamp(path);
        Ok(Self { path: path.to_path_buf(), read: RwLock::new((stamped, read_tokens(path)?)) })
    }
}

impl Authenticator for TokenFile {
    fn node_of(&self, token: &str) -> Option<String> {
        let (last, known) = {
            let read = self.read.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            (read.0, read.1.node_of(token))
        };
        let current = stamp(&self.path);
        if known.is_some() || current == last {
            return known;
        }
        match read_tokens(&self.path) {
            Ok(fresh) => {
                let node = fresh.node_of(token);
                *self.read.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (current, fresh);
                node
            }
            Err(error) => {
                tracing::warn!(%error, "keeping the stream tokens last read");
                self.read.write().unwrap_or_else(std::sync::PoisonError::into_inner).0 = current;
                None
            }
        }
    }
}

/// The stream's view of the desired state, brought up to date round by round. Pure: the feed
/// publishes the batches it returns, and the operator's bench (`benches/compute`) measures them.
#[derive(Clone, Debug, Default)]
pub struct StreamView {
    state: StreamState,
}

impl StreamView {
    /// What the round changed, as the next revision's batch: after a reload (`changes` is then
    /// everything, but nodes that went are not named) the whole view is compared, else only the
    /// nodes `changes` names. On a conflict the view keeps its last state.
    pub fn advance(
        &mut self,
        desired: &DesiredState,
        changes: &Changes,
        reloaded: bool,
    ) -> Result<Batch<SpanItem>, ItemConflict> {
        if reloaded {
            let next = StreamState::of(desired)?;
            let batch = self.state.batch_to(&next);
            self.state = next;
            Ok(batch)
        } else {
            self.state.update(desired, changes.node_networks.iter().map(String::as_str))
        }
    }
}

/// Keeps the stream's view and publishes each round's changes as a revision.
pub struct StreamFeed {
    view: StreamView,
    publisher: Publisher<SpanItem>,
    revision: Revision,
}

impl StreamFeed {
    /// Publishes what the round changed ([`StreamView::advance`]). Revisions are milliseconds
    /// since the epoch (or one more than the last), so that they keep increasing across operator
    /// restarts.
    pub fn observe(&mut self, desired: &DesiredState, changes: &Changes, reloaded: bool) {
        let batch = match self.view.advance(desired, changes, reloaded) {
            Ok(batch) if batch.items.is_empty() && batch.spans.is_empty() => return,
            Ok(batch) => batch,
            Err(conflict) => {
                tracing::error!(%conflict, "the stream keeps its last revision");
                return;
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.revision = now.max(self.revision + 1);
        let (items, spans) = (batch.items.len(), batch.spans.len());
        match self.publisher.publish(self.revision, batch) {
            Ok(published) => tracing::debug!(
                revision = self.revision,
                items,
                spans,
                nodes = published.nodes.len(),
                "stream revision"
            ),
            Err(error) => tracing::error!(%error, "the stream refused a revision"),
        }
    }
}

/// Starts serving the stream on `listen` to the agents `tokens` authenticate, until `shutdown`;
/// returns the feed the run loop publishes through.
pub async fn serve(
    listen: Listen,
    tokens: TokenFile,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<StreamFeed, StreamError> {
    let (service, publisher) = SpanService::new(HISTORY, Arc::new(tokens), HEARTBEAT);
    let bind_error = |source| StreamError::Bind { listen: listen.clone(), source };
    // The server's error, as text (the transport's error type stays inside gingham-stream).
    type Serving = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
    let server: Serving = match &listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
            Box::pin(async move { serve_tcp(service, listener, shutdown).await.map_err(|error| error.to_string()) })
        }
        Listen::Unix(path) => {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::info!(path = %path.display(), "replaced a stale stream socket"),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(bind_error(error)),
            }
            let listener = tokio::net::UnixListener::bind(path).map_err(bind_error)?;
            Box::pin(async move { serve_unix(service, listener, shutdown).await.map_err(|error| error.to_string()) })
        }
    };
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "the stream server stopped");
        }
    });
    tracing::info!(%listen, "serving the stream");
    Ok(StreamFeed { view: StreamView::default(), publisher, revision: 0 })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_is_host_and_port_or_a_unix_socket() {
        assert_eq!("127.0.0.1:5473".parse::<Listen>().unwrap(), Listen::Tcp("127.0.0.1:5473".parse().unwrap()));
        assert_eq!("unix:/run/s.sock".parse::<Listen>().unwrap(), Listen::Unix("/run/s.sock".into()));
        let error = "localhost".parse::<Listen>().unwrap_err();
        assert!(error.contains("HOST:PORT") && error.contains("unix:"), "{error}");
    }

    #[test]
    fn a_tokens_file_maps_tokens_to_nodes_or_says_what_it_must_hold() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("tokens.yaml");
        std::fs::write(&good, "secret-1: node-1\nsecret-2: node-2\n").unwrap();
        let tokens = read_tokens(&good).unwrap();
        assert_eq!(tokens.0.get("secret-2").map(String::as_str), Some("node-2"));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "- just\n- a list\n").unwrap();
        let error = read_tokens(&bad).unwrap_err().to_string();
        assert!(error.contains("bad.yaml") && error.contains("<token>: <node>"), "{error}");
        let missing = read_tokens(&dir.path().join("none.yaml")).unwrap_err();
        assert_eq!(missing.label(), "stream_tokens");
    }

    #[test]
    fn a_token_added_to_the_file_later_is_known_and_a_broken_file_keeps_the_last_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, "t1: node-1\n").unwrap();
        let tokens = TokenFile::open(&path).unwrap();
        assert_eq!(tokens.node_of("t2"), None);
        std::fs::write(&path, "t1: node-1\nt2: node-2\n").unwrap();
        assert_eq!(tokens.node_of("t2").as_deref(), Some("node-2"), "a node that joined later");
        std::fs::write(&path, "[not, a, map]").unwrap();
        assert_eq!(tokens.node_of("t1").as_deref(), Some("node-1"), "the tokens last read stay");
        assert_eq!(tokens.node_of("t3"), None);
    }
}
