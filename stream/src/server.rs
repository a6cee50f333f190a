//! The serving side over gRPC: one task per subscriber sends its node's first sync (a delta from
//! the revision it holds, a delta by content when that revision is not this server's, or a
//! snapshot), then whatever a published revision changes in its span. A subscriber that reads
//! slowly is never queued behind: when it can take the next message, it gets one delta from what it
//! holds to the current revision (or a snapshot, if the hub has forgotten that revision).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::Stream;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

use crate::auth::{self, Authenticator};
use crate::hub::{Batch, Hub, HubError, Published};
use crate::item::{ItemKey, Revision};
use crate::replica::Delivery;
use crate::tls::ServerTls;
use crate::wire::{self, WireItem, proto};

/// What the server has sent, for metrics and logs. Each subscription counts once, by how its
/// first sync was made.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Subscriptions answered with a snapshot (a first subscription, or one that could neither
    /// resume nor resync by content), and snapshots sent to a subscriber that fell behind the history.
    pub snapshots: AtomicU64,
    /// Subscriptions that resumed from the subscriber's revision, this server's own: deltas only.
    pub resumed: AtomicU64,
    /// Subscriptions with another server's revision (a fail-over, a restart) answered with a delta
    /// by content: only the items whose digest differs.
    pub resynced: AtomicU64,
    /// Items sent whole or removed by those deltas by content.
    pub resynced_items: AtomicU64,
    /// Messages sent.
    pub messages: AtomicU64,
    /// Bytes of encoded messages sent.
    pub bytes: AtomicU64,
}

impl ServerStats {
    fn sent(&self, message: &proto::SyncMessage) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(u64::try_from(message.encoded_len()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a subscription's first sync.
    fn synced(&self, how: FirstSync, items: usize) {
        let counter = match how {
            FirstSync::Snapshot => &self.snapshots,
            FirstSync::Resumed => &self.resumed,
            FirstSync::Content => {
                self.resynced_items.fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
                &self.resynced
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a subscription's first sync was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstSync {
    /// Every item of the span.
    Snapshot,
    /// A delta from the subscriber's revision, by this server's history.
    Resumed,
    /// A delta by content from another server's revision.
    Content,
}

impl FirstSync {
    /// Its name in logs.
    fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Resumed => "delta",
            Self::Content => "content",
        }
    }
}

/// What a subscriber says it holds when it (re)subscribes.
struct Held {
    /// The revision.
    revision: Option<Revision>,
    /// Whether that revision is this server's (the request named this server's origin).
    ours: bool,
    /// Its items' digests, when it sent them (and they decoded).
    digests: Option<BTreeMap<ItemKey, Vec<u8>>>,
}

/// A number that tells this server's revisions from every other server's: random, drawn at the
/// start (the clock and the process id when the system's random source fails).
fn draw_origin() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_nanos() & u128::from(u64::MAX)).unwrap_or_default() ^ u64::from(std::process::id())
}

/// The hub shared by the gRPC service and the publisher.
struct Shared<V: WireItem> {
    hub: RwLock<Hub<V>>,
    heads: watch::Sender<Option<Revision>>,
    /// This server's origin (see [`draw_origin`]).
    origin: u64,
}

/// Publishes revisions to every subscriber of a [`SpanService`].
pub struct Publisher<V: WireItem> {
    shared: Arc<Shared<V>>,
}

impl<V: WireItem> Publisher<V> {
    /// Applies a batch as `revision` and wakes the subscribers.
    pub fn publish(&self, revision: Revision, batch: Batch<V>) -> Result<Published, HubError> {
        let published = {
            let mut hub = self.shared.hub.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            hub.publish(revision, batch)?
        };
        self.shared.heads.send_replace(Some(revision));
        Ok(published)
    }
}

/// The gRPC service (`gingham.stream.v1.Span`).
pub struct SpanService<V: WireItem> {
    shared: Arc<Shared<V>>,
    auth: Arc<dyn Authenticator>,
    heartbeat: Duration,
    stats: Arc<ServerStats>,
}

impl<V: WireItem> SpanService<V> {
    /// A service over an empty hub that remembers `max_history` revisions, and its publisher.
    /// Subscribers that have nothing new get an empty delta every `heartbeat`, which carries the
    /// current revision and shows a dead connection.
    pub fn new(max_history: usize, auth: Arc<dyn Authenticator>, heartbeat: Duration) -> (Self, Publisher<V>) {
        let hub = RwLock::new(Hub::new(max_history));
        let shared = Arc::new(Shared { hub, heads: watch::Sender::new(None), origin: draw_origin() });
        let stats = Arc::new(ServerStats::default());
        (Self { shared: Arc::clone(&shared), auth, heartbeat, stats }, Publisher { shared })
    }

