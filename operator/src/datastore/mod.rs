//! Datastores below the pure core: each one produces [`ClusterSnapshot`]s and applies
//! [`DesiredState`]s. `file` is a directory of YAML (docs/file-datastore.md); `kubernetes` is the
//! API server.

pub mod file;
pub mod kubernetes;
pub mod objects;

use std::collections::BTreeMap;
use std::future::Future;

use crate::core::engine::{Changes, Event};
use crate::core::{ClusterSnapshot, DesiredState};

/// A datastore failed; the controller logs it, counts it and tries again on the next change.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// The file datastore failed.
    #[error(transparent)]
    File(#[from] file::FileError),
    /// The Kubernetes datastore failed.
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::KubeError),
}

impl DatastoreError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::File(e) => e.label(),
            Self::Kubernetes(e) => e.label(),
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteOp {
    /// Created or updated an object (or its status).
    Apply,
    /// Deleted an object the operator no longer wants.
    Delete,
}

impl WriteOp {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
        }
    }
}

/// The writes of one apply, counted by kind and operation, and how many objects are managed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Writes by (kind, operation).
    pub writes: BTreeMap<(&'static str, WriteOp), u64>,
    /// Objects the operator manages after the apply, by kind.
    pub managed: BTreeMap<&'static str, u64>,
}

impl WriteSummary {
    /// Counts one write.
    pub fn count(&mut self, kind: &'static str, op: WriteOp) {
        *self.writes.entry((kind, op)).or_default() += 1;
    }

    /// The total number of writes.
    pub fn total(&self) -> u64 {
        self.writes.values().sum()
    }
}

/// What the operator learns from its datastore.
#[derive(Clone, Debug)]
pub enum Observation {
    /// Everything, from scratch: the core recomputes it all.
    Snapshot(Box<ClusterSnapshot>),
    /// What changed since the last observation: the core recomputes only what these touch.
    Events(Vec<Event>),
}

/// Where the operator reads what exists and writes what it wants.
pub trait Datastore {
    /// Waits until what the operator observes may have changed (the first call returns a
    /// snapshot at once), and returns it.
    fn next(&mut self) -> impl Future<Output = Result<Observation, DatastoreError>> + Send;

    /// Makes the stored derived objects match `desired`, writing only what changed. `changes`,
    /// when given, names every object that may differ from the last successful apply; `None`
    /// asks for a comparison of everything.
    fn apply(
        &mut self,
        desired: &DesiredState,
        changes: Option<&Changes>,
    ) -> impl Future<Output = Result<WriteSummary, DatastoreError>> + Send;
}
