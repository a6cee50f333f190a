//! The operator's side of the stream (`docs/stream.md`): after each round the stream's view is
//! brought up to date from the engine's changes and published as the next revision, and a gRPC
//! server serves every node its span, to the agents it authenticates (fixed tokens, or TokenReview),
//! over TLS on TCP.

pub mod options;
pub mod tls;
pub mod token_review;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gingham_crds::api::span::SpanItem;
use gingham_stream::{
    Authenticator, Batch, Publisher, Revision, ServerStats, ServerTls, SpanService, serve_tcp, serve_tls, serve_unix,
};
use kube::Client;

use crate::core::DesiredState;
use crate::core::daemonset;
use crate::core::engine::Changes;
use crate::core::span::{ItemConflict, StreamState};
use options::{Auth, FlagError, StreamOptions, Tls};
use token_review::{AgentAccount, TokenReviewer};

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
    /// The stream's flags do not fit together.
    #[error(transparent)]
    Flags(#[from] FlagError),
    /// A certificate or key file could not be read.
    #[error("cannot read {flag} {path}: {source}")]
    ReadTls {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key does not load.
    #[error("the stream's {what} does not load: {message}; give PEM files to --stream-tls-cert and --stream-tls-key")]
    BadTls {
        /// The certificate or the key.
        what: &'static str,
        /// What the parser said.
        message: String,
    },
    /// The generated certificate could not be read or kept.
    #[error(transparent)]
    Certificate(#[from] crate::certs::CertError),
    /// The CA could not be published for the agents.
    #[error(
        "cannot publish the stream's CA in the ConfigMap {}: {source} (check the operator's RBAC: configmaps in its namespace)",
        daemonset::STREAM_CA_CONFIG_MAP
    )]
    PublishCa {
        /// The cause.
        #[source]
        source: kube::Error,
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
            Self::Flags(_) => "stream_flags",
            Self::ReadTls { .. } | Self::BadTls { .. } => "stream_tls",
            Self::Certificate(_) => "stream_certificate",
            Self::PublishCa { .. } => "stream_ca",
            Self::Bind { .. } => "stream_bind",
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
            self.state.update(desired, changes.spans.iter().map(String::as_str))
        }
    }
}

/// Keeps the stream's view and publishes each round's changes as a revision.
pub struct StreamFeed {
    view: StreamView,
    publisher: Publisher<SpanItem>,
    revision: Revision,
    stats: Arc<ServerStats>,
}

impl StreamFeed {
    /// What the server has sent (for the metrics).
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

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

/// Starts serving the stream as `options` say, until `shutdown`; returns the feed the run loop
/// publishes through. `client` is the Kubernetes datastore's, which TokenReview and the generated
/// certificate need.
pub async fn start(
    options: &StreamOptions,
    client: Option<&Client>,
    namespace: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<StreamFeed, StreamError> {
    let auth: Arc<dyn Authenticator> = match (&options.auth, client) {
        (Auth::Tokens(path), _) => Arc::new(tokens::TokenFile::open(path)?),
        (Auth::TokenReview { audience }, Some(client)) => {
            let agents = AgentAccount { namespace: namespace.to_string(), name: daemonset::NAME.to_string() };
            Arc::new(TokenReviewer::new(client.clone(), audience.clone(), agents))
        }
        (Auth::TokenReview { .. }, None) => return Err(FlagError::TokensNeeded.into()),
    };
    let tls = match (&options.tls, client) {
        (Tls::Plaintext, _) => None,
        (Tls::Files { cert, key }, _) => Some(tls::read_files(cert, key)?),
        (Tls::Generated, Some(client)) => Some(tls::generated(client, namespace, &options.service).await?),
        (Tls::Generated, None) => return Err(FlagError::TlsNeeded { listen: options.listen.clone() }.into()),
    };
    serve(options.listen.clone(), auth, tls, options.heartbeat, shutdown).await
}

/// Starts serving the stream on `listen` (over TLS when `tls` is given) to the agents `auth`
/// authenticates, until `shutdown`; returns the feed the run loop publishes through. A quiet
/// subscriber gets an empty delta every `heartbeat` (liveness and the current revision).
async fn serve(
    listen: Listen,
    auth: Arc<dyn Authenticator>,
    tls: Option<ServerTls>,
    heartbeat: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<StreamFeed, StreamError> {
    let (service, publisher) = SpanService::new(HISTORY, auth, heartbeat);
    let (stats, origin) = (service.stats(), format!("{:016x}", service.origin()));
    let bind_error = |source| StreamError::Bind { listen: listen.clone(), source };
    // The server's error, as text (the transport's error type stays inside gingham-stream).
    type Serving = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
    let server: Serving = match &listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
            Box::pin(async move {
                let served = match &tls {
                    Some(tls) => serve_tls(service, listener, tls, shutdown).await,
                    None => serve_tcp(service, listener, shutdown).await,
                };
                served.map_err(|error| error.to_string())
            })
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
    tracing::info!(%listen, origin, "serving the stream");
    Ok(StreamFeed { view: StreamView::default(), publisher, revision: 0, stats })
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
}
