//! The whole Kubernetes datastore against a fake API server: every kind is listed and watched at
//! the right path, a malformed object is skipped and reported as an Event, and the first round
//! writes the derived objects by server-side apply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use gingham_operator::core::engine::{Engine, Event};
use gingham_operator::core::{OperatorSettings, compute};
use gingham_operator::datastore::kubernetes::KubeDatastore;
use gingham_operator::datastore::{Datastore, Observation};
use http::{Method, Request, Response};
use http_body_util::StreamBody;
use hyper::body::Frame;
use kube::client::Body;
use serde_json::{Value, json};

/// Requests the fake API server saw: (method, path, query, body).
type Log = Arc<Mutex<Vec<(Method, String, String, Value)>>>;

fn node(name: &str, address: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": "1"},
           "status": {"addresses": [{"type": "InternalIP", "address": address}]}})
}

fn network_set(namespace: Option<&str>, name: &str, net: &str) -> Value {
    let kind = if namespace.is_some() { "NetworkSet" } else { "GlobalNetworkSet" };
    json!({"apiVersion": "gingham.dev/v1", "kind": kind,
           "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1", "labels": {"feed": "partners"}},
           "spec": {"nets": [net]}})
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
        ("/apis/gingham.dev/v1/globalnetworksets", vec![network_set(None, "partners", "192.0.2.0/24")]),
        (
            "/api/v1/serviceaccounts",
            vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "api", "namespace": "shop", "resourceVersion": "1", "labels": {"team": "a"}}})],
        ),
        ("/apis/discovery.k8s.io/v1/endpointslices", vec![slice("10.244.0.5")]),
        (
            "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies",
            vec![json!({
            "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": "guard", "resourceVersion": "1", "uid": "u-guard"},
            "spec": {"tier": "Admin", "priority": 5, "subject": {"namespaces": {}},
                     "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"env": "dev"}}}]}]}})],
        ),
    ])
}

fn slice(address: &str) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "web-abc", "namespace": "shop", "resourceVersion": "1",
                        "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4", "endpoints": [{"addresses": [address]}],
           "ports": [{"port": 8080, "protocol": "TCP"}]})
}

/// A kind whose CRD is not installed: the API server answers 404.
const UNSERVED: &str = "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies";

type TestBody = http_body_util::StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

fn body_of(value: &Value) -> TestBody {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
    StreamBody::new(futures::stream::iter([Ok(Frame::data(bytes))]).boxed())
}

/// The fake API server: lists from [`lists`], watches that stay open and deliver `watch_events`
/// for their path, and writes echoed back.
async fn answer(
    request: Request<Body>,
    log: Log,
    watch_events: Arc<BTreeMap<&'static str, Vec<Value>>>,
    release: Arc<tokio::sync::Notify>,
) -> Result<Response<TestBody>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    if query.contains("watch=true") {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = watch_events
            .get(path.as_str())
            .into_iter()
            .flatten()
            .map(|event| Ok(Frame::data(Bytes::from(format!("{event}\n")))))
            .collect();
        // Events wait until the test releases them (after the first snapshot).
        let stream = futures::stream::once(async move {
            if !frames.is_empty() {
                release.notified().await;
            }
            futures::stream::iter(frames)
        })
        .flatten()
        .chain(futures::stream::pending());
        return Ok(Response::new(StreamBody::new(stream.boxed())));
    }
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    log.lock().unwrap().push((method.clone(), path.clone(), query, body.clone()));
    if method == Method::GET && path == UNSERVED {
        let status = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound",
                            "code": 404, "message": "the server could not find the requested resource"});
        let mut response = Response::new(body_of(&status));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let response = if method == Method::GET {
        let items = lists().remove(path.as_str()).unwrap_or_default();
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "5"}, "items": items})
    } else {
        body
    };
    Ok(Response::new(body_of(&response)))
}

