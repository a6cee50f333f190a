//! TokenReview authentication (the Kubernetes datastore). Each agent presents its projected
//! ServiceAccount token, made for the stream's audience. The operator asks the API server to review
//! it (`authentication.k8s.io/v1` TokenReview, with the audience set) and accepts it only when:
//! - the token is valid for the audience;
//! - it belongs to the agents' ServiceAccount (the DaemonSet's, in the operator's namespace);
//! - it says which node it was issued on. That is the `authentication.kubernetes.io/node-name`
//!   claim, which the API server puts into bound tokens since Kubernetes 1.30. On older API
//!   servers the token's pod (`pod-name` and `pod-uid`) is looked up to the node it runs on.
//!
//! Accepted tokens are remembered for a short while, and a bounded number of them, so that a
//! reconnecting agent costs no review. Refusals are never remembered. A review that cannot be made
//! (the API server is down or slow) answers `Unavailable`, and the agent retries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gingham_stream::{AuthFuture, Authenticator, Denied};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::Semaphore;

/// The claim that names the node a bound token was issued on (Kubernetes 1.30+).
pub const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// The claim that names the pod a bound token was issued for.
pub const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The claim that holds that pod's UID.
pub const POD_UID: &str = "authentication.kubernetes.io/pod-uid";

/// How long an accepted token is remembered.
const ACCEPTED_FOR: Duration = Duration::from_secs(30);
/// At most this many accepted tokens are remembered.
const REMEMBERED: usize = 10_000;
/// How long a review, or a pod lookup, may take.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many reviews at once, so that every agent reconnecting at once does not flood the
/// API server.
const CONCURRENT_REVIEWS: usize = 16;

/// The ServiceAccount every agent's token must belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentAccount {
    /// Its namespace (the operator's).
    pub namespace: String,
    /// Its name (the DaemonSet's).
    pub name: String,
}

impl AgentAccount {
    fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// What a reviewed token says about where it was issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// On this node.
    Node(String),
    /// For this pod of the agents' namespace (an API server older than 1.30).
    Pod {
        /// The pod's name.
        name: String,
        /// The pod's UID, when the token carries it.
        uid: Option<String>,
    },
}

/// Judges a review: the token must be valid for `audience` and belong to `agents`, and say where it
/// was issued.
pub fn judge(status: &TokenReviewStatus, audience: &str, agents: &AgentAccount) -> Result<Binding, Denied> {
    if status.authenticated != Some(true) {
        let why = status.error.as_deref().unwrap_or("no reason given");
        return Err(Denied::Unauthenticated(format!("the API server did not accept the token: {why}")));
    }
    if !status.audiences.iter().flatten().any(|a| a == audience) {
        return Err(Denied::Unauthenticated(format!(
            "the token is not meant for the audience {audience}: mount a projected ServiceAccount token with audience {audience}"
        )));
    }
    let user = status.user.as_ref();
    let username = user.and_then(|u| u.username.as_deref()).unwrap_or_default();
    if username != agents.username() {
        return Err(Denied::Forbidden(format!(
            "the token is {username:?}'s; only the ServiceAccount {}/{} may follow the stream",
            agents.namespace, agents.name
        )));
    }
    let claim = |key: &str| {
        let values = user.and_then(|u| u.extra.as_ref()).and_then(|extra| extra.get(key));
        values.and_then(|values| values.first()).filter(|value| !value.is_empty()).cloned()
    };
    match (claim(NODE_NAME), claim(POD_NAME)) {
        (Some(node), _) => Ok(Binding::Node(node)),
        (None, Some(name)) => Ok(Binding::Pod { name, uid: claim(POD_UID) }),
        (None, None) => Err(Denied::Unauthenticated(
            "the token is bound to no pod: use a projected ServiceAccount token, not a Secret-based one".into(),
        )),
    }
}

/// The node the token's pod runs on, from the pod as the API server has it now.
pub fn node_of_pod(pod: Option<&Pod>, namespace: &str, name: &str, uid: Option<&str>) -> Result<String, Denied> {
    let Some(pod) = pod else {
        return Err(Denied::Unauthenticated(format!("the token's pod {namespace}/{name} no longer exists")));
    };
    if uid.is_some() && pod.metadata.uid.as_deref() != uid {
        return Err(Denied::Unauthenticated(format!(
            "the token's pod {namespace}/{name} was replaced since the token was issued"
        )));
    }
    let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone()).filter(|node| !node.is_empty());
    node.ok_or_else(|| Denied::Unauthenticated(format!("the token's pod {namespace}/{name} runs on no node")))
}

