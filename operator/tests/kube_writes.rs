//! The Kubernetes datastore's writes against a mocked API server (tower-test): each request's
//! method, path, query and body, for create, update, status, delete, and the error cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gingham_crds::api::{IPAMBlock, IPPool, IPPoolSpec, NodeNetwork};
use gingham_operator::core::DesiredState;
use gingham_operator::datastore::WriteOp;
use gingham_operator::datastore::kubernetes::apply::{Backoff, Writer};
use gingham_operator::datastore::kubernetes::execute;
use gingham_operator::datastore::kubernetes::plan::{Observed, plan};
use http::{Method, Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::client::Body;
use serde_json::{Value, json};
use support::{block_name, block_spec, node_spec, pool_status};
use tower_test::mock::Handle;

/// One request the API server expects, and its answer.
struct Exchange {
    method: Method,
    path: String,
    /// The query's pairs, in any order (empty: no query).
    query: Vec<(&'static str, &'static str)>,
    /// The exact JSON body, when the request has one.
    body: Option<Value>,
    status: u16,
    response: Value,
}

const APPLY_QUERY: [(&str, &str); 2] = [("fieldManager", "gingham-operator"), ("force", "true")];

fn managed() -> Value {
    json!({"app.kubernetes.io/managed-by": "gingham-operator"})
}

fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": reason, "reason": reason, "code": code})
}

fn apply(path: &str, body: Value) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: path.into(),
        query: APPLY_QUERY.to_vec(),
        body: Some(body.clone()),
        status: 200,
        response: body,
    }
}

fn delete(path: &str, status: u16) -> Exchange {
    let response = if status == 200 {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200})
    } else {
        failure(status, "NotFound")
    };
    Exchange { method: Method::DELETE, path: path.into(), query: vec![], body: None, status, response }
}

fn failing(mut exchange: Exchange, status: u16, reason: &str) -> Exchange {
    exchange.status = status;
    exchange.response = failure(status, reason);
    exchange
}

/// Answers the expected requests in order, checking each, then checks that no other request came.
async fn api_server(mut handle: Handle<Request<Body>, Response<Body>>, exchanges: Vec<Exchange>) {
    for (index, exchange) in exchanges.into_iter().enumerate() {
        let (request, respond) = handle.next_request().await.unwrap_or_else(|| panic!("request {index} never came"));
        assert_eq!(request.method(), exchange.method, "request {index}");
        assert_eq!(request.uri().path(), exchange.path, "request {index}");
        let mut query: Vec<(String, String)> = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        query.sort();
        let mut expected: Vec<(String, String)> =
            exchange.query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        expected.sort();
        assert_eq!(query, expected, "request {index} query");
        let bytes = request.into_body().collect_bytes().await.unwrap();
        if let Some(body) = exchange.body {
            let actual: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(actual, body, "request {index} body");
        }
        let response = Response::builder()
            .status(exchange.status)
            .body(Body::from(serde_json::to_vec(&exchange.response).unwrap()))
            .unwrap();
        respond.send_response(response);
    }
    assert!(handle.next_request().await.is_none(), "an unexpected request came");
}

/// Plans `desired` against `observed`, executes the writes against a mock API server expecting
/// `exchanges`, and returns the outcome.
async fn run(
    desired: &DesiredState,
    observed: &Observed,
    exchanges: Vec<Exchange>,
) -> (gingham_operator::datastore::WriteSummary, Option<String>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(api_server(handle, exchanges));
    let client = kube::Client::new(service, "default");
    let backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100), attempts: 4 };
    let writes = plan(desired, observed, None, &now());
    let (summary, error) = execute(&Writer::new(client, backoff), &writes).await;
    server.await.unwrap();
    (summary, error.map(|e| format!("{}: {e}", e.label())))
}

fn now() -> Time {
    Time("2026-11-26T12:00:00Z".parse().unwrap())
}

fn node_network_body(name: &str, spec: &gingham_crds::api::NodeNetworkSpec) -> Value {
    json!({
        "apiVersion": "gingham.dev/v1",
        "kind": "NodeNetwork",
        "metadata": {"name": name, "labels": managed()},
        "spec": serde_json::to_value(spec).unwrap(),
    })
}

fn observed_node(name: &str, spec: gingham_crds::api::NodeNetworkSpec) -> NodeNetwork {
    let mut node = NodeNetwork::new(name, spec);
    node.metadata.labels = Some(BTreeMap::from([("app.kubernetes.io/managed-by".into(), "gingham-operator".into())]));
    node
}

