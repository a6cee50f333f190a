#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The stream over real gRPC on the loopback: authentication, one small patch to the interested
//! node only, resuming from a revision, and an agent failing over to another replica without ever
//! emptying its copy.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gingham_stream::wire::proto::{self, span_client::SpanClient};
use gingham_stream::{
    Batch, Follower, FollowerState, ItemKey, ItemKind, Publisher, SpanService, StaticTokens, StreamServer, serve_tcp,
    serve_unix,
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

/// Starts a server on the loopback; returns its address, its publisher and its service's stats.
async fn serve(heartbeat: Duration) -> (SocketAddr, Publisher<Members>, Arc<gingham_stream::ServerStats>) {
    let (service, publisher) = SpanService::new(16, tokens(), heartbeat);
    let stats = service.stats();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(service, listener, std::future::pending()));
    (address, publisher, stats)
}

async fn subscribe(
    address: SocketAddr,
    node: &str,
    token: Option<&str>,
    revision: Option<u64>,
) -> Result<Streaming<proto::SyncMessage>, tonic::Status> {
    let mut client = SpanClient::connect(format!("http://{address}")).await.unwrap();
    let mut request = Request::new(proto::SubscribeRequest { node: node.into(), revision });
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
    let (address, publisher, _) = serve(Duration::from_secs(60)).await;
    publisher.publish(1, first_revision()).unwrap();
    let mut n1 = subscribe(address, "n1", Some("t1"), None).await.unwrap();
    let mut n2 = subscribe(address, "n2", Some("t2"), None).await.unwrap();
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
    let (address, publisher, _) = serve(Duration::from_secs(60)).await;
    publisher.publish(1, first_revision()).unwrap();
    let cases =
        [(None, Code::Unauthenticated), (Some("nope"), Code::Unauthenticated), (Some("t1"), Code::PermissionDenied)];
    for (token, code) in cases {
        let error = subscribe(address, "n2", token, None).await.unwrap_err();
        assert_eq!(error.code(), code, "token {token:?}: {}", error.message());
    }
}

#[tokio::test]
async fn a_subscriber_that_comes_back_gets_only_what_it_missed_or_a_snapshot_if_forgotten() {
    let (address, publisher, stats) = serve(Duration::from_secs(60)).await;
    publisher.publish(1, first_revision()).unwrap();
    publisher.publish(2, item("a", members(100, Some("10.232.7.7")))).unwrap();
    let mut back = subscribe(address, "n1", Some("t1"), Some(1)).await.unwrap();
    let delta = next(&mut back).await.unwrap();
    assert!(!delta.snapshot && delta.from_revision == 1 && delta.revision == 2 && delta.updates.len() == 1);
    let mut unknown = subscribe(address, "n1", Some("t1"), Some(0)).await.unwrap();
    assert!(next(&mut unknown).await.unwrap().snapshot, "revision 0 was never published here");
    assert_eq!(stats.resumed.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(stats.snapshots.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A replica in its own runtime, so that dropping the runtime kills it as SIGKILL would.
fn replica_in_own_runtime(revisions: &[(u64, Batch<Members>)]) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let address = runtime.block_on(async {
        let (address, publisher, _) = serve(Duration::from_millis(200)).await;
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
    let (second_address, second, stats) = serve(Duration::from_millis(200)).await;
    for (revision, batch) in revisions {
        second.publish(revision, batch).unwrap();
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
    second.publish(3, item("a", members(100, Some("10.232.5.5")))).unwrap();
    let resumed = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| matches!(s, FollowerState::Streaming { revision: 3, .. })),
    );
    resumed.await.expect("the follower fails over within 10 s").unwrap();
    assert_eq!(
        stats.resumed.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "it resumed from revision 2 on the other replica"
    );
    assert_eq!(stats.snapshots.load(std::sync::atomic::Ordering::Relaxed), 0, "no snapshot was needed");
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
