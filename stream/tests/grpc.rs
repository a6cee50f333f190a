#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The stream over real gRPC on the loopback: authentication, one small patch to the interested
//! node only, resuming from a revision, a resync by content from another replica's revision, a
//! connection that goes silent, and an agent failing over to another replica without ever
//! emptying its copy or needing a snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gingham_stream::wire::held_to_wire;
use gingham_stream::wire::proto::{self, span_client::SpanClient};
use gingham_stream::{
    Batch, Follower, FollowerState, ItemKey, ItemKind, Publisher, Replica, ServerStats, SpanService, StaticTokens,
    StreamServer, serve_tcp, serve_unix,
};
use prost::Message;
use tonic::{Code, Request, Streaming};

/// A set of addresses: a stand-in for an IP set.
type Members = BTreeSet<String>;

fn key(name: &str) -> ItemKey {
    ItemKey::new(ItemKind::IpSet, name)
}

/// `count` pod addresses, the first replaced by `first` when given.
fn members(count: u8, first: Option<&str>) -> Members {
    let mut set: BTreeSet<String> = (1..=count).map(|i| format!("10.232.0.{i}")).collect();
    if let Some(first) = first {
        set.remove("10.232.0.1");
        set.insert(first.to_string());
    }
    set
}

fn item(name: &str, value: Members) -> Batch<Members> {
    Batch { items: BTreeMap::from([(key(name), Some(value))]), spans: BTreeMap::new() }
}

/// Revision 1: set `a` (100 members) on n1 and n2, set `b` on n2 only.
fn first_revision() -> Batch<Members> {
    let span = |names: &[&str]| Some(names.iter().map(|name| key(name)).collect::<BTreeSet<_>>());
    Batch {
        items: BTreeMap::from([(key("a"), Some(members(100, None))), (key("b"), Some(members(100, None)))]),
        spans: BTreeMap::from([("n1".to_string(), span(&["a"])), ("n2".to_string(), span(&["a", "b"]))]),
    }
}

fn tokens() -> Arc<StaticTokens> {
    Arc::new(StaticTokens(BTreeMap::from([("t1".into(), "n1".into()), ("t2".into(), "n2".into())])))
}

/// A server on the loopback.
struct Server {
    address: SocketAddr,
    publisher: Publisher<Members>,
    stats: Arc<ServerStats>,
    origin: u64,
}

/// Starts a server on the loopback.
async fn serve(heartbeat: Duration) -> Server {
    let (service, publisher) = SpanService::new(16, tokens(), heartbeat);
    let (stats, origin) = (service.stats(), service.origin());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(service, listener, std::future::pending()));
    Server { address, publisher, stats, origin }
}

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A first subscription of `node`.
fn fresh(node: &str) -> proto::SubscribeRequest {
    proto::SubscribeRequest { node: node.into(), revision: None, origin: None, held: None }
}

async fn subscribe(
    address: SocketAddr,
    token: Option<&str>,
    request: proto::SubscribeRequest,
) -> Result<Streaming<proto::SyncMessage>, tonic::Status> {
    let mut client = SpanClient::connect(format!("http://{address}")).await.unwrap();
    let mut request = Request::new(request);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client.subscribe(request).await.map(tonic::Response::into_inner)
}

async fn next(stream: &mut Streaming<proto::SyncMessage>) -> Option<proto::SyncMessage> {
    tokio::time::timeout(Duration::from_millis(500), stream.message()).await.ok().map(|m| m.unwrap().unwrap())
}