fn desired_nodes(indices: &[u8]) -> DesiredState {
    let mut desired = DesiredState::default();
    for index in indices {
        desired.node_networks.insert(format!("node-{index}"), node_spec(*index));
    }
    desired
}

#[tokio::test]
async fn a_new_node_network_is_created_by_server_side_apply() {
    let exchanges = vec![apply("/apis/gingham.dev/v1/nodenetworks/node-1", node_network_body("node-1", &node_spec(1)))];
    let (summary, error) = run(&desired_nodes(&[1]), &Observed::default(), exchanges).await;
    assert_eq!(error, None);
    assert_eq!(summary.writes.get(&("NodeNetwork", WriteOp::Apply)), Some(&1));
}

#[tokio::test]
async fn only_the_changed_node_network_is_updated() {
    let mut observed = Observed::default();
    observed.node_networks.insert("node-1".into(), observed_node("node-1", node_spec(9)));
    observed.node_networks.insert("node-2".into(), observed_node("node-2", node_spec(2)));
    let exchanges = vec![apply("/apis/gingham.dev/v1/nodenetworks/node-1", node_network_body("node-1", &node_spec(1)))];
    let (summary, error) = run(&desired_nodes(&[1, 2]), &observed, exchanges).await;
    assert_eq!(error, None);
    assert_eq!(summary.total(), 1);
}

fn observed_pool(status: Option<gingham_crds::api::IPPoolStatus>) -> Observed {
    let mut pool = IPPool::new("default", IPPoolSpec { cidr: "10.244.0.0/16".into(), ..IPPoolSpec::default() });
    pool.status = status;
    let mut observed = Observed::default();
    observed.pools.insert("default".into(), pool);
    observed
}

#[tokio::test]
async fn pool_status_goes_through_the_status_subresource() {
    let mut desired = DesiredState::default();
    desired.pool_statuses.insert("default".into(), pool_status());
    let mut status = serde_json::to_value(pool_status()).unwrap();
    status["conditions"][0]["lastTransitionTime"] = json!("2026-11-26T12:00:00Z");
    let body =
        json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": "default"}, "status": status});
    let exchanges = vec![apply("/apis/gingham.dev/v1/ippools/default/status", body)];
    let (summary, error) = run(&desired, &observed_pool(None), exchanges).await;
    assert_eq!(error, None);
    assert_eq!(summary.writes.get(&("IPPool", WriteOp::Apply)), Some(&1));
}

#[tokio::test]
async fn a_pool_status_differing_only_in_timestamps_is_not_written() {
    let mut desired = DesiredState::default();
    desired.pool_statuses.insert("default".into(), pool_status());
    let mut current = pool_status();
    current.conditions[0].last_transition_time = Time("2026-01-01T00:00:00Z".parse().unwrap());
    let (summary, error) = run(&desired, &observed_pool(Some(current)), vec![]).await;
    assert_eq!((summary.total(), error), (0, None));
}

fn observed_blocks(labelled: bool) -> Observed {
    let mut observed = Observed::default();
    for index in [1, 2] {
        let mut block = IPAMBlock::new(&block_name(index), block_spec(index));
        if labelled || index == 1 {
            block.metadata.labels =
                Some(BTreeMap::from([("app.kubernetes.io/managed-by".into(), "gingham-operator".into())]));
        }
        observed.blocks.insert(block_name(index), block);
    }
    observed
}

fn desired_block_1() -> DesiredState {
    let mut desired = DesiredState::default();
    desired.blocks.insert(block_name(1), block_spec(1));
    desired
}

#[tokio::test]
async fn a_stale_block_is_deleted() {
    let path = format!("/apis/gingham.dev/v1/ipamblocks/{}", block_name(2));
    let (summary, error) = run(&desired_block_1(), &observed_blocks(true), vec![delete(&path, 200)]).await;
    assert_eq!(error, None);
    assert_eq!(summary.writes.get(&("IPAMBlock", WriteOp::Delete)), Some(&1));
}

#[tokio::test]
async fn a_block_without_the_managed_by_label_is_never_deleted() {
    let (summary, error) = run(&desired_block_1(), &observed_blocks(false), vec![]).await;
    assert_eq!((summary.total(), error), (0, None));
}

