//! Who writes. Every replica watches, computes and serves the agents' stream; only the leader
//! writes to the datastore, so two replicas never assign the same block. On Kubernetes the leader
//! holds a Lease in the operator's namespace (kube-lease-manager); on the file datastore, an
//! exclusive lock on a file in the directory ([`file`]). Either way a replica learns whether it
//! leads as a [`Leading`] that changes over time.

pub mod file;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether this replica leads, as that changes.
pub type Leading = watch::Receiver<bool>;

/// The Lease's name.
pub const LEASE_NAME: &str = "gingham-operator-leader";
/// How long a lease lasts without renewal, in seconds.
const LEASE_SECONDS: u64 = 15;
/// How long before expiry the holder renews, in seconds.
const GRACE_SECONDS: u64 = 5;

/// Leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or created.
    #[error("cannot use the Lease {LEASE_NAME}: {0} (check the operator's RBAC for leases in its namespace)")]
    Lease(#[source] LeaseManagerError),
    /// The file datastore's lock file could not be opened.
    #[error("cannot open the leader lock {path}: {source} (the operator needs write access to its --dir)")]
    LockFile {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl LeaderError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Lease(_) => "lease",
            Self::LockFile { .. } => "leader_lock",
        }
    }
}

/// A replica that leads from the start and for good: the only writer there is (tests).
pub fn always() -> Leading {
    let (sender, leading) = watch::channel(true);
    // The value stays; a closed channel only means it never changes.
    drop(sender);
    leading
}

/// This replica's identity when none is given: the host name (the pod name in a cluster).
pub fn default_identity() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "gingham-operator".into())
}

/// This replica's part in the election for the Lease, renewed in the background until released.
pub struct Leadership {
    leading: Leading,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Starts contending for the Lease; [`Leadership::leading`] says whether this replica holds
    /// it. A replica that loses it contends again.
    pub async fn start(client: Client, namespace: &str, identity: &str) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager(crate::datastore::objects::MANAGER)
            .build()
            .await
            .map_err(LeaderError::Lease)?;
        let (leading, task) = manager.watch().await;
        tracing::info!(identity, lease = LEASE_NAME, "contending for the leadership");
        Ok(Self { leading, task })
    }

    /// Whether this replica holds the Lease, as that changes.
    pub fn leading(&self) -> Leading {
        self.leading.clone()
    }

    /// Releases the Lease, if held, so that another replica takes over at once. Every
    /// [`Leading`] handed out must be dropped first.
    pub async fn release(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("left the election"),
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
        let leadership = Leadership::start(client, "gingham-system", "operator-0").await.unwrap();
        let mut leading = leadership.leading();
        tokio::time::timeout(std::time::Duration::from_secs(10), leading.wait_for(|leading| *leading))
            .await
            .unwrap()
            .unwrap();
        drop(leading);
        let held = lease.lock().unwrap().clone().unwrap();
        assert_eq!(held["spec"]["holderIdentity"], "operator-0");
        assert_eq!(held["spec"]["leaseDurationSeconds"], 15);

        leadership.release().await;
        let released = lease.lock().unwrap().clone().unwrap();
        assert!(released["spec"].get("holderIdentity").is_none(), "{released}");
    }

    #[tokio::test]
    async fn a_replica_does_not_lead_while_another_holds_the_lease_and_leaves_it_alone() {
        let lease = Arc::new(Mutex::new(Some(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": "gingham-system", "resourceVersion": "1"},
            "spec": {"holderIdentity": "operator-1", "leaseDurationSeconds": 3600,
                     "acquireTime": "2099-01-01T00:00:00.000000Z", "renewTime": "2099-01-01T00:00:00.000000Z"},
        }))));
        let state = Arc::clone(&lease);
        let client = Client::new(tower::service_fn(move |r| lease_api(r, Arc::clone(&state))), "default");
        let leadership = Leadership::start(client, "gingham-system", "operator-0").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!*leadership.leading().borrow(), "operator-1 holds the Lease");
        leadership.release().await;
        assert_eq!(lease.lock().unwrap().as_ref().unwrap()["spec"]["holderIdentity"], "operator-1");
    }
}
