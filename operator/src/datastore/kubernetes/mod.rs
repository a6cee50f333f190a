//! The Kubernetes datastore: reflectors feed a first snapshot and then change events, writes are
//! server-side applies with the field manager `gingham-operator`, problems become Events.

pub mod apply;
pub mod events;
pub mod plan;
pub mod watch;
pub mod watched;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use tokio::sync::mpsc::UnboundedReceiver;
use watched::{Message, ObjectId, Rejected};

use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::datastore::{Datastore, DatastoreError, Observation, WriteOp, WriteSummary};

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
    messages: UnboundedReceiver<Message>,
    writer: apply::Writer,
    events: events::Events,
    ready: bool,
    rejected: BTreeMap<ObjectId, Rejected>,
}

impl KubeDatastore {
    /// Starts the watches in `namespace` (the operator's) and cluster-wide.
    pub fn start(client: Client, namespace: &str, identity: &str) -> Self {
        let (sender, messages) = tokio::sync::mpsc::unbounded_channel();
        let stores = watch::Stores::start(&client, namespace, &sender);
        Self {
            stores,
            messages,
            writer: apply::Writer::new(client.clone(), apply::Backoff::default()),
            events: events::Events::new(client, identity),
            ready: false,
            rejected: BTreeMap::new(),
        }
    }

    fn note_rejected(&mut self, rejected: Rejected) {
        if self.rejected.get(&rejected.id()) != Some(&rejected) {
            tracing::warn!(
                kind = rejected.kind,
                namespace = rejected.namespace,
                name = rejected.name,
                problem = rejected.message,
                "skipping an invalid object"
            );
        }
        self.rejected.insert(rejected.id(), rejected);
    }

    /// Everything in the caches; forgets queued events (the snapshot holds them).
    fn snapshot(&mut self) -> Observation {
        while self.messages.try_recv().is_ok() {}
        let (snapshot, rejected) = self.stores.snapshot();
        let known = std::mem::take(&mut self.rejected);
        for skipped in rejected {
            if known.get(&skipped.id()) == Some(&skipped) {
                self.rejected.insert(skipped.id(), skipped);
            } else {
                self.note_rejected(skipped);
            }
        }
        Observation::Snapshot(Box::new(snapshot))
    }
}

impl Datastore for KubeDatastore {
    async fn next(&mut self) -> Result<Observation, DatastoreError> {
        if !self.ready {
            self.stores.wait_until_ready().await?;
            self.ready = true;
            tokio::time::sleep(DEBOUNCE).await;
            return Ok(self.snapshot());
        }
        let first = self.messages.recv().await.ok_or(KubeError::WatchStopped)?;
        tokio::time::sleep(DEBOUNCE).await;
        let mut batch = vec![first];
        while let Ok(message) = self.messages.try_recv() {
            batch.push(message);
        }
        let mut events = Vec::new();
        for message in batch {
            match message {
                Message::Event(event) => events.push(*event),
                Message::Rejected(rejected) => self.note_rejected(rejected),
                Message::Accepted(id) => {
                    self.rejected.remove(&id);
                }
                // A watch listed again (after an outage, say): deletions may have been missed.
                Message::Resync => return Ok(self.snapshot()),
            }
        }
        Ok(Observation::Events(events))
    }

    async fn apply(
        &mut self,
        desired: &DesiredState,
        changes: Option<&Changes>,
    ) -> Result<WriteSummary, DatastoreError> {
        let rejected: Vec<Rejected> = self.rejected.values().cloned().collect();
        self.events.publish(&desired.problems, &rejected).await;
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let writes = plan::plan(desired, &self.stores.observed(changes), changes, &now);
        let mut summary = execute(&self.writer, &writes).await;
        summary.0.managed = [
            ("NodeNetwork", desired.node_networks.len() as u64),
            ("IPAMBlock", desired.blocks.len() as u64),
            ("NetworkPolicy", desired.translated_policies.len() as u64),
            ("GlobalNetworkPolicy", desired.translated_global_policies.len() as u64),
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
