//! The state the main loop and the CNI API share: the node's blocks (set by the loop when it
//! accepts a spec), a change counter (bumped by the API when endpoints change) and the endpoints the
//! last sync programmed (published by the loop).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::endpoint::{LocalEndpoint, uid_matches};
use crate::ipam::{BlockSet, RequestedPools};

/// What the last dataplane sync achieved, for waiters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    /// The endpoint change counter the sync's view was built after.
    pub seq: u64,
    /// The endpoints (`namespace/pod`) whose routes and policy are in force.
    pub endpoints: BTreeSet<String>,
    /// The endpoints (`namespace/pod`) whose policy is in force, veth or not, with the Pod UID
    /// it was compiled for (see [`crate::dataplane::SyncReport::policy_endpoints`]).
    pub policy_endpoints: BTreeMap<String, Option<String>>,
    /// At least one sync has run.
    pub synced: bool,
    /// The node's span (policies, IP sets, BGP sessions) is not known yet, so policy is not
    /// programmed: the agent is not ready for pods.
    pub waiting_for_span: bool,
}

/// Shared between the main loop and the API server (behind an `Arc`).
#[derive(Debug)]
pub struct Shared {
    blocks: watch::Sender<Option<BlockSet>>,
    /// The pools each endpoint of the span asks for (`namespace/pod` → the Pod UID the entry was
    /// compiled for, and its pools); only entries that ask for some.
    pools: std::sync::RwLock<BTreeMap<String, (Option<String>, RequestedPools)>>,
    programmed: watch::Sender<Programmed>,
    seq: AtomicU64,
    changed: Notify,
    /// When the loop last beat: milliseconds after `started`.
    heartbeat: AtomicI64,
    started: Instant,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            blocks: watch::Sender::new(None),
            pools: std::sync::RwLock::default(),
            programmed: watch::Sender::new(Programmed::default()),
            seq: AtomicU64::new(0),
            changed: Notify::new(),
            heartbeat: AtomicI64::new(0),
            started: Instant::now(),
        }
    }
}

impl Shared {
    /// The node's blocks, or `None` while no valid spec has arrived.
    pub fn blocks(&self) -> Option<BlockSet> {
        self.blocks.borrow().clone()
    }

