//! TokenReview authentication through the real gRPC service, against a mocked API server that
//! checks each request: the review's token and audience, and the pod looked up on API servers
//! that put no node into tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gingham_stream::wire::proto::{self, span_client::SpanClient};
use gingham_stream::{SpanService, serve_tcp};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tonic::Code;
use tower_test::mock::Handle;

use super::*;

const AUDIENCE: &str = "gingham-stream";
const AGENT: &str = "system:serviceaccount:gingham-system:gingham-node-agent";
const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

fn agents() -> AgentAccount {
    AgentAccount { namespace: "gingham-system".into(), name: "gingham-node-agent".into() }
}

/// A review's status: authenticated for `audiences` as `user`, with these claims.
fn accepted(user: &str, audiences: &[&str], extra: &[(&str, &str)]) -> Value {
    let extra: BTreeMap<&str, Vec<&str>> = extra.iter().map(|(key, value)| (*key, vec![*value])).collect();
    json!({"authenticated": true, "audiences": audiences, "user": {"username": user, "extra": extra}})
}

fn on_node(node: &str) -> Value {
    accepted(AGENT, &[AUDIENCE], &[(NODE_NAME, node), (POD_NAME, "agent-x")])
}

fn refused(error: &str) -> Value {
    json!({"authenticated": false, "error": error})
}

/// What the API server is asked, and how it answers.
enum Exchange {
    /// A TokenReview of `token` for the audience, answered with this status.
    Review { token: &'static str, status: Value },
    /// A request answered with an HTTP error.
    Failing { path: &'static str, code: u16 },
    /// A request answered with a connection error.
    Down,
    /// A GET of the agents' pod `name`, answered with `pod` (or 404).
    Pod { name: &'static str, pod: Option<Value> },
}

fn pod(uid: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-x", "namespace": "gingham-system", "uid": uid},
           "spec": {"nodeName": node, "containers": [{"name": "agent"}]}})
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder().status(status).body(Body::from(serde_json::to_vec(body).unwrap())).unwrap()
}

/// Answers `exchanges` in order, checking each request; then checks that no other request comes.
async fn api_server(mut handle: Handle<Request<Body>, Response<Body>>, exchanges: Vec<Exchange>) {
    for (index, exchange) in exchanges.into_iter().enumerate() {
        let (request, reply) = handle.next_request().await.unwrap_or_else(|| panic!("request {index} never came"));
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let body = request.into_body().collect_bytes().await.unwrap();
        match exchange {
            Exchange::Review { token, status } => {
                assert_eq!((method, path.as_str()), (Method::POST, REVIEWS), "request {index}");
                let review: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(review["spec"], json!({"token": token, "audiences": [AUDIENCE]}), "request {index}");
                let answer = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                    "spec": review["spec"], "status": status});
                reply.send_response(respond(201, &answer));
            }
            Exchange::Failing { path: expected, code } => {
                assert_eq!(path, expected, "request {index}");
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                    "reason": "Forbidden", "message": "tokenreviews is forbidden"});
                reply.send_response(respond(code, &status));
            }
            Exchange::Down => reply.send_error(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")),
            Exchange::Pod { name, pod } => {
                let expected = format!("/api/v1/namespaces/gingham-system/pods/{name}");
                assert_eq!((method, path), (Method::GET, expected), "request {index}");
                let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                       "reason": "NotFound", "message": "pods not found"});
                match pod {
                    Some(pod) => reply.send_response(respond(200, &pod)),
                    None => reply.send_response(respond(404, &not_found)),
                }
            }
        }
    }
    let extra = tokio::time::timeout(std::time::Duration::from_millis(100), handle.next_request()).await;
    assert!(extra.is_err(), "an unexpected request came");
}

/// Serves the stream with a TokenReviewer over the mocked API server, subscribes with each of
/// `subscriptions` (token, node) in turn, and returns each outcome.
async fn subscribe_all(
    exchanges: Vec<Exchange>,
    subscriptions: &[(Option<&str>, &str)],
) -> Vec<Result<(), (Code, String)>> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api = tokio::spawn(api_server(handle, exchanges));
    let reviewer = TokenReviewer::new(Client::new(service, "default"), AUDIENCE, agents());
    let (span, _publisher) = SpanService::<BTreeSet<String>>::new(4, Arc::new(reviewer), Duration::from_secs(60));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(span, listener, std::future::pending()));
    let mut client = SpanClient::connect(format!("http://{address}")).await.unwrap();
    let mut outcomes = Vec::new();
    for (token, node) in subscriptions {
        let mut request = tonic::Request::new(proto::SubscribeRequest {
            node: node.to_string(),
            revision: None,
            origin: None,
            held: None,
        });
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let outcome = client.subscribe(request).await;
        outcomes.push(outcome.map(|_| ()).map_err(|status| (status.code(), status.message().to_string())));
    }
    api.await.unwrap();
    outcomes
}

/// Asserts that `outcome` is the code `expected` with a message holding `fragment`.
fn assert_refused(outcome: &Result<(), (Code, String)>, expected: Code, fragment: &str, case: &str) {
    let Err((code, message)) = outcome else { panic!("{case}: accepted") };
    assert_eq!(*code, expected, "{case}: {message}");
    assert!(message.contains(fragment), "{case}: {fragment:?} in {message}");
}

