//! `gingham policy explain` (why a packet from one endpoint to another is allowed or denied) and
//! `gingham policy preview` (which verdicts a change would flip), both computed from compiled
//! policy: the spans the operator's core computes, from the cluster as it is or as a change would
//! leave it. `gingham policy log` maps a Log rule's kernel log prefix back to its policy and rule.

pub mod eval;
pub mod explain;
pub mod log;
pub mod preview;
