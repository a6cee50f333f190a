//! The subscriber's side over gRPC: follows its node's span from one of the servers, keeps a
//! [`Replica`], and when the stream breaks keeps what it has (it never empties its copy, so the
//! agent never flushes its dataplane), fails over to the next server and resumes from its revision.
//! It says what it holds, item by item, when it resubscribes, so that a server whose revisions are
//! not those it holds (another replica, or one restarted) sends only the items that differ.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{Token, TokenError};
use crate::item::Revision;
use crate::replica::{Delivery, Replica, ReplicaError};
use crate::tls::{self, ClientTls, TlsError};
use crate::wire::{self, WireError, WireItem, proto};

/// How the follower's stream stands, for the agent's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowerState {
    /// Not yet subscribed; nothing held.
    Connecting,
    /// Subscribed, holding `revision`.
    Streaming {
        /// The revision held.
        revision: Revision,
        /// The server it streams from.
        server: String,
    },
    /// The stream broke: the copy at `revision` is kept (and enforced) while the follower retries.
    Disconnected {
        /// The revision held, if any.
        revision: Option<Revision>,
        /// Why the stream broke.
        reason: String,
    },
}

/// Where a stream server listens: a gRPC URL, or a unix socket (the lab, where agents in other
/// network namespaces share the operator's file system).
#[derive(Clone, Debug)]
pub enum StreamServer {
    /// `http://host:port`: plaintext (tests on the loopback).
    Tcp(Box<Endpoint>),
    /// `https://host:port`, checked with `tls` (see [`StreamServer::verified_by`]).
    Tls {
        /// The URL.
        endpoint: Box<Endpoint>,
        /// How the server's certificate is checked; none yet when just parsed.
        tls: Option<ClientTls>,
    },
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

/// A server address that is neither `unix:PATH` nor a URL.
#[derive(Debug, thiserror::Error)]
#[error("stream server {given:?} is neither `unix:/path/to/socket` nor a URL such as `http://10.0.0.1:5473`: {reason}")]
pub struct ServerAddressError {
    /// What was given.
    pub given: String,
    /// Why it does not parse.
    pub reason: String,
}

impl std::str::FromStr for StreamServer {
    type Err = ServerAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let error = |reason: String| ServerAddressError { given: text.into(), reason };
        if text.contains("$(") {
            return Err(error(
                "a `$(VAR)` was not expanded: the Service it names did not exist when the pod started; \
                 the container picks it up when it restarts"
                    .into(),
            ));
        }
        let endpoint = Endpoint::from_shared(text.to_string()).map_err(|e| error(e.to_string()))?;
        let endpoint = Box::new(endpoint.connect_timeout(Duration::from_secs(3)).tcp_nodelay(true));
        match endpoint.uri().scheme_str() {
            Some("http") => Ok(Self::Tcp(endpoint)),
            Some("https") => Ok(Self::Tls { endpoint, tls: None }),
            _ => Err(error("the scheme must be http:// or https://".into())),
        }
    }
}

impl fmt::Display for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(endpoint) | Self::Tls { endpoint, .. } => write!(f, "{}", endpoint.uri()),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How often the follower pings its connection, and how long it waits for the answer: a connection
/// that breaks before the server's first message (which carries its heartbeat) is noticed too.
const KEEPALIVE: Duration = Duration::from_secs(10);

fn with_keepalive(endpoint: Endpoint) -> Endpoint {
    endpoint.http2_keep_alive_interval(KEEPALIVE).keep_alive_timeout(KEEPALIVE).keep_alive_while_idle(true)
}

impl StreamServer {
    /// Whether this is an `https://` server (which needs a CA to be checked against).
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls { .. })
    }

    /// The server, with an `https://` server's certificate checked by `tls`.
    pub fn verified_by(self, tls: &ClientTls) -> Self {
        match self {
            Self::Tls { endpoint, .. } => Self::Tls { endpoint, tls: Some(tls.clone()) },
            other => other,
        }
    }

    async fn connect(&self) -> Result<Channel, SessionError> {
        let connected = match self {
            Self::Tcp(endpoint) => with_keepalive((**endpoint).clone()).connect().await,
            Self::Tls { tls: None, .. } => return Err(TlsError::NoCa { server: self.to_string() }.into()),
            Self::Tls { endpoint, tls: Some(tls) } => {
                match with_keepalive((**endpoint).clone()).tls_config(tls.config()?) {
                    Ok(endpoint) => endpoint.connect().await,
                    Err(error) => Err(error),
                }
            }
            Self::Unix(path) => {
                let path = path.clone();
                // The URI is a placeholder: the connector decides where to connect.
                let connector = tower::service_fn(move |_| {
                    let path = path.clone();
                    async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
                });
                with_keepalive(Endpoint::from_static("http://[::]:0")).connect_with_connector(connector).await
            }
        };
        let checked = match self {
            Self::Tls { endpoint, tls: Some(tls) } => Some((tls, endpoint.uri().host().unwrap_or_default())),
            _ => None,
        };
        connected.map_err(|error| SessionError::Connect(tls::explain(&error, checked)))
    }
}