/// Accepted tokens, each until it expires, at most `capacity` of them.
struct Accepted {
    capacity: usize,
    entries: HashMap<String, (String, Instant)>,
}

impl Accepted {
    fn get(&self, token: &str, now: Instant) -> Option<String> {
        self.entries.get(token).filter(|(_, until)| *until > now).map(|(node, _)| node.clone())
    }

    /// Remembers `token` until `until`, dropping expired tokens, then the soonest to expire, when full.
    fn insert(&mut self, token: &str, node: String, now: Instant, until: Instant) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, expires)| *expires > now);
        }
        while self.entries.len() >= self.capacity {
            let soonest = self.entries.iter().min_by_key(|(_, (_, expires))| *expires).map(|(key, _)| key.clone());
            let Some(soonest) = soonest else { break };
            self.entries.remove(&soonest);
        }
        self.entries.insert(token.to_string(), (node, until));
    }
}

/// Authenticates agents with TokenReview (see the module's documentation).
pub struct TokenReviewer {
    client: Client,
    audience: String,
    agents: AgentAccount,
    accepted: Mutex<Accepted>,
    reviews: Semaphore,
}

impl TokenReviewer {
    /// Reviews tokens through `client`, for `audience`, accepting those of `agents`.
    pub fn new(client: Client, audience: impl Into<String>, agents: AgentAccount) -> Self {
        Self {
            client,
            audience: audience.into(),
            agents,
            accepted: Mutex::new(Accepted { capacity: REMEMBERED, entries: HashMap::new() }),
            reviews: Semaphore::new(CONCURRENT_REVIEWS),
        }
    }

    async fn authenticate(&self, token: &str) -> Result<String, Denied> {
        if let Some(node) = self.lock().get(token, Instant::now()) {
            return Ok(node);
        }
        let outcome = self.review_and_bind(token).await;
        match &outcome {
            Ok(node) => {
                let now = Instant::now();
                self.lock().insert(token, node.clone(), now, now + ACCEPTED_FOR);
            }
            Err(Denied::Unavailable(reason)) => tracing::warn!(reason, "cannot review a stream token"),
            Err(denied) => tracing::info!(%denied, "refused a stream token"),
        }
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Accepted> {
        self.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn review_and_bind(&self, token: &str) -> Result<String, Denied> {
        let _permit =
            self.reviews.acquire().await.map_err(|_| Denied::Unavailable("the operator is stopping".into()))?;
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), audiences: Some(vec![self.audience.clone()]) },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = within("review the token", api.create(&PostParams::default(), &review)).await?;
        let status = reviewed.status.unwrap_or_default();
        match judge(&status, &self.audience, &self.agents)? {
            Binding::Node(node) => Ok(node),
            Binding::Pod { name, uid } => {
                let namespace = &self.agents.namespace;
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let pod = within("look up the token's pod", pods.get_opt(&name)).await?;
                node_of_pod(pod.as_ref(), namespace, &name, uid.as_deref())
            }
        }
    }
}

/// Runs one request to the API server; a failure or a timeout is `Unavailable` (the agent retries).
async fn within<T>(
    action: &str,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Denied> {
    match tokio::time::timeout(REVIEW_TIMEOUT, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(kube::Error::Api(status))) if status.code == 403 => Err(Denied::Unavailable(format!(
            "the operator may not {action}: {}; grant it `create` on tokenreviews.authentication.k8s.io and `get` on pods (config/rbac/operator.yaml)",
            status.message
        ))),
        Ok(Err(error)) => Err(Denied::Unavailable(format!("cannot {action}: {error}"))),
        Err(_) => Err(Denied::Unavailable(format!(
            "cannot {action}: the API server did not answer within {} s",
            REVIEW_TIMEOUT.as_secs()
        ))),
    }
}

impl Authenticator for TokenReviewer {
    fn node_of<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(self.authenticate(token))
    }
}

#[cfg(test)]
#[path = "token_review_tests.rs"]
mod tests;
