//! The admission endpoint: verdicts through the router with a mocked API server for the pool
//! list, and the whole HTTPS path with the generated certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::ByteString;
use serde_json::{Value, json};

use super::*;

fn review(kind: &str, resource: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "gingham.dev", "version": "v1", "kind": kind},
            "resource": {"group": "gingham.dev", "version": "v1", "resource": resource},
            "name": object["metadata"]["name"], "operation": operation, "userInfo": {},
            "object": object, "dryRun": false,
        }
    })
}

fn pool(name: &str, cidr: &str) -> Value {
    json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": {"cidr": cidr}})
}

/// Posts a review to the router, answering the pool list (when `pools` is given) from a mock
/// API server; returns the response's `response` object.
async fn admit(body: Value, pools: Option<Vec<Value>>) -> Value {
    let answers = pools.map(|items| {
        let list = json!({"apiVersion": "gingham.dev/v1", "kind": "IPPoolList", "metadata": {}, "items": items});
        ("/apis/gingham.dev/v1/ippools", 200, list)
    });
    admit_answering(body, answers.into_iter().collect()).await
}

/// Posts a review to the router; the mock API server expects exactly these requests, in order
/// (path), and answers each with its status and body.
async fn admit_answering(body: Value, answers: Vec<(&'static str, u16, Value)>) -> Value {
    let (service, mut handle) = tower_test::mock::pair::<Request<kube::client::Body>, Response<kube::client::Body>>();
    let server = tokio::spawn(async move {
        for (path, status, answer) in answers {
            let (request, respond) = handle.next_request().await.unwrap();
            assert_eq!(request.uri().path(), path);
            let mut response = Response::new(kube::client::Body::from(serde_json::to_vec(&answer).unwrap()));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            respond.send_response(response);
        }
        assert!(handle.next_request().await.is_none(), "unexpected request");
    });
    let request = Request::post(PATH)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let response = router(Client::new(service, "default")).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    server.await.unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["response"].clone()
}

fn global_policy(name: &str, tier: &str) -> Value {
    json!({"apiVersion": "gingham.dev/v1", "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
           "spec": {"tier": tier, "selector": "all()"}})
}

#[tokio::test]
async fn a_policy_in_a_missing_tier_is_rejected_and_one_in_an_existing_tier_admitted() {
    let not_found =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
    let policy = global_policy("security.block", "security");
    let response = admit_answering(
        review("GlobalNetworkPolicy", "globalnetworkpolicies", "CREATE", policy.clone()),
        vec![("/apis/gingham.dev/v1/tiers/security", 404, not_found)],
    )
    .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.tier: the tier \"security\" does not exist"), "{message}");
    let tier = json!({"apiVersion": "gingham.dev/v1", "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 100}});
    let response = admit_answering(
        review("GlobalNetworkPolicy", "globalnetworkpolicies", "CREATE", policy),
        vec![("/apis/gingham.dev/v1/tiers/security", 200, tier)],
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    let builtin = global_policy("kube-admin.block", "kube-admin");
    let response =
        admit_answering(review("GlobalNetworkPolicy", "globalnetworkpolicies", "CREATE", builtin), vec![]).await;
    assert_eq!(response["allowed"], true, "a built-in tier needs no lookup: {response}");
    let misnamed = global_policy("block", "kube-admin");
    let response =
        admit_answering(review("GlobalNetworkPolicy", "globalnetworkpolicies", "CREATE", misnamed), vec![]).await;
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("metadata.name: a policy in tier \"kube-admin\" must be named kube-admin.<name>"),
        "{message}"
    );
}

#[tokio::test]
async fn a_tier_holding_policies_and_the_built_in_tiers_cannot_be_deleted() {
    let delete = |name: &str| {
        let mut body = review("Tier", "tiers", "DELETE", json!({"metadata": {"name": name}}));
        body["request"]["object"] = Value::Null;
        body["request"]["oldObject"] =
            json!({"apiVersion": "gingham.dev/v1", "kind": "Tier", "metadata": {"name": name}});
        body
    };
    let response = admit_answering(delete("default"), vec![]).await;
    assert_eq!(response["allowed"], false);
    assert!(response["status"]["message"].as_str().unwrap().contains("built in"), "{response}");
    let list = |kind: &str, items: Vec<Value>| json!({"apiVersion": "gingham.dev/v1", "kind": kind, "metadata": {}, "items": items});
    let namespaced = json!({"apiVersion": "gingham.dev/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": "security.x", "namespace": "shop"}, "spec": {"tier": "security"}});
    let answers = |global: Vec<Value>| {
        vec![
            ("/apis/gingham.dev/v1/networkpolicies", 200, list("NetworkPolicyList", vec![namespaced.clone()])),
            ("/apis/gingham.dev/v1/globalnetworkpolicies", 200, list("GlobalNetworkPolicyList", global)),
        ]
    };
    let response = admit_answering(delete("security"), answers(vec![global_policy("security.y", "security")])).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("still holds 2 policies (shop/security.x, security.y)"), "{message}");
    let response = admit_answering(delete("audit"), answers(vec![])).await;
    assert_eq!(response["allowed"], true, "a tier none of the listed policies is in may go: {response}");
}