/// Why one session with a server ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    ReadToken(#[from] TokenError),
    #[error("the server answered {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("the token cannot be sent as metadata; it must be printable ASCII")]
    Token,
    #[error("a message does not decode: {0}")]
    Decode(#[from] WireError),
    #[error("a delivery does not apply: {0}")]
    Refused(#[from] ReplicaError),
    #[error("the server sent nothing for {0:?}, three of its heartbeats; the connection is taken as dead")]
    Silent(Duration),
}

/// Where the follower's revision comes from: the origin of the server that sent it.
#[derive(Clone, Copy, Debug, Default)]
struct Resume {
    /// The origin of the messages that brought the revision held.
    origin: Option<u64>,
    /// Resubscribe without a revision (a delivery did not decode or apply: the copy cannot be
    /// trusted to resume from).
    fresh: bool,
}

/// Follows one node's span from a list of servers (the operator's replicas).
pub struct Follower<V: WireItem> {
    servers: Vec<StreamServer>,
    node: String,
    token: Token,
    replica: watch::Sender<Arc<Replica<V>>>,
    state: watch::Sender<FollowerState>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl<V: WireItem> Follower<V> {
    /// A follower of `node`'s span from `servers`, authenticating with `token` (a token file is
    /// read again at every connection). Agents start at the server their node's name hashes to,
    /// which spreads them over the replicas.
    pub fn new(servers: Vec<StreamServer>, node: impl Into<String>, token: impl Into<Token>) -> Self {
        Self {
            servers,
            node: node.into(),
            token: token.into(),
            replica: watch::Sender::new(Arc::new(Replica::default())),
            state: watch::Sender::new(FollowerState::Connecting),
        }
    }

    /// The copy of the span, replaced each time a delivery changes it.
    pub fn replica(&self) -> watch::Receiver<Arc<Replica<V>>> {
        self.replica.subscribe()
    }

    /// How the stream stands.
    pub fn state(&self) -> watch::Receiver<FollowerState> {
        self.state.subscribe()
    }

    /// Follows forever: subscribes, applies what arrives, and on any break retries the next server
    /// with backoff, resuming from the revision held (or fresh, after a delivery that did not apply).
    pub async fn run(self) {
        let Some(count) = std::num::NonZeroUsize::new(self.servers.len()) else {
            self.state.send_replace(FollowerState::Disconnected {
                revision: None,
                reason: "no stream server is configured".into(),
            });
            return;
        };
        let start = self.node.bytes().fold(0usize, |hash, byte| hash.wrapping_mul(31).wrapping_add(usize::from(byte)));
        let mut replica = (*self.replica.borrow()).as_ref().clone();
        let (mut failures, mut resume) = (0u32, Resume::default());
        for turn in 0usize.. {
            let server = &self.servers[(start.wrapping_add(turn)) % count];
            let outcome = self.session(server, &mut replica, &mut resume, &mut failures).await;
            // A delivery that does not decode or apply means the copy cannot be trusted to resume.
            resume.fresh = matches!(outcome, Err(SessionError::Decode(_) | SessionError::Refused(_)));
            let error = outcome.map_or_else(|error| error.to_string(), |()| "the server closed the stream".to_string());
            tracing::warn!(node = %self.node, %server, revision = ?replica.revision(), %error, "stream broke; keeping what is held and retrying");
            self.state.send_replace(FollowerState::Disconnected { revision: replica.revision(), reason: error });
            let backoff = MIN_BACKOFF.saturating_mul(2u32.saturating_pow(failures.min(6))).min(MAX_BACKOFF);
            failures = failures.saturating_add(1);
            tokio::time::sleep(backoff).await;
        }
    }

    /// One subscription to `server`, until it breaks.
    async fn session(
        &self,
        server: &StreamServer,
        replica: &mut Replica<V>,
        resume: &mut Resume,
        failures: &mut u32,
    ) -> Result<(), SessionError> {
        let channel = server.connect().await?;
        let mut client = proto::span_client::SpanClient::new(channel);
        let mut request = Request::new(self.request(replica, *resume));
        let token =
            MetadataValue::try_from(format!("Bearer {}", self.token.read()?)).map_err(|_| SessionError::Token)?;
        request.metadata_mut().insert("authorization", token);
        let mut stream = client.subscribe(request).await?.into_inner();
        // Until the server says how often it speaks, the connection is trusted (the transport
        // reports a closed one).
        let mut silence: Option<Duration> = None;
        loop {
            let message = match silence {
                Some(limit) => {
                    tokio::time::timeout(limit, stream.message()).await.map_err(|_| SessionError::Silent(limit))?
                }
                None => stream.message().await,
            };
            let Some(message) = message? else { return Ok(()) };
            silence = (message.heartbeat_ms > 0).then(|| Duration::from_millis(u64::from(message.heartbeat_ms)) * 3);
            let origin = message.origin;
            let delivery: Delivery<V> = wire::decode(message)?;
            let changes = matches!(delivery, Delivery::Snapshot { .. }) || !delivery.is_empty();
            replica.apply(delivery)?;
            *resume = Resume { origin: Some(origin), fresh: false };
            *failures = 0;
            if changes {
                self.replica.send_replace(Arc::new(replica.clone()));
            }
            let revision = replica.revision().unwrap_or_default();
            self.state.send_replace(FollowerState::Streaming { revision, server: server.to_string() });
        }
    }

    /// The subscription: the revision held, its origin and the digest of every item held, unless
    /// the copy cannot be trusted (`resume.fresh`) or holds nothing yet.
    fn request(&self, replica: &Replica<V>, resume: Resume) -> proto::SubscribeRequest {
        let node = self.node.clone();
        let Some(revision) = replica.revision().filter(|_| !resume.fresh) else {
            return proto::SubscribeRequest { node, revision: None, origin: None, held: None };
        };
        let held = wire::held_to_wire(replica.items())
            .inspect_err(|error| tracing::warn!(node, %error, "cannot digest the items held; asking for a snapshot"))
            .ok();
        proto::SubscribeRequest { node, revision: Some(revision), origin: resume.origin, held }
    }
}
