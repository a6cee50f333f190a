//! gingham's fan-out core, in the part of Calico's Typha and Antrea's controller API: the operator
//! computes each shared item (a compiled policy, an IP set, a node's peers) once, and every agent
//! receives exactly its node's span of them, as a snapshot and then deltas by revision. A set that
//! gains one member is one small patch to the nodes whose span holds it, and nothing to the others.
//!
//! This crate is pure (no I/O, no kube): [`Hub`] is the serving side's state, [`Replica`] the
//! subscriber's copy. The transport and the computation live in the operator and the agent.

mod hub;
mod item;
mod sync;

pub use hub::{Batch, Hub, HubError, Published};
pub use item::{Item, ItemKey, ItemKind, PatchError, Revision, SetPatch};
pub use sync::{Replica, ReplicaError, Sync, Update};

#[cfg(test)]
mod hub_tests;
