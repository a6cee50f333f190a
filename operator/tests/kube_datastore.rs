//! The whole Kubernetes datastore against a fake API server: every kind is listed and watched at
//! the right path, a malformed object is skipped and reported as an Event, and the first round
//! writes the derived objects by server-side apply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gingham_operator::core::{OperatorSettings, compute};
use gingham_operator::datastore::kubernetes::KubeDatastore;
use gingham_operator::datastore::{Datastore, Observation};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// Requests the fake API server saw: (method, path, query, body).
type Log = Arc<Mutex<Vec<(Method, String, String, Value)>>>;

fn node(name: &str, address: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": "1"},
           "status": {"addresses": [{"type": "InternalIP", "address": address}]}})
}

/// The list each collection path returns.
fn lists() -> BTreeMap<&'static str, Vec<Value>> {
    BTreeMap::from([
        (
            "/apis/gingham.dev/v1/ippools",
            vec![json!({
            "apiVersion": "gingham.dev/v1", "kind": "IPPool",
            "metadata": {"name": "default", "resourceVersion": "1", "generation": 1}, "spec": {"cidr": "10.244.0.0/16"}})],
        ),
        (
            "/apis/gingham.dev/v1/bgppeers",
            vec![json!({
            "apiVersion": "gingham.dev/v1", "kind": "BGPPeer",
            "metadata": {"name": "garbled", "resourceVersion": "1"}, "spec": {"peerIP": "192.0.2.1", "asNumber": "x"}})],
        ),
        ("/api/v1/nodes", vec![node("node-1", "192.168.10.1"), node("node-2", "192.168.10.2")]),
    ])
}

async fn answer(request: Request<Body>, log: Log) -> Result<Response<Body>, std::convert::Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    if query.contains("watch=true") {
        // Watches stay open and quiet.
        std::future::pending::<()>().await;
    }
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    log.lock().unwrap().push((method.clone(), path.clone(), query, body.clone()));
    let response = if method == Method::GET {
        let items = lists().remove(path.as_str()).unwrap_or_default();
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "5"}, "items": items})
    } else {
        body
    };
    Ok(Response::new(Body::from(serde_json::to_vec(&response).unwrap())))
}

#[tokio::test]
async fn the_first_round_lists_everything_writes_derived_objects_and_reports_bad_ones() {
    let log: Log = Arc::default();
    let handler = Arc::clone(&log);
    let service = tower::service_fn(move |request| answer(request, Arc::clone(&handler)));
    let client = kube::Client::new(service, "default");
    let mut datastore = KubeDatastore::start(client, "gingham-system", "operator-0");
    let observation = tokio::time::timeout(Duration::from_secs(10), datastore.next()).await.unwrap().unwrap();
    let Observation::Snapshot(snapshot) = observation else { panic!("the first observation is a snapshot") };
    assert_eq!(snapshot.pools.len(), 1);
    assert_eq!(snapshot.nodes.len(), 2);
    assert!(snapshot.bgp_peers.is_empty(), "the garbled peer is skipped");

    let lists: Vec<(String, String)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(method, ..)| method == Method::GET)
        .map(|(_, path, query, _)| (path.clone(), query.clone()))
        .collect();
    let paths: std::collections::BTreeSet<&str> = lists.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "/apis/gingham.dev/v1/ippools",
        "/apis/gingham.dev/v1/bgpconfigurations",
        "/apis/gingham.dev/v1/bgppeers",
        "/apis/gingham.dev/v1/felixconfigurations",
        "/apis/gingham.dev/v1/networkpolicies",
        "/apis/gingham.dev/v1/globalnetworkpolicies",
        "/apis/gingham.dev/v1/ipamblocks",
        "/apis/gingham.dev/v1/nodenetworks",
        "/apis/networking.k8s.io/v1/networkpolicies",
        "/api/v1/nodes",
        "/api/v1/pods",
        "/api/v1/namespaces",
        "/api/v1/namespaces/gingham-system/secrets",
        "/apis/apps/v1/namespaces/gingham-system/daemonsets",
    ] {
        assert!(paths.contains(expected), "{expected} was not listed: {paths:?}");
    }
    assert_eq!(paths.len(), 14, "{paths:?}");
    let daemon_sets = lists.iter().find(|(p, _)| p.ends_with("/daemonsets")).unwrap();
    assert!(
        daemon_sets.1.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dgingham-operator"),
        "{daemon_sets:?}"
    );
    log.lock().unwrap().clear();

    let desired = compute(&snapshot, &OperatorSettings::default());
    let summary = datastore.apply(&desired, None).await.unwrap();
    let writes: Vec<(Method, String, String, Value)> = log.lock().unwrap().drain(..).collect();
    let mut applied: Vec<&str> = writes
        .iter()
        .filter(|(method, path, ..)| method == Method::PATCH || (method == Method::POST && !path.contains("/events")))
        .inspect(|(_, path, query, _)| assert!(query.contains("fieldManager=gingham-operator"), "{path}?{query}"))
        .map(|(_, path, ..)| path.as_str())
        .collect();
    applied.sort_unstable();
    assert_eq!(
        applied,
        [
            "/apis/apps/v1/namespaces/gingham-system/daemonsets/gingham-node-agent",
            // New blocks are created (a precondition: they must not exist yet).
            "/apis/gingham.dev/v1/ipamblocks",
            "/apis/gingham.dev/v1/ipamblocks",
            "/apis/gingham.dev/v1/ippools/default/status",
            "/apis/gingham.dev/v1/nodenetworks/node-1",
            "/apis/gingham.dev/v1/nodenetworks/node-2",
        ]
    );
    assert_eq!(summary.total(), 6);
    let events: Vec<&Value> =
        writes.iter().filter(|(m, p, ..)| m == Method::POST && p.contains("/events")).map(|w| &w.3).collect();
    assert!(
        events
            .iter()
            .any(|e| e["regarding"]["name"] == "garbled" && e["reason"] == "InvalidObject" && e["type"] == "Warning"),
        "{events:?}"
    );
}