#[tokio::test]
async fn an_overlapping_pool_is_rejected_with_the_field_named() {
    let existing = vec![pool("default", "10.244.0.0/16")];
    let response = admit(review("IPPool", "ippools", "CREATE", pool("inner", "10.244.1.0/24")), Some(existing)).await;
    assert_eq!(response["uid"], "u-1");
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "spec.cidr: 10.244.1.0/24 overlaps IPPool default (10.244.0.0/16) (fix: choose a range outside every other pool)"
    );
}

#[tokio::test]
async fn a_separate_pool_is_admitted() {
    let existing = vec![pool("default", "10.244.0.0/16")];
    let response = admit(review("IPPool", "ippools", "CREATE", pool("other", "10.245.0.0/16")), Some(existing)).await;
    assert_eq!(response["allowed"], true);
}

#[tokio::test]
async fn a_peer_with_a_bad_selector_is_rejected_without_listing_pools() {
    let peer = json!({"apiVersion": "gingham.dev/v1", "kind": "BGPPeer", "metadata": {"name": "p"},
                      "spec": {"nodeSelector": "rack ==", "peerIP": "192.0.2.1", "asNumber": 64513}});
    let response = admit(review("BGPPeer", "bgppeers", "UPDATE", peer), None).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("spec.nodeSelector: invalid selector"), "{message}");
}

