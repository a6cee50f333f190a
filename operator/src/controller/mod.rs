//! The run loop: fetch a snapshot from the datastore, compute the desired state with the pure core,
//! apply it through the datastore; count and time every round. A failed round is retried with
//! backoff even when nothing changes; the loop ends only at shutdown.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::core::{self, ClusterSnapshot, ObjectProblem, OperatorSettings};
use crate::datastore::Datastore;
use crate::health::Readiness;
use crate::metrics::Metrics;

/// The controller label of the whole-cluster reconcile in metrics.
pub const CONTROLLER: &str = "cluster";

/// The first retry delay after a failed round; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Runs reconcile rounds until `shutdown` completes.
pub async fn run<D: Datastore>(
    datastore: &mut D,
    settings: &OperatorSettings,
    metrics: &Metrics,
    readiness: &Readiness,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last: Option<ClusterSnapshot> = None;
    let mut retry: Option<Duration> = None;
    let mut problems: BTreeSet<ObjectProblem> = BTreeSet::new();
    loop {
        let next = async {
            match (retry, &last) {
                (Some(delay), Some(previous)) => match tokio::time::timeout(delay, datastore.next_snapshot()).await {
                    Ok(result) => result.map_err(|e| (e.label(), e.to_string())),
                    Err(_) => Ok(previous.clone()),
                },
                _ => datastore.next_snapshot().await.map_err(|e| (e.label(), e.to_string())),
            }
        };
        let snapshot = tokio::select! {
            biased;
            () = &mut shutdown => return,
            snapshot = next => snapshot,
        };
        let started = Instant::now();
        let outcome = match snapshot {
            Ok(snapshot) => {
                let desired = core::compute(&snapshot, settings);
                log_problems(&mut problems, &desired.problems);
                last = Some(snapshot);
                match datastore.apply(&desired).await {
                    Ok(summary) => {
                        metrics.wrote(&summary);
                        tracing::info!(writes = summary.total(), "reconciled");
                        Ok(())
                    }
                    Err(e) => Err((e.label(), e.to_string())),
                }
            }
            Err(e) => Err(e),
        };
        let error = outcome.as_ref().err().map(|(label, _)| *label);
        metrics.reconciled(CONTROLLER, started.elapsed().as_secs_f64(), error);
        match outcome {
            Ok(()) => {
                readiness.set(true);
                retry = None;
            }
            Err((_, message)) => {
                let delay = retry.map_or(FIRST_RETRY, |d| (d * 2).min(MAX_RETRY));
                tracing::warn!(error = %message, ?delay, "reconcile failed; retrying");
                if last.is_none() {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                retry = Some(delay);
            }
        }
    }
}

/// Logs problems that are new since the last round.
fn log_problems(known: &mut BTreeSet<ObjectProblem>, current: &[ObjectProblem]) {
    let current: BTreeSet<ObjectProblem> = current.iter().cloned().collect();
    for problem in current.difference(known) {
        tracing::warn!(
            kind = problem.kind,
            namespace = problem.namespace,
            name = problem.name,
            reason = problem.reason,
            message = problem.message,
            "object problem"
        );
    }
    *known = current;
}

#[cfg(test)]
mod tests;
