//! Leader election on a Lease in the operator's namespace (kube-lease-manager): only the leader
//! computes and writes, so two replicas never assign the same block.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Lease's name.
pub const LEASE_NAME: &str = "gingham-operator-leader";
/// How long a lease lasts without renewal, in seconds.
const LEASE_SECONDS: u64 = 15;
/// How long before expiry the holder renews, in seconds.
const GRACE_SECONDS: u64 = 5;

/// Leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or created.
    #[error("cannot use the Lease {LEASE_NAME}: {0} (check the operator's RBAC for leases in its namespace)")]
    Lease(#[source] LeaseManagerError),
    /// The election task stopped before this replica led.
    #[error("leader election stopped unexpectedly")]
    Stopped,
    /// Another replica took over; this one stops so that it never writes as a follower.
    #[error("lost the leadership: another replica leads now")]
    Lost,
}

impl LeaderError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Lease(_) => "lease",
            Self::Stopped => "election_stopped",
            Self::Lost => "leadership_lost",
        }
    }
}

/// This replica's identity when none is given: the host name (the pod name in a cluster).
pub fn default_identity() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "gingham-operator".into())
}

/// Held leadership: renewed in the background until released.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Waits until this replica leads (`Some`) or `shutdown` completes first (`None`).
    pub async fn acquire(
        client: Client,
        namespace: &str,
        identity: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<Self>, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager(crate::datastore::objects::MANAGER)
            .build()
            .await
            .map_err(LeaderError::Lease)?;
        let (mut leading, task) = manager.watch().await;
        tracing::info!(identity, lease = LEASE_NAME, "waiting for the leadership");
        let led = tokio::select! {
            () = shutdown => None,
            result = leading.wait_for(|leading| *leading) => Some(result.is_ok()),
        };
        match led {
            None => {
                drop(leading);
                let _ = task.await;
                Ok(None)
            }
            Some(false) => Err(LeaderError::Stopped),
            Some(true) => {
                tracing::info!(identity, "leading");
                Ok(Some(Self { leading, task }))
            }
        }
    }

    /// Completes when the leadership is lost.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Releases the Lease so that another replica takes over at once.
    pub async fn release(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the leadership"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the Lease; it expires by itself"),
            Err(error) => tracing::warn!(%error, "the election task failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/gingham-system/leases/gingham-operator-leader";

    /// A one-Lease API server: create, get and merge-patch its spec (null removes a field).
    async fn lease_api(request: Request<Body>, lease: Arc<Mutex<Option<Value>>>) -> Result<Response<Body>, Infallible> {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        let mut stored = lease.lock().unwrap();
        let response = match (method, path.as_str()) {
            (Method::GET, PATH) => stored.clone(),
            (Method::POST, "/apis/coordination.k8s.io/v1/namespaces/gingham-system/leases") => {
                let mut created = body;
                created["metadata"]["resourceVersion"] = json!("1");
                *stored = Some(created);
                stored.clone()
            }
            (Method::PATCH, PATH) => {
                if let Some(current) = stored.as_mut() {
                    if !current["spec"].is_object() {
                        current["spec"] = json!({});
                    }
                    let spec = current["spec"].as_object_mut().unwrap();
                    for (field, value) in body["spec"].as_object().unwrap() {
                        if value.is_null() {
                            spec.remove(field);
                        } else {
                            spec.insert(field.clone(), value.clone());
                        }
                    }
                }
                stored.clone()
            }
            other => panic!("unexpected request {other:?}"),
        };
        let (status, response) = match response {
            Some(lease) => (200, lease),
            None => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        };
        Ok(Response::builder().status(status).body(Body::from(serde_json::to_vec(&response).unwrap())).unwrap())
    }

    #[tokio::test]
    async fn the_operator_takes_the_lease_in_its_namespace_and_releases_it() {
        let lease: Arc<Mutex<Option<Value>>> = Arc::default();
        let state = Arc::clone(&lease);
        let client = Client::new(tower::service_fn(move |r| lease_api(r, Arc::clone(&state))), "default");
        let acquired = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            Leadership::acquire(client, "gingham-system", "operator-0", std::future::pending()),
        )
        .await
        .unwrap()
        .unwrap();
        let leadership = acquired.expect("no shutdown was asked for");
        let held = lease.lock().unwrap().clone().unwrap();
        assert_eq!(held["spec"]["holderIdentity"], "operator-0");
        assert_eq!(held["spec"]["leaseDurationSeconds"], 15);

        leadership.release().await;
        let released = lease.lock().unwrap().clone().unwrap();
        assert!(released["spec"].get("holderIdentity").is_none(), "{released}");
    }

    #[tokio::test]
    async fn shutdown_while_waiting_gives_up_without_leading() {
        let lease = Arc::new(Mutex::new(Some(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": "gingham-system", "resourceVersion": "1"},
            "spec": {"holderIdentity": "operator-1", "leaseDurationSeconds": 3600,
                     "acquireTime": "2099-01-01T00:00:00.000000Z", "renewTime": "2099-01-01T00:00:00.000000Z"},
        }))));
        let state = Arc::clone(&lease);
        let client = Client::new(tower::service_fn(move |r| lease_api(r, Arc::clone(&state))), "default");
        let shutdown = tokio::time::sleep(std::time::Duration::from_millis(300));
        let outcome = Leadership::acquire(client, "gingham-system", "operator-0", shutdown).await.unwrap();
        assert!(outcome.is_none());
        assert_eq!(lease.lock().unwrap().as_ref().unwrap()["spec"]["holderIdentity"], "operator-1");
    }
}
