//! Fixtures the IPAM tests share: a node's block set and a pod's allocation request.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeSet;

use gingham_crds::api::IpFamily;
use gingham_node_agent::ipam::{AllocationRequest, BlockSet, FamilyRequest};

/// The node's blocks `cidrs`, of which `tunnel_blocks` belong to pools that encapsulate.
pub fn blocks(cidrs: &[&str], tunnel_blocks: &[&str]) -> BlockSet {
    BlockSet {
        blocks: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        releasing: BTreeSet::new(),
        tunnel_blocks: tunnel_blocks.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

/// The request of container `id` for pod `default/pod-<id>`: an IPv4 address.
pub fn request(id: &str) -> AllocationRequest {
    request_of(id, &[IpFamily::IPv4])
}

/// The request of container `id` for pod `default/pod-<id>`: an address of each of `families`,
/// from any block.
pub fn request_of(id: &str, families: &[IpFamily]) -> AllocationRequest {
    AllocationRequest {
        container_id: id.into(),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: format!("pod-{id}"),
        uid: None,
        families: families.iter().map(|f| FamilyRequest::any(*f)).collect(),
    }
}
