//! The run loop: observe through the datastore, update the core's incremental engine, publish the
//! round's changes to the agents' stream and, while this replica leads, apply the desired state
//! through the datastore; count and time every round. A failed round is retried with backoff even
//! when nothing changes; the loop ends only at shutdown.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::core::engine::Engine;
use crate::core::{ObjectProblem, OperatorSettings};
use crate::datastore::{Datastore, Observation};
use crate::health::Readiness;
use crate::leader::Leading;
use crate::metrics::Metrics;
use crate::stream::StreamFeed;

/// The controller label of the whole-cluster reconcile in metrics.
pub const CONTROLLER: &str = "cluster";

/// The first retry delay after a failed round; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What woke the loop.
enum Wake<O> {
    Shutdown,
    /// The datastore's next observation.
    Observed(O),
    /// Leadership may have changed (`false`: it never will again).
    Leadership(bool),
}

/// Completes when `leading` says this replica no longer leads; never, when that cannot change.
async fn lost(leading: &mut Leading) {
    if leading.wait_for(|leads| !*leads).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs reconcile rounds until `shutdown` completes.
///
/// A snapshot rebuilds the core's incremental engine; events update it, and only the objects they
/// change are compared and written. After a failed apply, the next round compares everything.
/// With a `stream`, every round's changes are also published to the agents' stream. Every replica
/// computes and serves the stream; only while `leading` says so does it write, comparing
/// everything on the round it starts to lead. A write under way when the leadership is lost is
/// abandoned.
pub async fn run<D: Datastore>(
    datastore: &mut D,
    settings: &OperatorSettings,
    metrics: &Metrics,
    readiness: &Readiness,
    mut stream: Option<&mut StreamFeed>,
    mut leading: Leading,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut engine: Option<Engine> = None;
    let mut retry: Option<Duration> = None;
    let mut compare_all = true;
    let mut reloaded = true;
    let mut problems: BTreeSet<ObjectProblem> = BTreeSet::new();
    let mut leads = *leading.borrow_and_update();
    let mut elections = true;
    if !leads {
        tracing::info!("not leading: computing and serving the stream, writing nothing");
    }
    loop {
        let next = async {
            match retry {
                // Nothing new within the delay: retry with what is known.
                Some(delay) => {
                    tokio::time::timeout(delay, datastore.next()).await.unwrap_or(Ok(Observation::Events(Vec::new())))
                }
                None => datastore.next().await,
            }
        };
        let wake = tokio::select! {
            biased;
            () = &mut shutdown => Wake::Shutdown,
            changed = leading.changed(), if elections => Wake::Leadership(changed.is_ok()),
            observation = next => Wake::Observed(observation),
        };
        let observation = match wake {
            Wake::Shutdown => return,
            Wake::Observed(observation) => observation,
            Wake::Leadership(false) => {
                elections = false;
                continue;
            }
            Wake::Leadership(true) => {
                let now = *leading.borrow_and_update();
                if now == leads {
                    continue;
                }
                leads = now;
                if !leads {
                    tracing::info!("no longer leading: computing and serving the stream, writing nothing");
                    continue;
                }
                tracing::info!("leading: writing the desired state, compared in full");
                compare_all = true;
                Ok(Observation::Events(Vec::new()))
            }
        };
        let started = Instant::now();
        let outcome = match observation {
            Ok(Observation::Snapshot(snapshot)) => {
                // The old engine goes first, and the snapshot is consumed as the new one loads it,
                // so no two copies of the cluster are held at once.
                drop(engine.take());
                engine = Some(Engine::load(*snapshot, settings.clone()));
                compare_all = true;
                reloaded = true;
                Ok(())
            }
            Ok(Observation::Events(events)) => {
                if let Some(engine) = engine.as_mut() {
                    events.into_iter().for_each(|event| engine.apply(event));
                }
                Ok(())
            }
            Err(e) => Err((e.label(), e.to_string())),
        };
        let observe_failed = outcome.is_err();
        let outcome = match (outcome, engine.as_mut()) {
            (Ok(()), Some(engine)) => {
                let changes = engine.take_changes();
                let desired = engine.desired();
                log_problems(&mut problems, &desired.problems);
                if let Some(feed) = stream.as_deref_mut() {
                    feed.observe(desired, &changes, std::mem::take(&mut reloaded));
                }
                let written = if leads {
                    tokio::select! {
                        written = datastore.apply(desired, (!compare_all).then_some(&changes)) => Some(written),
                        () = lost(&mut leading) => None,
                    }
                } else {
                    Some(Ok(crate::datastore::WriteSummary::default()))
                };
                match written {
                    Some(Ok(summary)) => {
                        metrics.wrote(&summary);
                        tracing::info!(writes = summary.total(), leads, "reconciled");
                        Ok(())
                    }
                    Some(Err(e)) => Err((e.label(), e.to_string())),
                    None => {
                        // The next leading round compares everything.
                        leads = false;
                        tracing::warn!("lost the leadership during a write; abandoned it, writing nothing more");
                        Ok(())
                    }
                }
            }
            (Ok(()), None) => Ok(()),
            (Err(e), _) => Err(e),
        };
        let error = outcome.as_ref().err().map(|(label, _)| *label);
        metrics.reconciled(CONTROLLER, started.elapsed().as_secs_f64(), error);
        match outcome {
            Ok(()) => {
                if engine.is_some() {
                    readiness.set(true);
                }
                retry = None;
                compare_all = false;
            }
            Err((_, message)) => {
                let delay = retry.map_or(FIRST_RETRY, |d| (d * 2).min(MAX_RETRY));
                tracing::warn!(error = %message, ?delay, "reconcile failed; retrying");
                if observe_failed {
                    // The datastore itself failed: wait before asking it again.
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                retry = Some(delay);
                compare_all = true;
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