    /// Sets the node's blocks (the loop, after accepting a spec).
    pub fn set_blocks(&self, blocks: BlockSet) {
        self.blocks.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&blocks);
            *current = Some(blocks);
            changed
        });
    }

    /// Takes the pools the span's endpoint entries ask for (the loop, when the span changes).
    pub fn set_span_pools(&self, span: &gingham_crds::api::span::NodeSpan) {
        let pools = span
            .endpoints
            .iter()
            .map(|entry| (entry.name.clone(), (entry.uid.clone(), RequestedPools::of(entry))))
            .filter(|(_, (_, pools))| !pools.is_empty())
            .collect();
        *self.pools.write().unwrap_or_else(std::sync::PoisonError::into_inner) = pools;
    }

    /// The pools the span's entry for `key` (`namespace/pod`) asks for, when it was compiled for
    /// this Pod (`uid`, see [`uid_matches`]); none (any pool) otherwise.
    pub fn requested_pools(&self, key: &str, uid: Option<&str>) -> RequestedPools {
        let pools = self.pools.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        pools
            .get(key)
            .filter(|(compiled, _)| uid_matches(compiled.as_deref(), uid))
            .map(|(_, pools)| pools.clone())
            .unwrap_or_default()
    }

    /// Records an endpoint change and wakes the loop; returns the new change number.
    pub fn endpoints_changed(&self) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed.notify_one();
        seq
    }

    /// The current change number (read by the loop before it lists the endpoints).
    pub fn current_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Waits for the next endpoint change.
    pub async fn wait_for_change(&self) {
        self.changed.notified().await;
    }

    /// Publishes what a sync programmed.
    pub fn publish(&self, programmed: Programmed) {
        self.programmed.send_replace(programmed);
    }

    /// The last published sync result.
    pub fn programmed(&self) -> Programmed {
        self.programmed.borrow().clone()
    }

    /// Whether the agent is ready for pods, or why not: `/readyz` and CNI STATUS answer the same.
    pub fn readiness(&self) -> Result<(), &'static str> {
        let programmed = self.programmed.borrow();
        if self.blocks.borrow().is_none() {
            Err("no valid NodeNetwork for this node yet")
        } else if !programmed.synced {
            Err("the dataplane has not been synced yet")
        } else if programmed.waiting_for_span {
            Err(
                "waiting for this node's span (its policies, IP sets and BGP sessions) from the operator's stream or --span-file",
            )
        } else {
            Ok(())
        }
    }

    /// Records that the main loop is alive (it finished a pass).
    pub fn beat(&self) {
        self.heartbeat.store(self.uptime_millis(), Ordering::SeqCst);
    }

    /// How long ago the main loop last beat (since start-up before its first beat), on the
    /// monotonic clock.
    pub fn heartbeat_age(&self) -> Duration {
        let age = self.uptime_millis().saturating_sub(self.heartbeat.load(Ordering::SeqCst));
        Duration::from_millis(u64::try_from(age).unwrap_or(0))
    }

    fn uptime_millis(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Makes the last beat `age` old, as a loop stuck that long would leave it.
    #[cfg(test)]
    pub(crate) fn set_heartbeat_age(&self, age: Duration) {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        self.heartbeat.store(self.uptime_millis().saturating_sub(age), Ordering::SeqCst);
    }

    /// Whether the last sync put the policy of `endpoint`'s Pod in force (same name, and the same
    /// UID when both sides know it).
    pub fn policy_in_force(&self, endpoint: &LocalEndpoint) -> bool {
        let programmed = self.programmed.borrow();
        programmed
            .policy_endpoints
            .get(&endpoint.key())
            .is_some_and(|compiled| uid_matches(compiled.as_deref(), endpoint.uid.as_deref()))
    }

    /// Whether the last sync dispatches `endpoint`'s interface to the policy of another Pod of the
    /// same name (a predecessor with another UID).
    pub fn policy_for_other_pod(&self, endpoint: &LocalEndpoint) -> bool {
        let programmed = self.programmed.borrow();
        programmed
            .policy_endpoints
            .get(&endpoint.key())
            .is_some_and(|compiled| !uid_matches(compiled.as_deref(), endpoint.uid.as_deref()))
    }

    /// Waits until a sync that saw change `seq` reports `key` programmed.
    pub async fn wait_programmed(&self, seq: u64, key: &str) {
        let mut receiver = self.programmed.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|p| p.seq >= seq && p.endpoints.contains(key)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_need_a_sync_that_saw_their_change() {
        let shared = std::sync::Arc::new(Shared::default());
        shared.publish(Programmed {
            seq: 0,
            endpoints: ["ns/a".to_string()].into(),
            synced: true,
            ..Programmed::default()
        });
        let seq = shared.endpoints_changed();
        let waiter = tokio::spawn({
            let shared = std::sync::Arc::clone(&shared);
            async move { shared.wait_programmed(seq, "ns/a").await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "an older sync must not release the waiter");
        shared.publish(Programmed {
            seq,
            endpoints: ["ns/a".to_string()].into(),
            synced: true,
            ..Programmed::default()
        });
        let finished = tokio::time::timeout(std::time::Duration::from_secs(1), waiter).await;
        assert!(matches!(finished, Ok(Ok(()))), "a sync that saw the change releases the waiter");
    }

    #[test]
    fn readiness_waits_for_the_node_network_a_sync_and_the_span() {
        let shared = Shared::default();
        assert_eq!(shared.readiness(), Err("no valid NodeNetwork for this node yet"));
        shared.set_blocks(BlockSet::default());
        assert_eq!(shared.readiness(), Err("the dataplane has not been synced yet"));
        shared.publish(Programmed { synced: true, waiting_for_span: true, ..Programmed::default() });
        assert!(shared.readiness().is_err_and(|why| why.contains("span")), "{:?}", shared.readiness());
        shared.publish(Programmed { synced: true, ..Programmed::default() });
        assert_eq!(shared.readiness(), Ok(()));
    }
}