#[tokio::test]
async fn the_webhook_answers_over_tls_with_the_generated_certificate() {
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let material =
        crate::certs::generate("gingham-webhook", tls::dns_names("gingham-operator-webhook", "gingham-system"))
            .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = WebhookConfig {
        addr: ([127, 0, 0, 1], port).into(),
        namespace: "gingham-system".into(),
        service: "gingham-operator-webhook".into(),
    };
    // A BGPPeer review lists nothing: the mock API server sees no request.
    let (service, _handle) = tower_test::mock::pair::<Request<kube::client::Body>, Response<kube::client::Body>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(Client::new(service, "default"), config, material.clone(), async {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(material.ca_cert.as_bytes()).unwrap()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(tcp) => break tcp,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let name = ServerName::try_from("gingham-operator-webhook.gingham-system.svc").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let peer = json!({"apiVersion": "gingham.dev/v1", "kind": "BGPPeer", "metadata": {"name": "p"},
                      "spec": {"nodeSelector": "rack ==", "peerIP": "192.0.2.1", "asNumber": 64513}});
    let body = serde_json::to_string(&review("BGPPeer", "bgppeers", "CREATE", peer)).unwrap();
    let request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: gingham-operator-webhook.gingham-system.svc\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let json: Value = serde_json::from_str(&response[response.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(json["response"]["allowed"], false);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Answers `expected` (method, path, status, response) in order and returns each request's body.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<kube::client::Body>, Response<kube::client::Body>>,
    expected: Vec<(http::Method, &'static str, u16, Value)>,
) -> Vec<(String, Value)> {
    let mut bodies = Vec::new();
    for (method, path, status, response) in expected {
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!((request.method(), request.uri().path()), (&method, path));
        let content_type =
            request.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        bodies
            .push((content_type, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() }));
        let body = kube::client::Body::from(serde_json::to_vec(&response).unwrap());
        respond.send_response(Response::builder().status(status).body(body).unwrap());
    }
    assert!(handle.next_request().await.is_none(), "unexpected request");
    bodies
}

const SECRET: &str = "/api/v1/namespaces/gingham-system/secrets/gingham-webhook-tls";
const CONFIGURATION: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/gingham-validating-webhook";

fn configuration(ca_bundle: Option<&str>) -> Value {
    let mut client_config =
        json!({"service": {"name": "gingham-operator-webhook", "namespace": "gingham-system", "path": "/validate"}});
    if let Some(bundle) = ca_bundle {
        client_config["caBundle"] = json!(bundle);
    }
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "gingham-validating-webhook"},
           "webhooks": [{"name": "validate.gingham.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                         "clientConfig": client_config}]})
}

fn config() -> WebhookConfig {
    WebhookConfig {
        addr: ([127, 0, 0, 1], 9443).into(),
        namespace: "gingham-system".into(),
        service: "gingham-operator-webhook".into(),
    }
}

#[tokio::test]
async fn a_first_start_creates_the_secret_and_patches_the_ca_bundle() {
    let (service, handle) = tower_test::mock::pair::<Request<kube::client::Body>, Response<kube::client::Body>>();
    let not_found =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
    let server = tokio::spawn(api_server(
        handle,
        vec![
            (http::Method::GET, SECRET, 404, not_found),
            (http::Method::POST, "/api/v1/namespaces/gingham-system/secrets", 201, json!({"metadata": {"name": "x"}})),
            (http::Method::GET, CONFIGURATION, 200, configuration(None)),
            (http::Method::PATCH, CONFIGURATION, 200, configuration(None)),
        ],
    ));
    let material = tls::ensure_certificate(&Client::new(service, "default"), &config()).await.unwrap();
    let bodies = server.await.unwrap();
    let secret = &bodies[1].1;
    assert_eq!(secret["metadata"]["name"], "gingham-webhook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["labels"]["app.kubernetes.io/managed-by"], "gingham-operator");
    let (content_type, patch) = &bodies[3];
    assert_eq!(content_type, "application/strategic-merge-patch+json");
    let bundle = ByteString(material.ca_cert.as_bytes().to_vec());
    assert_eq!(
        *patch,
        json!({"webhooks": [{"name": "validate.gingham.dev", "clientConfig": {"caBundle": serde_json::to_value(&bundle).unwrap()}}]})
    );
}

#[tokio::test]
async fn a_restart_reuses_the_secret_and_leaves_a_current_ca_bundle_alone() {
    let material =
        crate::certs::generate("gingham-webhook", tls::dns_names("gingham-operator-webhook", "gingham-system"))
            .unwrap();
    let encode = |text: &str| serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gingham-webhook-tls"},
                        "data": {"ca.crt": encode(&material.ca_cert), "tls.crt": encode(&material.cert), "tls.key": encode(&material.key)}});
    let bundle = encode(&material.ca_cert);
    let (service, handle) = tower_test::mock::pair::<Request<kube::client::Body>, Response<kube::client::Body>>();
    let server = tokio::spawn(api_server(
        handle,
        vec![
            (http::Method::GET, SECRET, 200, secret),
            (http::Method::GET, CONFIGURATION, 200, configuration(bundle.as_str())),
        ],
    ));
    let reused = tls::ensure_certificate(&Client::new(service, "default"), &config()).await.unwrap();
    server.await.unwrap();
    assert_eq!(reused, material);
}
