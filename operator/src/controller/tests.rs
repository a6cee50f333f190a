//! The run loop against a scripted datastore: a failed apply is retried with the last snapshot even
//! when nothing changes, readiness follows the first success, shutdown ends the loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gingham_datastore::atomic::AtomicWriteError;
use prometheus_client::registry::Registry;

use super::*;
use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::datastore::Observation;
use crate::datastore::file::FileError;
use crate::datastore::{DatastoreError, WriteSummary};

/// Hands out one snapshot, then waits forever; apply outcomes follow a script.
struct Scripted {
    snapshots: usize,
    applies: Arc<Mutex<VecDeque<bool>>>,
    applied: Arc<Mutex<usize>>,
    compared_all: Arc<Mutex<Vec<bool>>>,
}

impl Datastore for Scripted {
    async fn next(&mut self) -> Result<Observation, DatastoreError> {
        self.snapshots += 1;
        if self.snapshots > 1 {
            std::future::pending::<()>().await;
        }
        Ok(Observation::Snapshot(Box::default()))
    }

    async fn apply(&mut self, _: &DesiredState, changes: Option<&Changes>) -> Result<WriteSummary, DatastoreError> {
        self.compared_all.lock().unwrap().push(changes.is_none());
        *self.applied.lock().unwrap() += 1;
        if self.applies.lock().unwrap().pop_front().unwrap_or(true) {
            Ok(WriteSummary::default())
        } else {
            let path = std::path::PathBuf::from("generated");
            let source = std::io::Error::other("disk full");
            Err(FileError::Write(AtomicWriteError { path, step: "write temporary", source }).into())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_apply_is_retried_without_a_new_snapshot_and_then_the_operator_is_ready() {
    let applied = Arc::new(Mutex::new(0));
    let mut datastore = Scripted {
        snapshots: 0,
        applies: Arc::new(Mutex::new(VecDeque::from([false, false, true]))),
        applied: Arc::clone(&applied),
        compared_all: Arc::default(),
    };
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let readiness = Readiness::default();
    let settings = OperatorSettings::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let observed = readiness.clone();
    let counter = Arc::clone(&applied);
    let watcher = tokio::spawn(async move {
        // Paused time auto-advances through the retry delays (0.5 s, then 1 s).
        while !observed.get() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let applies = *counter.lock().unwrap();
        let _ = stop.send(());
        applies
    });
    run(&mut datastore, &settings, &metrics, &readiness, None, crate::leader::always(), async {
        let _ = stopped.await;
    })
    .await;
    assert_eq!(watcher.await.unwrap(), 3);
    // The first snapshot, two retries that waited on the datastore in vain and reused the last
    // snapshot, and the wait for the next change after the success.
    assert_eq!(datastore.snapshots, 4);
    // After a failure the next apply compares everything.
    assert_eq!(*datastore.compared_all.lock().unwrap(), [true, true, true]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("gingham_operator_reconciles_total{controller=\"cluster\"} 3"), "{text}");
    assert!(
        text.contains("gingham_operator_reconcile_errors_total{controller=\"cluster\",error=\"write\"} 2"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_writes_only_while_it_leads_and_compares_everything_when_it_starts_to() {
    let applied = Arc::new(Mutex::new(0));
    let compared_all = Arc::new(Mutex::new(Vec::new()));
    let mut datastore = Scripted {
        snapshots: 0,
        applies: Arc::default(),
        applied: Arc::clone(&applied),
        compared_all: Arc::clone(&compared_all),
    };
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let readiness = Readiness::default();
    let (elect, leading) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (observed, counter) = (readiness.clone(), Arc::clone(&applied));
    let driver = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let as_follower = (*counter.lock().unwrap(), observed.get());
        elect.send_replace(true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let as_leader = *counter.lock().unwrap();
        elect.send_replace(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = stop.send(());
        (as_follower, as_leader)
    });
    run(&mut datastore, &OperatorSettings::default(), &metrics, &readiness, None, leading, async {
        let _ = stopped.await;
    })
    .await;
    let (as_follower, as_leader) = driver.await.unwrap();
    assert_eq!(as_follower, (0, true), "a follower computes (and is ready to serve) but writes nothing");
    assert_eq!(as_leader, 1, "the new leader writes at once, without waiting for a change");
    assert_eq!(*compared_all.lock().unwrap(), [true], "and compares everything");
}
