//! The streamed items put together into the node's span, and the follower feeding them next to
//! the datastore's NodeNetwork.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gingham_crds::api::nodenetwork::{BgpPeerSession, CompiledPolicy, EndpointPolicy, IpSet, NodeBgpSpec};
use gingham_crds::api::{NodeNetwork, NodeNetworkSpec, Shared};
use gingham_stream::{Batch, Delivery, ItemKey, SpanService, StaticTokens, serve_unix};

use super::*;
use crate::datastore::NodeNetworkState;

fn policy(name: &str) -> SpanItem {
    SpanItem::Policy(Shared::new(CompiledPolicy { name: name.into(), ..CompiledPolicy::default() }))
}

fn set(name: &str, members: &[&str]) -> SpanItem {
    let members = members.iter().map(|m| gingham_crds::api::value::Wire::new(*m)).collect();
    SpanItem::IpSet(Shared::new(IpSet { name: name.into(), members, ..IpSet::default() }))
}

fn endpoints(names: &[&str]) -> SpanItem {
    SpanItem::Endpoints(
        names.iter().map(|n| EndpointPolicy { name: (*n).into(), ..EndpointPolicy::default() }).collect(),
    )
}

fn peers(addresses: &[&str]) -> SpanItem {
    SpanItem::BgpPeers(
        addresses
            .iter()
            .map(|a| BgpPeerSession { name: format!("p{a}"), address: (*a).into(), ..BgpPeerSession::default() })
            .collect(),
    )
}

fn key(item: &SpanItem, name: &str) -> ItemKey {
    ItemKey::new(item.kind(), name)
}

/// What the datastore gives: the node's own NodeNetwork, which holds nothing of its span.
fn datastore_snapshot() -> Snapshot {
    let mut spec = NodeNetworkSpec { address: Some("192.168.10.2/24".into()), ..NodeNetworkSpec::default() };
    spec.bgp = Some(NodeBgpSpec { router_id: "192.168.10.2".into(), as_number: 64512, ..NodeBgpSpec::default() });
    Snapshot { node_network: NodeNetworkState::Found(Box::new(NodeNetwork::new("n2", spec))), ..Snapshot::default() }
}

fn streamed(items: Vec<(ItemKey, SpanItem)>) -> Replica<SpanItem> {
    let mut replica = Replica::default();
    let items = items.into_iter().map(|(key, item)| (key, Arc::new(item))).collect();
    replica.apply(Delivery::Snapshot { revision: 7, items }).unwrap();
    replica
}

fn address(snapshot: &Snapshot) -> &str {
    let NodeNetworkState::Found(node_network) = &snapshot.node_network else { panic!("a NodeNetwork") };
    node_network.spec.address.as_ref().map_or("", |address| address.as_str())
}

#[test]
fn before_the_first_streamed_snapshot_the_span_is_unknown() {
    assert_eq!(span(&Replica::default(), "n2"), None);
    assert_eq!(span(&streamed(Vec::new()), "n2"), Some(NodeSpan::default()), "an empty span is known");
}

#[test]
fn the_streamed_items_make_the_nodes_span() {
    let items = vec![
        (key(&policy("global/db"), "global/db"), policy("global/db")),
        (key(&set("s_web", &[]), "s_web"), set("s_web", &["10.244.0.5"])),
        (key(&endpoints(&[]), "n2"), endpoints(&["prod/db"])),
        (key(&peers(&[]), "n2"), peers(&["192.168.10.1"])),
        (key(&endpoints(&[]), "n1"), endpoints(&["prod/web"])),
    ];
    let span = span(&streamed(items), "n2").unwrap();
    assert_eq!(span.policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["global/db"]);
    assert_eq!(span.ip_sets[0].members, ["10.244.0.5"]);
    assert_eq!(span.endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["prod/db"], "n2's own, not n1's");
    assert_eq!(span.bgp_peers.iter().map(|p| p.address.as_str()).collect::<Vec<_>>(), ["192.168.10.1"]);
}