#[tokio::test]
async fn a_member_change_is_one_small_patch_to_the_interested_node_and_nothing_to_the_other() {
    let Server { address, publisher, .. } = serve(Duration::from_secs(60)).await;
    publisher.publish(1, first_revision()).unwrap();
    let mut n1 = subscribe(address, Some("t1"), fresh("n1")).await.unwrap();
    let mut n2 = subscribe(address, Some("t2"), fresh("n2")).await.unwrap();
    let snapshot = next(&mut n1).await.unwrap();
    assert!(snapshot.snapshot && snapshot.revision == 1 && snapshot.updates.len() == 1, "n1's span is a alone");
    assert_eq!(next(&mut n2).await.unwrap().updates.len(), 2);

    publisher.publish(2, item("b", members(100, Some("10.232.9.9")))).unwrap();
    let delta = next(&mut n2).await.unwrap();
    assert_eq!((delta.snapshot, delta.from_revision, delta.revision, delta.updates.len()), (false, 1, 2, 1));
    let size = delta.encoded_len();
    assert!(size <= 256, "one member change is {size} bytes on the wire, not the whole set");
    assert!(next(&mut n1).await.is_none(), "n1 does not use b and hears nothing");

    publisher.publish(3, item("a", members(100, Some("10.232.8.8")))).unwrap();
    let delta = next(&mut n1).await.unwrap();
    assert_eq!((delta.from_revision, delta.revision), (1, 3), "n1 held nothing of revision 2's change");
}

#[tokio::test]
async fn an_agent_must_present_a_token_of_its_own_node() {
    let Server { address, publisher, .. } = serve(Duration::from_secs(60)).await;
    publisher.publish(1, first_revision()).unwrap();
    let cases =
        [(None, Code::Unauthenticated), (Some("nope"), Code::Unauthenticated), (Some("t1"), Code::PermissionDenied)];
    for (token, code) in cases {
        let error = subscribe(address, token, fresh("n2")).await.unwrap_err();
        assert_eq!(error.code(), code, "token {token:?}: {}", error.message());
    }
}

#[tokio::test]
async fn a_subscriber_that_comes_back_gets_only_what_it_missed_or_a_snapshot_if_forgotten() {
    let Server { address, publisher, stats, origin } = serve(Duration::from_secs(60)).await;
    publisher.publish(1, first_revision()).unwrap();
    publisher.publish(2, item("a", members(100, Some("10.232.7.7")))).unwrap();
    let back = proto::SubscribeRequest { revision: Some(1), origin: Some(origin), ..fresh("n1") };
    let mut back = subscribe(address, Some("t1"), back).await.unwrap();
    let delta = next(&mut back).await.unwrap();
    assert!(!delta.snapshot && delta.from_revision == 1 && delta.revision == 2 && delta.updates.len() == 1);
    assert_eq!((delta.origin, delta.heartbeat_ms), (origin, 60_000), "messages say who counts and how often");
    let unknown = proto::SubscribeRequest { revision: Some(0), origin: Some(origin), ..fresh("n1") };
    let mut unknown = subscribe(address, Some("t1"), unknown).await.unwrap();
    assert!(next(&mut unknown).await.unwrap().snapshot, "revision 0 was never published here");
    let foreign = proto::SubscribeRequest { revision: Some(1), origin: Some(origin ^ 1), ..fresh("n1") };
    let mut foreign = subscribe(address, Some("t1"), foreign).await.unwrap();
    assert!(next(&mut foreign).await.unwrap().snapshot, "another server's revision 1, and no digests to compare");
    assert_eq!((count(&stats.resumed), count(&stats.snapshots), count(&stats.resynced)), (1, 2, 0));
}

/// n2's copy as a follower holds it after `revisions` on some server.
fn copy_after(revisions: &[(u64, Batch<Members>)]) -> Replica<Members> {
    let mut hub = gingham_stream::Hub::new(16);
    for (revision, batch) in revisions {
        hub.publish(*revision, batch.clone()).unwrap();
    }
    let mut replica = Replica::default();
    replica.apply(hub.catch_up("n2", None)).unwrap();
    replica
}