#[tokio::test]
async fn not_found_on_delete_means_done() {
    let path = format!("/apis/gingham.dev/v1/ipamblocks/{}", block_name(2));
    let (summary, error) = run(&desired_block_1(), &observed_blocks(true), vec![delete(&path, 404)]).await;
    assert_eq!(error, None);
    assert_eq!(summary.total(), 1);
}

#[tokio::test]
async fn a_conflict_is_retried() {
    let body = node_network_body("node-1", &node_spec(1));
    let path = "/apis/gingham.dev/v1/nodenetworks/node-1";
    let exchanges = vec![failing(apply(path, body.clone()), 409, "Conflict"), apply(path, body)];
    let (summary, error) = run(&desired_nodes(&[1]), &Observed::default(), exchanges).await;
    assert_eq!(error, None);
    assert_eq!(summary.total(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_success() {
    let body = node_network_body("node-1", &node_spec(1));
    let path = "/apis/gingham.dev/v1/nodenetworks/node-1";
    let exchanges = vec![
        failing(apply(path, body.clone()), 500, "InternalError"),
        failing(apply(path, body.clone()), 503, "ServiceUnavailable"),
        apply(path, body),
    ];
    let started = Instant::now();
    let (summary, error) = run(&desired_nodes(&[1]), &Observed::default(), exchanges).await;
    assert_eq!(error, None);
    assert_eq!(summary.total(), 1);
    // Waited 20 ms, then 40 ms.
    assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_last_attempt_and_other_writes_still_happen() {
    let path = "/apis/gingham.dev/v1/nodenetworks/node-1";
    let body = node_network_body("node-1", &node_spec(1));
    let mut exchanges: Vec<Exchange> =
        (0..4).map(|_| failing(apply(path, body.clone()), 500, "InternalError")).collect();
    exchanges.push(apply("/apis/gingham.dev/v1/nodenetworks/node-2", node_network_body("node-2", &node_spec(2))));
    let (summary, error) = run(&desired_nodes(&[1, 2]), &Observed::default(), exchanges).await;
    let error = error.unwrap();
    assert!(error.starts_with("write: cannot write NodeNetwork node-1 after 4 attempt(s)"), "{error}");
    assert_eq!(summary.total(), 1, "node-2 was still written");
}

#[tokio::test]
async fn an_invalid_request_is_not_retried() {
    let path = "/apis/gingham.dev/v1/nodenetworks/node-1";
    let exchanges = vec![failing(apply(path, node_network_body("node-1", &node_spec(1))), 422, "Invalid")];
    let (summary, error) = run(&desired_nodes(&[1]), &Observed::default(), exchanges).await;
    assert!(error.unwrap().contains("after 1 attempt(s)"));
    assert_eq!(summary.total(), 0);
}

#[tokio::test]
async fn a_translated_policy_is_applied_in_its_namespace_with_the_operator_label() {
    let mut desired = DesiredState::default();
    desired.translated_policies.insert(("default".into(), "web".into()), support::translated());
    let body = json!({
        "apiVersion": "gingham.dev/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "knp.web", "namespace": "default", "labels": managed()},
        "spec": serde_json::to_value(&support::translated().spec).unwrap(),
    });
    let exchanges = vec![apply("/apis/gingham.dev/v1/namespaces/default/networkpolicies/knp.web", body)];
    let (summary, error) = run(&desired, &Observed::default(), exchanges).await;
    assert_eq!((summary.total(), error), (1, None));
}

fn agent_daemon_set() -> k8s_openapi::api::apps::v1::DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "gingham-node-agent", "namespace": "gingham-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn the_daemon_set_is_applied_once_and_then_left_alone_while_unchanged() {
    let mut desired = DesiredState { agent_daemon_set: Some(agent_daemon_set()), ..DesiredState::default() };
    let path = "/apis/apps/v1/namespaces/gingham-system/daemonsets/gingham-node-agent";
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let applied = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = std::sync::Arc::clone(&applied);
    let server = tokio::spawn(async move {
        let mut handle = handle;
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!((request.method(), request.uri().path()), (&Method::PATCH, path));
        let body: Value = serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        *seen.lock().unwrap() = Some(body.clone());
        respond.send_response(Response::new(Body::from(serde_json::to_vec(&body).unwrap())));
        assert!(handle.next_request().await.is_none());
    });
    let writer = Writer::new(kube::Client::new(service, "default"), Backoff::default());
    let (summary, error) = execute(&writer, &plan(&desired, &Observed::default(), None, &now())).await;
    drop(writer);
    server.await.unwrap();
    assert_eq!((summary.total(), error.map(|e| e.to_string())), (1, None));
    let body = applied.lock().unwrap().take().unwrap();
    assert_eq!(body["metadata"]["labels"], managed());
    let hash = body["metadata"]["annotations"]["gingham.dev/desired-hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 16);

    // The API server's copy (defaulted, with the annotation) needs no write; a changed image does.
    let mut current: k8s_openapi::api::apps::v1::DaemonSet = serde_json::from_value(body).unwrap();
    current.spec.as_mut().unwrap().revision_history_limit = Some(10);
    let mut observed = Observed::default();
    observed.daemon_sets.insert("gingham-node-agent".into(), current);
    assert!(plan(&desired, &observed, None, &now()).is_empty());
    let mut changed = agent_daemon_set();
    changed.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("agent:2".into());
    desired.agent_daemon_set = Some(changed);
    assert_eq!(plan(&desired, &observed, None, &now()).len(), 1);
}

#[tokio::test]
async fn a_new_block_is_created_and_an_existing_one_is_never_overwritten() {
    let mut body =
        serde_json::to_value(gingham_operator::datastore::objects::ipam_block(&block_name(1), &block_spec(1))).unwrap();
    let create = Exchange {
        method: Method::POST,
        path: "/apis/gingham.dev/v1/ipamblocks".into(),
        query: vec![("fieldManager", "gingham-operator")],
        body: Some(body.clone()),
        status: 201,
        response: body.clone(),
    };
    let (summary, error) = run(&desired_block_1(), &Observed::default(), vec![create]).await;
    assert_eq!((summary.total(), error), (1, None));

    // Another writer created it first: no retry, no force; the next round reads it.
    body["metadata"]["resourceVersion"] = json!("1");
    let conflict = Exchange {
        method: Method::POST,
        path: "/apis/gingham.dev/v1/ipamblocks".into(),
        query: vec![("fieldManager", "gingham-operator")],
        body: None,
        status: 409,
        response: failure(409, "AlreadyExists"),
    };
    let (summary, error) = run(&desired_block_1(), &Observed::default(), vec![conflict]).await;
    assert_eq!(summary.total(), 0);
    assert!(error.unwrap().starts_with("conflict: IPAMBlock 10-244-0-0-26 changed since it was read"));
}

#[tokio::test]
async fn a_changed_block_is_applied_at_the_version_it_was_read_at() {
    let mut observed = Observed::default();
    let mut stale = IPAMBlock::new(&block_name(1), block_spec(2));
    stale.metadata.resource_version = Some("41".into());
    observed.blocks.insert(block_name(1), stale);
    let mut body =
        serde_json::to_value(gingham_operator::datastore::objects::ipam_block(&block_name(1), &block_spec(1))).unwrap();
    body["metadata"]["resourceVersion"] = json!("41");
    let path = format!("/apis/gingham.dev/v1/ipamblocks/{}", block_name(1));
    let (summary, error) = run(&desired_block_1(), &observed, vec![apply(&path, body.clone())]).await;
    assert_eq!((summary.total(), error), (1, None));
    // The precondition failed: one attempt only.
    let (summary, error) = run(&desired_block_1(), &observed, vec![failing(apply(&path, body), 409, "Conflict")]).await;
    assert_eq!(summary.total(), 0);
    assert!(error.unwrap().starts_with("conflict: "));
}

#[tokio::test]
async fn with_changes_only_the_named_objects_are_compared_and_written() {
    let mut observed = Observed::default();
    // node-3 was deleted from the desired state; node-2 differs but the change set does not name
    // it (the datastore then does not even look it up).
    observed.node_networks.insert("node-3".into(), observed_node("node-3", node_spec(3)));
    let changes = gingham_operator::core::engine::Changes {
        node_networks: ["node-1".to_string(), "node-3".to_string()].into(),
        ..Default::default()
    };
    let writes = plan(&desired_nodes(&[1, 2]), &observed, Some(&changes), &now());
    let targets: Vec<(&str, bool)> = writes
        .iter()
        .map(|w| {
            (w.target().name.as_str(), matches!(w, gingham_operator::datastore::kubernetes::plan::Write::Delete { .. }))
        })
        .collect();
    assert_eq!(targets, [("node-1", false), ("node-3", true)]);
}