    /// What the service has sent.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// The origin of this server's revisions, which its messages carry.
    pub fn origin(&self) -> u64 {
        self.shared.origin
    }
}

/// One subscriber's task: waits for revisions and sends what changed in its span.
struct Subscription<V: WireItem> {
    shared: Arc<Shared<V>>,
    stats: Arc<ServerStats>,
    node: String,
    heartbeat: Duration,
    sender: mpsc::Sender<Result<proto::SyncMessage, Status>>,
}

impl<V: WireItem> Subscription<V> {
    async fn run(self, held: Held) {
        let mut heads = self.shared.heads.subscribe();
        // Nothing is served before the first revision.
        if heads.wait_for(Option::is_some).await.is_err() {
            return;
        }
        let (first, how) = self.first(&held);
        self.stats.synced(how, first.len());
        let since = held.revision;
        tracing::info!(node = %self.node, ?since, sync = how.as_str(), items = first.len(), "subscriber synced");
        // `sent` is the revision the subscriber holds; `held` the one its span's content equals,
        // which moves on without a message when a revision changes nothing in the span.
        let mut sent = first.revision();
        let mut held = sent;
        if !self.send(&first).await {
            return;
        }
        let mut quiet_until = tokio::time::Instant::now() + self.heartbeat;
        loop {
            match tokio::time::timeout_at(quiet_until, heads.changed()).await {
                Ok(Err(_)) => return,
                Ok(Ok(())) => {
                    let delivery = match self.next(Some(held)) {
                        Delivery::Delta { to, updates, .. } if updates.is_empty() => {
                            held = to;
                            continue;
                        }
                        Delivery::Delta { to, updates, .. } => Delivery::Delta { from: sent, to, updates },
                        snapshot => {
                            tracing::warn!(node = %self.node, held, "subscriber fell behind the history; sending a snapshot");
                            self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
                            snapshot
                        }
                    };
                    if !self.send(&delivery).await {
                        return;
                    }
                    (sent, held) = (delivery.revision(), delivery.revision());
                }
                // Nothing was sent for a heartbeat: an empty delta says the connection lives.
                Err(_) => {
                    if !self.send(&Delivery::Delta { from: sent, to: held, updates: BTreeMap::new() }).await {
                        return;
                    }
                    sent = held;
                }
            }
            quiet_until = tokio::time::Instant::now() + self.heartbeat;
        }
    }

    /// The first sync: a delta from the subscriber's revision when it is this server's and the
    /// hub can vouch for it; else a delta by content when the subscriber said what it holds (a
    /// fail-over to this replica, or this server restarted); else a snapshot.
    fn first(&self, held: &Held) -> (Delivery<V>, FirstSync) {
        let span = {
            let hub = self.shared.hub.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let resumed = held.revision.filter(|_| held.ours).and_then(|since| hub.resume(&self.node, since));
            if let Some(delivery) = resumed {
                return (delivery, FirstSync::Resumed);
            }
            hub.span(&self.node)
        };
        match (held.revision, &held.digests) {
            (Some(from), Some(digests)) => {
                let same = |key: &ItemKey, value: &V, digest: &Vec<u8>| {
                    wire::digest(key, value).is_ok_and(|own| own.as_slice() == digest.as_slice())
                };
                (span.resync(from, digests, same), FirstSync::Content)
            }
            _ => (Delivery::Snapshot { revision: span.revision, items: span.items }, FirstSync::Snapshot),
        }
    }

    fn next(&self, held: Option<Revision>) -> Delivery<V> {
        let hub = self.shared.hub.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        hub.catch_up(&self.node, held)
    }

