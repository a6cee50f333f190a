#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Kubernetes datastore against a mocked API server: watches survive objects that do not
//! decode, and status goes through the status subresource with server-side apply.

use std::time::Duration;

use gingham_crds::api::NodeNetworkStatus;
use gingham_node_agent::datastore::kubernetes::{KubeStatus, spawn};
use gingham_node_agent::datastore::{NodeNetworkState, Snapshot, StatusSink};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::watch;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn list(kind: &str, items: Value) -> Body {
    let list = json!({ "apiVersion": "gingham.dev/v1", "kind": format!("{kind}List"), "metadata": { "resourceVersion": "10" }, "items": items });
    Body::from(serde_json::to_vec(&list).unwrap())
}

fn block(name: &str, cidr: Value) -> Value {
    json!({ "apiVersion": "gingham.dev/v1", "kind": "IPAMBlock", "metadata": { "name": name },
            "spec": { "cidr": cidr, "node": "node-a", "pool": "default", "nodeAddress": "192.168.10.2/24" } })
}

/// Answers the two initial lists (in whichever order they come).
async fn answer_lists(handle: &mut Handle, network: Value) {
    for _ in 0..2 {
        let (request, respond) = handle.next_request().await.unwrap();
        let path = request.uri().path().to_string();
        if path == "/apis/gingham.dev/v1/nodenetworks" {
            let query = request.uri().query().unwrap_or_default().to_string();
            assert!(query.contains("fieldSelector=metadata.name%3Dnode-a"), "only its own NodeNetwork: {query}");
            respond.send_response(Response::new(list("NodeNetwork", json!([network]))));
        } else {
            assert_eq!(path, "/apis/gingham.dev/v1/ipamblocks");
            let items = json!([block("good", json!("10.244.0.0/26")), block("garbled", json!(42))]);
            respond.send_response(Response::new(list("IPAMBlock", items)));
        }
    }
}

async fn settled(inputs: &mut watch::Receiver<Snapshot>, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let found = tokio::time::timeout(Duration::from_secs(5), inputs.wait_for(|s| check(s))).await;
    found.expect("timed out").unwrap().clone()
}

#[tokio::test]
async fn a_node_network_that_does_not_decode_is_reported_and_bad_blocks_are_skipped() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut inputs = spawn(Client::new(service, "default"), "node-a");
    let garbled = json!({ "apiVersion": "gingham.dev/v1", "kind": "NodeNetwork",
                          "metadata": { "name": "node-a", "generation": 2 }, "spec": { "address": 17 } });
    answer_lists(&mut handle, garbled).await;
    let snapshot = settled(&mut inputs, |s| !s.blocks.is_empty() && s.node_network != NodeNetworkState::Missing).await;
    assert_eq!(snapshot.blocks.iter().map(|b| b.cidr.as_str()).collect::<Vec<_>>(), ["10.244.0.0/26"]);
    match snapshot.node_network {
        NodeNetworkState::Malformed(message) => assert!(message.contains("cannot decode"), "{message}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_node_network_is_found() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut inputs = spawn(Client::new(service, "default"), "node-a");
    let good = json!({ "apiVersion": "gingham.dev/v1", "kind": "NodeNetwork",
                       "metadata": { "name": "node-a", "generation": 3 }, "spec": { "address": "192.168.10.2/24" } });
    answer_lists(&mut handle, good).await;
    let snapshot = settled(&mut inputs, |s| matches!(s.node_network, NodeNetworkState::Found(_))).await;
    let NodeNetworkState::Found(network) = snapshot.node_network else { unreachable!() };
    assert_eq!(network.metadata.generation, Some(3));
    assert_eq!(network.spec.address.as_ref().map(|a| a.as_str()), Some("192.168.10.2/24"));
}

#[tokio::test]
async fn status_is_server_side_applied_to_the_status_subresource() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let sink = KubeStatus::new(Client::new(service, "default"), "node-a");
    let status = NodeNetworkStatus { observed_generation: Some(4), endpoint_count: 2, ..Default::default() };
    let server = tokio::spawn(async move {
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(request.uri().path(), "/apis/gingham.dev/v1/nodenetworks/node-a/status");
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("fieldManager=gingham-node-agent") && query.contains("force=true"), "{query}");
        assert_eq!(request.headers()["content-type"], "application/apply-patch+yaml");
        let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
        let patch: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(patch["status"]["observedGeneration"], 4);
        assert_eq!(patch["metadata"]["name"], "node-a");
        let answer = json!({ "apiVersion": "gingham.dev/v1", "kind": "NodeNetwork", "metadata": { "name": "node-a" },
                             "spec": { "address": "192.168.10.2/24" }, "status": patch["status"] });
        respond.send_response(Response::new(Body::from(serde_json::to_vec(&answer).unwrap())));
    });
    sink.write_status(&status).await.unwrap();
    server.await.unwrap();
}
