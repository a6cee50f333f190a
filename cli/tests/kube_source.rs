//! The Kubernetes path against a mocked API server: one list per kind, pods only of `-n`'s
//! namespace when given, and the commands' reports built from what the lists returned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_cli::args::IpamShowArgs;
use gingham_cli::{ipam, node, source};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn list(api_version: &str, kind: &str, items: Value) -> Response<Body> {
    let list = json!({ "apiVersion": api_version, "kind": format!("{kind}List"), "metadata": { "resourceVersion": "7" }, "items": items });
    Response::new(Body::from(serde_json::to_vec(&list).unwrap()))
}

/// Answers the lists in the order the CLI makes them, checking each path.
async fn serve(mut handle: Handle, pods_path: &str) {
    let gingham = "gingham.dev/v1";
    let node_network = json!({ "apiVersion": gingham, "kind": "NodeNetwork", "metadata": { "name": "node-a", "generation": 4 },
        "spec": { "address": "192.168.10.2/24" },
        "status": { "observedGeneration": 4, "bgpSummary": "1/1",
            "conditions": [{ "type": "Ready", "status": "True", "reason": "Applied", "message": "", "lastTransitionTime": "2026-12-01T10:00:00Z" }],
            "endpoints": [{ "name": "prod/web", "address": "10.244.0.3", "interface": "gh1" }] } });
    let block = json!({ "apiVersion": gingham, "kind": "IPAMBlock", "metadata": { "name": "10-244-0-0-26" },
        "spec": { "cidr": "10.244.0.0/26", "node": "node-a", "pool": "default", "nodeAddress": "192.168.10.2/24" } });
    let pool = json!({ "apiVersion": gingham, "kind": "IPPool", "metadata": { "name": "default" }, "spec": { "cidr": "10.244.0.0/16" } });
    let pod = json!({ "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "web", "namespace": "prod", "creationTimestamp": "2026-12-01T09:00:00Z" }, "spec": { "nodeName": "node-a", "containers": [] } });
    let answers = [
        ("/apis/gingham.dev/v1/nodenetworks", list(gingham, "NodeNetwork", json!([node_network]))),
        ("/apis/gingham.dev/v1/ipamblocks", list(gingham, "IPAMBlock", json!([block]))),
        ("/apis/gingham.dev/v1/ippools", list(gingham, "IPPool", json!([pool]))),
        (pods_path, list("v1", "Pod", json!([pod]))),
    ];
    let within = pods_path.strip_suffix("/pods").and_then(|p| p.strip_prefix("/api/v1")).unwrap_or_default();
    let policies = [
        (format!("/apis/gingham.dev/v1{within}/networkpolicies"), list(gingham, "NetworkPolicy", json!([]))),
        ("/apis/gingham.dev/v1/globalnetworkpolicies".to_string(), list(gingham, "GlobalNetworkPolicy", json!([]))),
        (
            format!("/apis/networking.k8s.io/v1{within}/networkpolicies"),
            list("networking.k8s.io/v1", "NetworkPolicy", json!([])),
        ),
    ];
    let answers = answers.into_iter().map(|(p, r)| (p.to_string(), r)).chain(policies);
    for (path, response) in answers {
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(request.uri().path(), path.as_str());
        respond.send_response(response);
    }
}

#[tokio::test]
async fn the_cluster_is_read_through_lists_and_reported_like_the_file_datastore() {
    for (namespace, pods_path) in [(None, "/api/v1/pods"), (Some("prod"), "/api/v1/namespaces/prod/pods")] {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(serve(handle, pods_path));
        let view = source::load_from_client(Client::new(service, "default"), namespace).await.unwrap();
        server.await.unwrap();

        let report = node::status(&view, None).unwrap();
        assert!(report.is_healthy(), "{report:?}");
        let args = IpamShowArgs { show_blocks: false, ip: Some("10.244.0.3".parse().unwrap()), show_borrowed: false };
        let shown = ipam::show(&view, &args);
        let holder = shown.ip.unwrap().holder.unwrap();
        assert_eq!((holder.owner.as_str(), holder.node.as_str()), ("prod/web", "node-a"));
        assert_eq!(holder.since.as_deref(), Some("2026-12-01T09:00:00Z"));
        assert_eq!((shown.pools[0].blocks, shown.pools[0].in_use), (1, 1));
    }
}

#[tokio::test]
async fn a_refused_list_names_the_kind_and_the_rbac_check() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let (_, respond) = handle.next_request().await.unwrap();
        let status = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "forbidden", "reason": "Forbidden", "code": 403 });
        let mut response = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
        *response.status_mut() = http::StatusCode::FORBIDDEN;
        respond.send_response(response);
    });
    let error = source::load_from_client(Client::new(service, "default"), None).await.unwrap_err();
    server.await.unwrap();
    let message = error.to_string();
    assert!(message.starts_with("kubernetes: list nodenetworks: "), "{message}");
    assert!(message.ends_with("(`kubectl auth can-i list nodenetworks`)"), "{message}");
}

#[tokio::test]
async fn version_reads_the_deployed_images_and_skips_what_is_not_installed() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!(request.uri().path(), "/apis/apps/v1/namespaces/gingham-system/deployments/gingham-operator");
        let deployment = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "gingham-operator" },
            "spec": { "selector": {}, "template": { "spec": { "containers": [{ "name": "operator", "image": "ghcr.io/gingham/operator:0.1.0" }] } } } });
        respond.send_response(Response::new(Body::from(serde_json::to_vec(&deployment).unwrap())));
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!(request.uri().path(), "/apis/apps/v1/namespaces/gingham-system/daemonsets/gingham-node-agent");
        let status =
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404 });
        let mut response = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        respond.send_response(response);
    });
    let images = source::component_images_from_client(Client::new(service, "default"), "gingham-system").await.unwrap();
    server.await.unwrap();
    assert_eq!(images, [("gingham-operator".to_string(), "ghcr.io/gingham/operator:0.1.0".to_string())]);
}