/// A datastore over the fake API server; notifying the returned `Notify` releases the watch events.
fn start(watch_events: BTreeMap<&'static str, Vec<Value>>) -> (KubeDatastore, Log, Arc<tokio::sync::Notify>) {
    let log: Log = Arc::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (handler, events, released) = (Arc::clone(&log), Arc::new(watch_events), Arc::clone(&release));
    let service = tower::service_fn(move |request| {
        answer(request, Arc::clone(&handler), Arc::clone(&events), Arc::clone(&released))
    });
    let client = kube::Client::new(service, "default");
    (KubeDatastore::start(client, "gingham-system", "operator-0"), log, release)
}

#[tokio::test]
async fn the_first_round_lists_everything_writes_derived_objects_and_reports_bad_ones() {
    let (mut datastore, log, _) = start(BTreeMap::new());
    let observation = tokio::time::timeout(Duration::from_secs(10), datastore.next()).await.unwrap().unwrap();
    let Observation::Snapshot(snapshot) = observation else { panic!("the first observation is a snapshot") };
    assert_eq!(snapshot.pools.len(), 1);
    assert_eq!(snapshot.nodes.len(), 2);
    assert!(snapshot.bgp_peers.is_empty(), "the garbled peer is skipped");
    assert_eq!(snapshot.global_network_sets.len(), 1, "GlobalNetworkSets are read");
    assert_eq!(snapshot.service_accounts.len(), 1, "service accounts are read, for serviceAccounts matches");
    assert_eq!(snapshot.endpoint_slices.len(), 1, "endpoint slices are read, for services matches");

    let lists: Vec<(String, String)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(method, ..)| method == Method::GET)
        .map(|(_, path, query, _)| (path.clone(), query.clone()))
        .collect();
    let paths: std::collections::BTreeSet<&str> = lists.iter().map(|(p, _)| p.as_str()).collect();
    let expected = [
        "/apis/gingham.dev/v1/ippools",
        "/apis/gingham.dev/v1/bgpconfigurations",
        "/apis/gingham.dev/v1/bgppeers",
        "/apis/gingham.dev/v1/felixconfigurations",
        "/apis/gingham.dev/v1/networkpolicies",
        "/apis/gingham.dev/v1/globalnetworkpolicies",
        "/apis/gingham.dev/v1/tiers",
        "/apis/gingham.dev/v1/networksets",
        "/apis/gingham.dev/v1/globalnetworksets",
        "/apis/gingham.dev/v1/hostendpoints",
        "/apis/gingham.dev/v1/ipamblocks",
        "/apis/gingham.dev/v1/nodenetworks",
        "/apis/networking.k8s.io/v1/networkpolicies",
        "/api/v1/nodes",
        "/api/v1/pods",
        "/api/v1/namespaces",
        "/api/v1/namespaces/gingham-system/secrets",
        "/api/v1/serviceaccounts",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/apis/apps/v1/namespaces/gingham-system/daemonsets",
        "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies",
        "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies",
        UNSERVED,
    ];
    for path in expected {
        assert!(paths.contains(path), "{path} was not listed: {paths:?}");
    }
    assert_eq!(paths.len(), expected.len(), "only those are listed: {paths:?}");
    assert_eq!(snapshot.cluster_network_policies.len(), 1, "a kind not served leaves the others working");
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
            "/apis/gingham.dev/v1/globalnetworkpolicies/kube-admin.cnp.guard",
            // New blocks are created (a precondition: they must not exist yet).
            "/apis/gingham.dev/v1/ipamblocks",
            "/apis/gingham.dev/v1/ipamblocks",
            "/apis/gingham.dev/v1/ippools/default/status",
            "/apis/gingham.dev/v1/nodenetworks/node-1",
            "/apis/gingham.dev/v1/nodenetworks/node-2",
        ]
    );
    assert_eq!(summary.total(), 7);
    let translation = writes.iter().find(|(_, path, ..)| path.ends_with("/kube-admin.cnp.guard")).unwrap();
    assert_eq!(translation.3["spec"]["tier"], "kube-admin");
    assert_eq!(translation.3["metadata"]["ownerReferences"][0]["uid"], "u-guard");
    let events: Vec<&Value> =
        writes.iter().filter(|(m, p, ..)| m == Method::POST && p.contains("/events")).map(|w| &w.3).collect();
    assert!(
        events
            .iter()
            .any(|e| e["regarding"]["name"] == "garbled" && e["reason"] == "InvalidObject" && e["type"] == "Warning"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_node_joining_later_is_handled_incrementally() {
    let joined = json!({"type": "ADDED", "object": node("node-3", "192.168.10.3")});
    let (mut datastore, log, release) = start(BTreeMap::from([("/api/v1/nodes", vec![joined])]));
    let Observation::Snapshot(snapshot) = datastore.next().await.unwrap() else { panic!("a snapshot comes first") };
    let mut engine = Engine::from_snapshot(&snapshot, OperatorSettings::default());
    engine.take_changes();

    // The watch delivers node-3: an event, not a new snapshot.
    release.notify_one();
    let observation = tokio::time::timeout(Duration::from_secs(10), datastore.next()).await.unwrap().unwrap();
    let Observation::Events(events) = observation else { panic!("expected events, got a snapshot") };
    let upserts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Upsert(object) => Some(object.key().1),
            Event::Delete(..) => None,
        })
        .collect();
    assert_eq!(upserts, ["node-3"]);
    events.into_iter().for_each(|event| engine.apply(event));
    let changes = engine.take_changes();
    assert!(changes.node_networks.contains("node-3"));
    assert!(!changes.agent_daemon_set);

    log.lock().unwrap().clear();
    datastore.apply(engine.desired(), Some(&changes)).await.unwrap();
    let writes: Vec<(Method, String)> = log.lock().unwrap().iter().map(|(m, p, ..)| (m.clone(), p.clone())).collect();
    assert!(writes.iter().all(|(method, _)| method != Method::GET), "observed state comes from the caches: {writes:?}");
    assert!(writes.contains(&(Method::PATCH, "/apis/gingham.dev/v1/nodenetworks/node-3".into())), "{writes:?}");
    assert!(writes.contains(&(Method::POST, "/apis/gingham.dev/v1/ipamblocks".into())), "{writes:?}");
    assert!(!writes.iter().any(|(_, path)| path.contains("daemonsets")), "{writes:?}");
}

