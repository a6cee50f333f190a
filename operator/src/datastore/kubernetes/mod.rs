//! The Kubernetes datastore: reflectors feed snapshots, writes are server-side applies with the
//! field manager `gingham-operator`, problems become Events.

pub mod apply;
pub mod events;
pub mod plan;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use tokio::sync::Notify;

use crate::core::{ClusterSnapshot, DesiredState};
use crate::datastore::{Datastore, DatastoreError, WriteOp, WriteSummary};

/// Changes arriving within this window are handled together.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The Kubernetes datastore failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A write failed for good (after retries, or at once when retrying cannot help).
    #[error("cannot write {kind} {name} after {attempts} attempt(s): {source}")]
    Write {
        /// The kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: Box<kube::Error>,
    },
    /// A precondition failed: another writer changed the object since it was read. The next round
    /// reads it again.
    #[error("{kind} {name} changed since it was read (another writer?); recomputing from a fresh read")]
    Conflict {
        /// The kind.
        kind: &'static str,
        /// The object's name.
        name: String,
    },
    /// A reflector's writer went away: the watches stopped.
    #[error("the watches stopped before their first list completed")]
    WatchStopped,
}

impl KubeError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Write { .. } => "write",
            Self::Conflict { .. } => "conflict",
            Self::WatchStopped => "watch_stopped",
        }
    }
}

/// The API server as the operator's datastore.
pub struct KubeDatastore {
    stores: watch::Stores,
    changes: Arc<Notify>,
    writer: apply::Writer,
    events: events::Events,
    ready: bool,
    rejected: Vec<watch::Rejected>,
}

impl KubeDatastore {
    /// Starts the watches in `namespace` (the operator's) and cluster-wide.
    pub fn start(client: Client, namespace: &str, identity: &str) -> Self {
        let changes = Arc::new(Notify::new());
        let stores = watch::Stores::start(&client, namespace, &changes);
        Self {
            stores,
            changes,
            writer: apply::Writer::new(client.clone(), apply::Backoff::default()),
            events: events::Events::new(client, identity),
            ready: false,
            rejected: Vec::new(),
        }
    }
}

impl Datastore for KubeDatastore {
    async fn next_snapshot(&mut self) -> Result<ClusterSnapshot, DatastoreError> {
        if self.ready {
            self.changes.notified().await;
        } else {
            self.stores.wait_until_ready().await?;
            self.ready = true;
        }
        tokio::time::sleep(DEBOUNCE).await;
        let (snapshot, rejected) = self.stores.snapshot();
        for skipped in rejected.iter().filter(|r| !self.rejected.contains(r)) {
            tracing::warn!(
                kind = skipped.kind,
                namespace = skipped.namespace,
                name = skipped.name,
                problem = skipped.message,
                "skipping an invalid object"
            );
        }
        self.rejected = rejected;
        Ok(snapshot)
    }

    async fn apply(&mut self, desired: &DesiredState) -> Result<WriteSummary, DatastoreError> {
        self.events.publish(&desired.problems, &self.rejected).await;
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let writes = plan::plan(desired, &self.stores.observed(), &now);
        let mut summary = execute(&self.writer, &writes).await;
        summary.0.managed = [
            ("NodeNetwork", desired.node_networks.len() as u64),
            ("IPAMBlock", desired.blocks.len() as u64),
            ("NetworkPolicy", desired.translated_policies.len() as u64),
            ("DaemonSet", u64::from(desired.agent_daemon_set.is_some())),
        ]
        .into_iter()
        .collect();
        match summary.1 {
            Some(error) => Err(error.into()),
            None => Ok(summary.0),
        }
    }
}

/// Makes every write, counting what succeeded; returns the first failure, if any, after trying
/// all of them (one object's failure does not hold back the others).
pub async fn execute(writer: &apply::Writer, writes: &[plan::Write]) -> (WriteSummary, Option<KubeError>) {
    let mut summary = WriteSummary::default();
    let mut first_error = None;
    for write in writes {
        match writer.execute(write).await {
            Ok(()) => {
                let op = if matches!(write, plan::Write::Delete { .. }) { WriteOp::Delete } else { WriteOp::Apply };
                summary.count(write.target().kind, op);
            }
            Err(error) => {
                tracing::warn!(%error, "write failed");
                first_error.get_or_insert(error);
            }
        }
    }
    (summary, first_error)
}