/// Accepted, or refused with a code and a fragment of the message.
type Outcome = Result<(), (Code, &'static str)>;

#[tokio::test]
async fn an_agent_token_may_follow_its_own_node_only() {
    let review = |status| Exchange::Review { token: "tok", status };
    // (case, what the API server is asked and answers, the node subscribed to, the outcome)
    let cases: Vec<(&str, Vec<Exchange>, &str, Outcome)> = vec![
        ("own node", vec![review(on_node("n1"))], "n1", Ok(())),
        ("another node's span", vec![review(on_node("n1"))], "n2", Err((Code::PermissionDenied, "own span only"))),
        (
            "another ServiceAccount",
            vec![review(accepted("system:serviceaccount:default:intruder", &[AUDIENCE], &[(NODE_NAME, "n1")]))],
            "n1",
            Err((Code::PermissionDenied, "only the ServiceAccount gingham-system/gingham-node-agent")),
        ),
        (
            "an invalid token",
            vec![review(refused("token has expired"))],
            "n1",
            Err((Code::Unauthenticated, "token has expired")),
        ),
        (
            "a token for another audience",
            vec![review(accepted(AGENT, &["https://kubernetes.default.svc"], &[(NODE_NAME, "n1")]))],
            "n1",
            Err((Code::Unauthenticated, "audience gingham-stream")),
        ),
        (
            "a Secret-based token",
            vec![review(accepted(AGENT, &[AUDIENCE], &[]))],
            "n1",
            Err((Code::Unauthenticated, "projected ServiceAccount token")),
        ),
        (
            "an older API server: the pod's node",
            vec![
                review(accepted(AGENT, &[AUDIENCE], &[(POD_NAME, "agent-x"), (POD_UID, "u1")])),
                Exchange::Pod { name: "agent-x", pod: Some(pod("u1", "n1")) },
            ],
            "n1",
            Ok(()),
        ),
        (
            "an older API server: a replaced pod",
            vec![
                review(accepted(AGENT, &[AUDIENCE], &[(POD_NAME, "agent-x"), (POD_UID, "u1")])),
                Exchange::Pod { name: "agent-x", pod: Some(pod("u2", "n1")) },
            ],
            "n1",
            Err((Code::Unauthenticated, "was replaced")),
        ),
        (
            "an older API server: a deleted pod",
            vec![
                review(accepted(AGENT, &[AUDIENCE], &[(POD_NAME, "agent-x")])),
                Exchange::Pod { name: "agent-x", pod: None },
            ],
            "n1",
            Err((Code::Unauthenticated, "no longer exists")),
        ),
        ("the API server is down", vec![Exchange::Down], "n1", Err((Code::Unavailable, "cannot review the token"))),
        (
            "the operator may not review tokens",
            vec![Exchange::Failing { path: REVIEWS, code: 403 }],
            "n1",
            Err((Code::Unavailable, "`create` on tokenreviews")),
        ),
    ];
    for (case, exchanges, node, expected) in cases {
        let outcome = subscribe_all(exchanges, &[(Some("tok"), node)]).await.remove(0);
        match expected {
            Ok(()) => assert_eq!(outcome, Ok(()), "{case}"),
            Err((code, fragment)) => assert_refused(&outcome, code, fragment, case),
        }
    }
}

#[tokio::test]
async fn no_token_is_refused_without_asking_the_api_server() {
    let outcomes = subscribe_all(vec![], &[(None, "n1")]).await;
    assert_refused(&outcomes[0], Code::Unauthenticated, "authorization: Bearer", "no token");
}

#[tokio::test]
async fn an_accepted_token_is_remembered_and_a_refusal_is_not() {
    let exchanges = vec![
        Exchange::Review { token: "good", status: on_node("n1") },
        Exchange::Review { token: "bad", status: refused("invalid signature") },
        Exchange::Down,
        Exchange::Review { token: "bad", status: refused("invalid signature") },
    ];
    let subscriptions =
        [(Some("good"), "n1"), (Some("good"), "n1"), (Some("bad"), "n1"), (Some("bad"), "n1"), (Some("bad"), "n1")];
    let outcomes = subscribe_all(exchanges, &subscriptions).await;
    assert_eq!(outcomes[..2], [Ok(()), Ok(())], "the second subscription asks nothing");
    assert_refused(&outcomes[2], Code::Unauthenticated, "invalid signature", "a bad token");
    assert_refused(&outcomes[3], Code::Unavailable, "cannot review", "reviewed again, API server down");
    assert_refused(&outcomes[4], Code::Unauthenticated, "invalid signature", "reviewed again");
}

#[test]
fn remembered_tokens_are_bounded_and_expire() {
    let start = Instant::now();
    let mut accepted = Accepted { capacity: 3, entries: HashMap::new() };
    for (index, token) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let until = start + Duration::from_secs(10 + index as u64);
        accepted.insert(token, format!("n-{token}"), start, until);
    }
    assert_eq!(accepted.entries.len(), 3);
    assert_eq!(accepted.get("a", start), None, "the soonest to expire made room");
    assert_eq!(accepted.get("d", start).as_deref(), Some("n-d"));
    assert_eq!(accepted.get("b", start + Duration::from_secs(11)), None, "expired");
    accepted.insert("e", "n-e".into(), start + Duration::from_secs(12), start + Duration::from_secs(40));
    assert_eq!(accepted.entries.len(), 2, "expired tokens go first: c and b expired");
}