#[tokio::test]
async fn a_subscriber_from_another_replica_gets_only_the_items_that_differ_not_a_snapshot() {
    // Another replica counted other revisions and has not yet seen b's change.
    let elsewhere = copy_after(&[(5, first_revision())]);
    let Server { address, publisher, stats, origin } = serve(Duration::from_secs(60)).await;
    publisher.publish(100, first_revision()).unwrap();
    publisher.publish(101, item("b", members(100, Some("10.232.9.9")))).unwrap();
    let held = held_to_wire(elsewhere.items()).unwrap();
    let request =
        proto::SubscribeRequest { revision: Some(5), origin: Some(origin ^ 1), held: Some(held), ..fresh("n2") };
    let mut stream = subscribe(address, Some("t2"), request).await.unwrap();
    let delta = next(&mut stream).await.unwrap();
    assert!(!delta.snapshot, "a delta by content, not a snapshot");
    assert_eq!((delta.from_revision, delta.revision), (5, 101), "from the revision held to this server's");
    let names: Vec<&str> = delta.updates.iter().map(|update| update.key.as_ref().unwrap().name.as_str()).collect();
    assert_eq!(names, ["b"], "a is the same on both replicas and is not sent");
    let mut copy = elsewhere.clone();
    copy.apply(gingham_stream::wire::decode(delta).unwrap()).unwrap();
    assert_eq!(
        copy.items(),
        copy_after(&[(100, first_revision()), (101, item("b", members(100, Some("10.232.9.9"))))]).items()
    );
    assert_eq!((count(&stats.resynced), count(&stats.resynced_items), count(&stats.snapshots)), (1, 1, 0));
}

/// A TCP proxy in front of `upstream` that can be cut: while cut, it forwards nothing either way
/// and keeps the connections open, as a firewall that drops packets does; what was held back goes
/// through once the cut ends, as TCP retransmits it.
async fn cuttable_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cut);
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(forward(client_read, server_write, Arc::clone(&flag)));
            tokio::spawn(forward(server_read, client_write, Arc::clone(&flag)));
        }
    });
    (address, cut)
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0 {
            return;
        }
        while cut.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_connection_gone_silent_is_dropped_and_the_follower_resumes_with_deltas_only() {
    let Server { address, publisher, stats, .. } = serve(Duration::from_millis(100)).await;
    publisher.publish(1, first_revision()).unwrap();
    let (proxy, cut) = cuttable_proxy(address).await;
    let server: StreamServer = format!("http://{proxy}").parse().unwrap();
    let follower: Follower<Members> = Follower::new(vec![server], "n2", "t2");
    let (mut state, copies) = (follower.state(), follower.replica());
    tokio::spawn(follower.run());
    let within = |seconds| Duration::from_secs(seconds);
    let streaming = |s: &FollowerState| matches!(s, FollowerState::Streaming { revision: 2, .. });
    tokio::time::timeout(within(10), state.wait_for(|s| matches!(s, FollowerState::Streaming { revision: 1, .. })))
        .await
        .unwrap()
        .unwrap();
    cut.store(true, Ordering::Relaxed);
    let silent = tokio::time::timeout(within(10), state.wait_for(|s| matches!(s, FollowerState::Disconnected { .. })));
    let reason = match &*silent.await.expect("silence is noticed within three heartbeats").unwrap() {
        FollowerState::Disconnected { reason, .. } => reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("sent nothing"), "{reason}");
    publisher.publish(2, item("b", members(100, Some("10.232.9.9")))).unwrap();
    cut.store(false, Ordering::Relaxed);
    tokio::time::timeout(within(10), state.wait_for(streaming)).await.expect("it resubscribes").unwrap();
    assert_eq!((count(&stats.snapshots), count(&stats.resumed)), (1, 1), "the first snapshot, then one resume");
    assert!(copies.borrow().items()[&key("b")].contains("10.232.9.9"), "the change made while cut arrived");
}

/// A replica in its own runtime, so that dropping the runtime kills it as SIGKILL would.
fn replica_in_own_runtime(revisions: &[(u64, Batch<Members>)]) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let address = runtime.block_on(async {
        let Server { address, publisher, .. } = serve(Duration::from_millis(200)).await;
        for (revision, batch) in revisions {
            publisher.publish(*revision, batch.clone()).unwrap();
        }
        // The publisher lives as long as the runtime.
        tokio::spawn(async move {
            let _publisher = publisher;
            std::future::pending::<()>().await;
        });
        address
    });
    (runtime, address)
}

