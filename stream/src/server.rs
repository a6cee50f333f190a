//! The serving side over gRPC: one task per subscriber sends its node's snapshot or catch-up, then
//! whatever a published revision changes in its span. A subscriber that reads slowly is never
//! queued behind: when it can take the next message, it gets one delta from what it holds to the
//! current revision (or a snapshot, if the hub has forgotten that revision).

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
use crate::item::Revision;
use crate::replica::Delivery;
use crate::tls::ServerTls;
use crate::wire::{self, WireItem, proto};

/// What the server has sent, for metrics and logs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Subscriptions answered with a snapshot.
    pub snapshots: AtomicU64,
    /// Subscriptions that resumed from the subscriber's revision (deltas only).
    pub resumed: AtomicU64,
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
}

/// The hub shared by the gRPC service and the publisher.
struct Shared<V: WireItem> {
    hub: RwLock<Hub<V>>,
    heads: watch::Sender<Option<Revision>>,
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
        let shared = Arc::new(Shared { hub: RwLock::new(Hub::new(max_history)), heads: watch::Sender::new(None) });
        let stats = Arc::new(ServerStats::default());
        (Self { shared: Arc::clone(&shared), auth, heartbeat, stats }, Publisher { shared })
    }

    /// What the service has sent.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
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
    async fn run(self, since: Option<Revision>) {
        let mut heads = self.shared.heads.subscribe();
        // Nothing is served before the first revision. A subscriber whose revision this server
        // cannot account for (from before a restart, or from a replica ahead) gets a snapshot.
        if heads.wait_for(Option::is_some).await.is_err() {
            return;
        }
        let first = self.next(since);
        let snapshot = matches!(first, Delivery::Snapshot { .. });
        let counter = if snapshot { &self.stats.snapshots } else { &self.stats.resumed };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(node = %self.node, ?since, snapshot, items = first.len(), "subscriber synced");
        // `sent` is the revision the subscriber holds; `held` the one its span's content equals,
        // which moves on without a message when a revision changes nothing in the span.
        let mut sent = first.revision();
        let mut held = sent;
        if !self.send(&first).await {
            return;
        }
        loop {
            match tokio::time::timeout(self.heartbeat, heads.changed()).await {
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
                Err(_) => {
                    if !self.send(&Delivery::Delta { from: sent, to: held, updates: BTreeMap::new() }).await {
                        return;
                    }
                    sent = held;
                }
            }
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
        let since = request.get_ref().revision;
        let (sender, mut receiver) = mpsc::channel(1);
        let subscription = Subscription {
            shared: Arc::clone(&self.shared),
            stats: Arc::clone(&self.stats),
            node,
            heartbeat: self.heartbeat,
            sender,
        };
        tokio::spawn(subscription.run(since));
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
    mut builder: tonic::transport::Server,
    service: SpanService<V>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.and_then(|(stream, _)| stream.set_nodelay(true).map(|()| stream));
        Some((accepted, listener))
    });
    let server = builder.add_service(proto::span_server::SpanServer::new(service));
    server.serve_with_incoming_shutdown(incoming, shutdown).await
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
    let server = tonic::transport::Server::builder().add_service(proto::span_server::SpanServer::new(service));
    server.serve_with_incoming_shutdown(incoming, shutdown).await
}