#[tokio::test]
async fn the_follower_feeds_the_loop_and_the_node_network_keeps_coming_from_the_datastore() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stream.sock");
    let tokens = StaticTokens(BTreeMap::from([("t2".to_string(), "n2".to_string())]));
    let (service, publisher) = SpanService::<SpanItem>::new(16, Arc::new(tokens), Duration::from_secs(60));
    tokio::spawn(serve_unix(service, tokio::net::UnixListener::bind(&socket).unwrap(), std::future::pending()));

    let (datastore, inputs) = watch::channel(datastore_snapshot());
    let server: StreamServer = format!("unix:{}", socket.display()).parse().unwrap();
    let mut merged = follow(inputs, StreamSetup { servers: vec![server], token: "t2".into() }, "n2");
    assert_eq!(merged.borrow().span, None, "nothing streamed yet");
    assert_eq!(merged.borrow().stream.as_ref().map(|s| s.state.as_str()), Some("Connecting"));

    let db = policy("global/db");
    let db_key = key(&db, "global/db");
    let batch = Batch {
        items: BTreeMap::from([(db_key.clone(), Some(db))]),
        spans: BTreeMap::from([("n2".to_string(), Some(BTreeSet::from([db_key])))]),
    };
    publisher.publish(1, batch).unwrap();
    let has_db =
        |snapshot: &Snapshot| snapshot.span.as_ref().is_some_and(|s| s.policies.iter().any(|p| p.name == "global/db"));
    tokio::time::timeout(Duration::from_secs(10), merged.wait_for(has_db))
        .await
        .expect("the streamed policy arrives")
        .unwrap();
    assert_eq!(merged.borrow().stream.as_ref().map(|s| s.state.as_str()), Some("Streaming"));

    // The NodeNetwork changes: it is the datastore's, and the streamed span stays.
    let mut moved = datastore_snapshot();
    if let NodeNetworkState::Found(node_network) = &mut moved.node_network {
        node_network.spec.address = Some("192.168.10.3/24".into());
    }
    datastore.send_replace(moved);
    let moved = |snapshot: &Snapshot| address(snapshot) == "192.168.10.3/24";
    tokio::time::timeout(Duration::from_secs(10), merged.wait_for(moved)).await.unwrap().unwrap();
    assert!(has_db(&merged.borrow()), "the streamed policy is still in force");
}

#[test]
fn status_shows_the_revision_that_changed_the_span_not_every_heartbeats() {
    let streaming = FollowerState::Streaming { revision: 9, server: "unix:/s".into() };
    let status = stream_status(&streaming, Some(4));
    assert_eq!(
        (status.state.as_str(), status.revision, status.server.as_deref()),
        ("Streaming", Some(4), Some("unix:/s"))
    );
    let broken = FollowerState::Disconnected { revision: Some(9), reason: "cannot connect".into() };
    let status = stream_status(&broken, Some(4));
    assert_eq!(
        (status.state.as_str(), status.revision, status.reason.as_deref()),
        ("Disconnected", Some(4), Some("cannot connect"))
    );
    assert_eq!(stream_status(&FollowerState::Connecting, None).state, "Connecting");
}

#[test]
fn the_stream_flags_must_fit_together_and_name_the_flag_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t1\n").unwrap();
    let missing = dir.path().join("missing");
    let ca =
        ClientTls { ca_file: dir.path().join("ca.crt"), server_name: Some("gingham-stream.gingham-system.svc".into()) };
    let parse = |url: &str| url.parse::<StreamServer>().unwrap();
    let (https, http, unix) =
        (parse("https://10.96.0.7:5473"), parse("http://127.0.0.1:5473"), parse("unix:/run/s.sock"));
    // (servers, token file, CA, fragments of the error or None when accepted)
    type Case<'a> = (Vec<StreamServer>, Option<&'a Path>, Option<&'a ClientTls>, Option<&'a [&'a str]>);
    let cases: Vec<Case> = vec![
        (vec![], None, None, None),
        (vec![https.clone()], Some(&token), Some(&ca), None),
        (vec![unix.clone(), http.clone()], Some(&token), None, None),
        (vec![https.clone()], None, Some(&ca), Some(&["--stream-token-file"])),
        (vec![https.clone()], Some(&missing), Some(&ca), Some(&["missing", "--stream-token-file"])),
        (vec![https], Some(&token), None, Some(&["https://10.96.0.7:5473", "--stream-ca-file FILE"])),
        (
            vec![http],
            Some(&token),
            Some(&ca),
            Some(&["--stream-ca-file is given", "http://127.0.0.1:5473", "use https://"]),
        ),
        (vec![unix], Some(&token), Some(&ca), Some(&["unix:/run/s.sock"])),
    ];
    for (servers, token_file, tls, expected) in cases {
        let outcome = setup(&servers, token_file, tls);
        match (outcome, expected) {
            (Ok(None), None) => assert!(servers.is_empty()),
            (Ok(Some(setup)), None) => {
                assert_eq!(setup.token.read().unwrap(), "t1");
                for server in &setup.servers {
                    assert!(
                        !server.is_tls() || matches!(server, StreamServer::Tls { tls: Some(tls), .. } if tls == &ca)
                    );
                }
            }
            (Err(error), Some(fragments)) => {
                let error = error.to_string();
                for fragment in fragments {
                    assert!(error.contains(fragment), "{fragment:?} in {error}");
                }
            }
            (outcome, expected) => panic!("{servers:?}: {outcome:?}, expected {expected:?}"),
        }
    }
}