#[test]
fn an_agent_fails_over_to_another_replica_resumes_and_never_empties_its_copy() {
    let revisions = vec![(1, first_revision()), (2, item("a", members(100, Some("10.232.6.6"))))];
    let (first, first_address) = replica_in_own_runtime(&revisions);
    let main = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    main.block_on(fail_over(first, first_address, revisions));
}

async fn fail_over(first: tokio::runtime::Runtime, first_address: SocketAddr, revisions: Vec<(u64, Batch<Members>)>) {
    // The other replica batched the same events into other revisions.
    let Server { address: second_address, publisher: second, stats, .. } = serve(Duration::from_millis(200)).await;
    for (revision, batch) in revisions {
        second.publish(revision + 100, batch).unwrap();
    }
    let endpoint = |address: SocketAddr| format!("http://{address}").parse::<StreamServer>().unwrap();
    // Agents start on the server their node's name hashes to: order the list so n1 starts on `first`.
    let hash = "n1".bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    let list = if hash % 2 == 0 {
        vec![endpoint(first_address), endpoint(second_address)]
    } else {
        vec![endpoint(second_address), endpoint(first_address)]
    };
    let follower: Follower<Members> = Follower::new(list, "n1", "t1");
    let mut copies = follower.replica();
    let mut state = follower.state();
    tokio::spawn(follower.run());
    state.wait_for(|s| matches!(s, FollowerState::Streaming { revision: 2, .. })).await.unwrap();
    assert!(
        matches!(&*state.borrow(), FollowerState::Streaming { server, .. } if server.contains(&first_address.port().to_string()))
    );

    let emptied = tokio::spawn(async move {
        let mut emptied = false;
        while copies.changed().await.is_ok() {
            emptied |= copies.borrow().items().is_empty();
        }
        emptied
    });
    first.shutdown_background();
    state.wait_for(|s| matches!(s, FollowerState::Disconnected { revision: Some(2), .. })).await.unwrap();
    second.publish(103, item("a", members(100, Some("10.232.5.5")))).unwrap();
    let resumed = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| matches!(s, FollowerState::Streaming { revision: 103, .. })),
    );
    resumed.await.expect("the follower fails over within 10 s").unwrap();
    assert_eq!(count(&stats.resynced), 1, "it resynced by content from the first replica's revision 2");
    assert_eq!(count(&stats.resynced_items), 1, "only a, changed while it failed over, was sent");
    assert_eq!(count(&stats.snapshots), 0, "no snapshot was needed");
    emptied.abort();
    assert!(!emptied.await.unwrap_or(false), "the copy was never empty");
}

#[tokio::test]
async fn a_follower_reaches_a_server_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stream.sock");
    let (service, publisher) = SpanService::new(16, tokens(), Duration::from_secs(60));
    tokio::spawn(serve_unix(service, tokio::net::UnixListener::bind(&socket).unwrap(), std::future::pending()));
    publisher.publish(1, first_revision()).unwrap();
    let server: StreamServer = format!("unix:{}", socket.display()).parse().unwrap();
    assert_eq!(server.to_string(), format!("unix:{}", socket.display()));
    let follower: Follower<Members> = Follower::new(vec![server], "n2", "t2");
    let mut state = follower.state();
    let copies = follower.replica();
    tokio::spawn(follower.run());
    let streaming = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| matches!(s, FollowerState::Streaming { revision: 1, .. })),
    );
    streaming.await.expect("the follower subscribes over the socket").unwrap();
    assert_eq!(copies.borrow().items().len(), 2, "n2's span: sets a and b");
    let refused = "not a url".parse::<StreamServer>().unwrap_err();
    assert!(refused.to_string().contains("unix:/path/to/socket"), "{refused}");
}
