//! `gingham policy explain`: why a packet from one endpoint to another is allowed or denied,
//! computed from the compiled policy in the NodeNetworks, the state the agents enforce.

pub mod eval;
pub mod explain;
