//! NodeNetwork spec checks, run by the agent before it acts on a spec: a malformed spec is rejected
//! whole and the last good one stays in force.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::{FieldError, Problems};
use crate::api::nodenetwork::NodeNetworkSpec;

/// Checks a NodeNetwork spec for what the agent needs to parse.
pub fn validate_node_network(spec: &NodeNetworkSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    problems.check(
        spec.address.parse::<IpNet>().is_err(),
        "spec.address",
        &format!("{:?} is not an address with prefix length", spec.address),
        "write the node's underlay address as 192.168.10.2/24",
    );
    for (index, block) in spec.blocks.iter().enumerate() {
        problems.cidr(&format!("spec.blocks[{index}]"), block);
    }
    for (index, pool) in spec.pools.iter().enumerate() {
        problems.cidr(&format!("spec.pools[{index}].cidr"), &pool.cidr);
    }
    for (index, block) in spec.tunnel.blocks.iter().enumerate() {
        let field = format!("spec.tunnel.blocks[{index}]");
        problems.cidr(&field, block);
        problems.check(
            !spec.blocks.contains(block),
            &field,
            &format!("{block:?} is not one of the node's blocks"),
            "the operator lists only blocks from spec.blocks here",
        );
    }
    if let Some(bgp) = &spec.bgp {
        problems.check(
            bgp.router_id.parse::<Ipv4Addr>().is_err(),
            "spec.bgp.routerID",
            &format!("{:?} is not an IPv4 address", bgp.router_id),
            "use the node's IPv4 address",
        );
        for (index, peer) in bgp.peers.iter().enumerate() {
            problems.check(
                peer.address.parse::<std::net::IpAddr>().is_err(),
                &format!("spec.bgp.peers[{index}].address"),
                &format!("{:?} is not an IP address", peer.address),
                "write the peer's IP address",
            );
            problems.check(
                peer.name.is_empty() || !peer.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                &format!("spec.bgp.peers[{index}].name"),
                &format!("{:?} is not a valid BIRD protocol name", peer.name),
                "use letters, digits and _ only",
            );
        }
    }
    for (index, set) in spec.policy.ip_sets.iter().enumerate() {
        problems.check(
            set.name.is_empty() || !set.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            &format!("spec.policy.ipSets[{index}].name"),
            &format!("{:?} is not a valid set name", set.name),
            "use letters, digits and _ only",
        );
    }
    problems.into_result()
}