#[tokio::test]
async fn network_sets_arrive_as_events_and_a_bad_one_is_skipped() {
    let added = |set: Value| json!({"type": "ADDED", "object": set});
    let events = vec![
        added(network_set(Some("shop"), "good", "198.51.100.0/28")),
        added(network_set(Some("shop"), "typo", "198.51.100.300/28")),
    ];
    let (mut datastore, _, release) = start(BTreeMap::from([("/apis/gingham.dev/v1/networksets", events)]));
    let Observation::Snapshot(snapshot) = datastore.next().await.unwrap() else { panic!("a snapshot comes first") };
    assert!(snapshot.network_sets.is_empty());
    release.notify_one();
    let observation = tokio::time::timeout(Duration::from_secs(10), datastore.next()).await.unwrap().unwrap();
    let Observation::Events(events) = observation else { panic!("expected events, got a snapshot") };
    let upserts: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Upsert(object) => Some(object.key()),
            Event::Delete(..) => None,
        })
        .collect();
    assert_eq!(upserts, [("shop".to_string(), "good".to_string())], "the set with a bad net is skipped and reported");
}

#[tokio::test]
async fn an_endpoint_slice_change_reaches_the_engine_as_an_event() {
    let moved = json!({"type": "MODIFIED", "object": slice("10.244.0.9")});
    let (mut datastore, _, release) =
        start(BTreeMap::from([("/apis/discovery.k8s.io/v1/endpointslices", vec![moved])]));
    let Observation::Snapshot(_) = datastore.next().await.unwrap() else { panic!("a snapshot comes first") };
    release.notify_one();
    let observation = tokio::time::timeout(Duration::from_secs(10), datastore.next()).await.unwrap().unwrap();
    let Observation::Events(events) = observation else { panic!("expected events, got a snapshot") };
    let slices: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Upsert(object @ gingham_operator::core::engine::store::Object::EndpointSlice(_)) => {
                Some(object.key())
            }
            _ => None,
        })
        .collect();
    assert_eq!(slices, [("shop".to_string(), "web-abc".to_string())]);
}