    /// Sends one delivery; `false` when the subscriber is gone or it cannot be encoded.
    async fn send(&self, delivery: &Delivery<V>) -> bool {
        let message = match wire::encode(delivery) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(node = %self.node, %error, "a delivery does not encode; closing the subscription");
                let _ = self.sender.send(Err(Status::internal(error.to_string()))).await;
                return false;
            }
        };
        let heartbeat_ms = u32::try_from(self.heartbeat.as_millis()).unwrap_or(u32::MAX);
        let message = proto::SyncMessage { origin: self.shared.origin, heartbeat_ms, ..message };
        self.stats.sent(&message);
        self.sender.send(Ok(message)).await.is_ok()
    }
}

/// The stream of messages to one subscriber.
pub type SubscribeStream = Pin<Box<dyn Stream<Item = Result<proto::SyncMessage, Status>> + Send>>;

#[tonic::async_trait]
impl<V: WireItem> proto::span_server::Span for SpanService<V> {
    type SubscribeStream = SubscribeStream;

    async fn subscribe(&self, request: Request<proto::SubscribeRequest>) -> Result<Response<SubscribeStream>, Status> {
        let node = auth::authorize(self.auth.as_ref(), request.metadata(), &request.get_ref().node).await?;
        let request = request.into_inner();
        let digests = request.held.and_then(|held| {
            wire::held_from_wire(held)
                .inspect_err(|error| tracing::warn!(%node, %error, "the held items do not decode; sending a snapshot"))
                .ok()
        });
        let held = Held { revision: request.revision, ours: request.origin == Some(self.shared.origin), digests };
        let (sender, mut receiver) = mpsc::channel(1);
        let subscription = Subscription {
            shared: Arc::clone(&self.shared),
            stats: Arc::clone(&self.stats),
            node,
            heartbeat: self.heartbeat,
            sender,
        };
        tokio::spawn(subscription.run(held));
        let stream = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serves `service` on `listener` in plaintext, with `TCP_NODELAY` on every connection (small
/// deltas must not wait for acknowledgements), until `shutdown` completes. For tests and benches on
/// the loopback: anything else serves with [`serve_tls`].
pub async fn serve_tcp<V: WireItem>(
    service: SpanService<V>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_tcp_with(tonic::transport::Server::builder(), service, listener, shutdown).await
}

/// Serves `service` on `listener` over TLS with `tls`'s certificate, as [`serve_tcp`] otherwise.
pub async fn serve_tls<V: WireItem>(
    service: SpanService<V>,
    listener: tokio::net::TcpListener,
    tls: &ServerTls,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let builder = tonic::transport::Server::builder().tls_config(tls.config())?;
    serve_tcp_with(builder, service, listener, shutdown).await
}

async fn serve_tcp_with<V: WireItem>(
    builder: tonic::transport::Server,
    service: SpanService<V>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.and_then(|(stream, _)| stream.set_nodelay(true).map(|()| stream));
        Some((accepted, listener))
    });
    router(builder, service).serve_with_incoming_shutdown(incoming, shutdown).await
}

/// The transport around `service`. It pings every connection each heartbeat and drops one that
/// leaves three pings unanswered, so that a subscriber cut off the network does not hold its task.
fn router<V: WireItem>(builder: tonic::transport::Server, service: SpanService<V>) -> tonic::transport::server::Router {
    let heartbeat = service.heartbeat;
    let mut builder =
        builder.http2_keepalive_interval(Some(heartbeat)).http2_keepalive_timeout(Some(heartbeat.saturating_mul(3)));
    builder.add_service(proto::span_server::SpanServer::new(service))
}

/// Serves `service` on a unix socket until `shutdown` completes (the lab: agents in other network
/// namespaces reach the operator through the file system).
pub async fn serve_unix<V: WireItem>(
    service: SpanService<V>,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = futures::stream::unfold(listener, |listener| async move {
        Some((listener.accept().await.map(|(stream, _)| stream), listener))
    });
    router(tonic::transport::Server::builder(), service).serve_with_incoming_shutdown(incoming, shutdown).await
}
