//! `gingham policy explain` (why a packet from one endpoint to another is allowed or denied) and
//! `gingham policy preview` (which verdicts a change would flip), both computed from compiled
//! policy: the NodeNetworks the agents enforce, or the operator's core on a changed state.

pub mod eval;
pub mod explain;
pub mod preview;
