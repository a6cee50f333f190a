//! The dataplane: from the desired state (pure) to the kernel (netlink and nftables).
//!
//! The agent's main loop calls [`NodeView`]-based sync; everything below it is this module's.

use gingham_crds::api::{IPAMBlockSpec, NodeNetworkSpec};

use crate::endpoint::LocalEndpoint;

/// What the dataplane is asked to make true on this node.
#[derive(Clone, Debug)]
pub struct NodeView<'a> {
    /// This node's name.
    pub node_name: &'a str,
    /// The NodeNetwork spec (already validated).
    pub spec: &'a NodeNetworkSpec,
    /// Every IPAMBlock in the cluster (this node's and the others').
    pub blocks: &'a [IPAMBlockSpec],
    /// The pods on this node.
    pub endpoints: &'a [LocalEndpoint],
}
