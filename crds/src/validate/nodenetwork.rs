//! NodeNetwork spec checks, run by the agent before it acts on a spec: a malformed spec is rejected
//! whole and the last good one stays in force. A BGP peer session is checked on its own
//! ([`validate_bgp_session`]): the agent leaves a bad session out and programs everything else.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::bird::{self, AS_NUMBERS, KEEPALIVE_SECONDS, NEXT_HOP_MODES, PORTS, RESTART_SECONDS, TTL_HOPS};
use super::{FieldError, Problems};
use crate::api::nodenetwork::NodeNetworkSpec;
use crate::api::nodenetwork::{BgpPeerSession, NodeBgpSpec};

/// Checks a NodeNetwork spec for what the agent needs to parse. Peer sessions are not checked
/// here: see [`validate_bgp_session`].
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
        node_bgp(&mut problems, bgp);
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

/// Checks the node's own BGP settings (`spec.bgp` without its sessions): router id, AS, listen
/// port and route-reflector cluster id. Part of [`validate_node_network`].
pub fn validate_node_bgp(bgp: &NodeBgpSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    node_bgp(&mut problems, bgp);
    problems.into_result()
}

fn node_bgp(problems: &mut Problems, bgp: &NodeBgpSpec) {
    problems.check(
        bgp.router_id.parse::<Ipv4Addr>().is_err(),
        "spec.bgp.routerID",
        &format!("{:?} is not an IPv4 address", bgp.router_id),
        "use the node's IPv4 address",
    );
    if let Err(message) = bird::check_range("asNumber", bgp.as_number, &AS_NUMBERS) {
        problems.add("spec.bgp.asNumber", message, "set the node's AS number (default 64512)");
    }
    if let Err(message) = bird::check_range("listenPort", bgp.listen_port, &PORTS) {
        problems.add("spec.bgp.listenPort", message, "use 1 to 65535 (default 179)");
    }
    if let Some(cluster) = &bgp.route_reflector_cluster_id {
        problems.check(
            cluster.parse::<Ipv4Addr>().is_err(),
            "spec.bgp.routeReflectorClusterID",
            &format!("{cluster:?} is not a dotted IPv4 cluster id"),
            "the operator copies the node's gingham.dev/route-reflector-cluster-id, e.g. 244.0.0.1",
        );
    }
}

/// Checks one BGP peer session (at `path`, e.g. `spec.bgp.peers[0]`) against what BIRD accepts:
/// the operator never emits a session that fails this, and the agent leaves one out.
pub fn validate_bgp_session(path: &str, peer: &BgpPeerSession) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let mut failed = |field: &str, result: Result<(), String>, hint: &str| {
        if let Err(message) = result {
            problems.add(format!("{path}.{field}"), message, hint);
        }
    };
    failed("name", bird::check_name(&peer.name), "the operator names sessions mesh_<address>, peer_<name>, ...");
    failed(
        "address",
        peer.address.parse::<IpAddr>().map(drop).map_err(|_| format!("{:?} is not an IP address", peer.address)),
        "write the peer's IP address",
    );
    failed("port", bird::check_range("port", peer.port, &PORTS).map(drop), "use 1 to 65535 (default 179)");
    let as_hint = "use an AS number from 1 to 4294967295";
    failed("asNumber", bird::check_range("asNumber", peer.as_number, &AS_NUMBERS).map(drop), as_hint);
    if let Some(local) = peer.local_as_number {
        failed("localASNumber", bird::check_range("localASNumber", local, &AS_NUMBERS).map(drop), as_hint);
    }
    if let Some(password) = &peer.password {
        failed(
            "password",
            bird::check_password(password),
            "choose a password without quotes, backslashes or line breaks",
        );
    }
    if let Some(seconds) = peer.keepalive_seconds {
        let result = bird::check_range("keepaliveSeconds", seconds, &KEEPALIVE_SECONDS).map(drop);
        failed("keepaliveSeconds", result, "use 1 to 21845 seconds (hold time is three keepalives, at most 65535)");
    }
    if let Some(seconds) = peer.max_restart_seconds {
        let result = bird::check_range("maxRestartSeconds", seconds, &RESTART_SECONDS).map(drop);
        failed("maxRestartSeconds", result, "use 0 to 4095 seconds");
    }
    if let Some(hops) = peer.ttl_security {
        failed("ttlSecurity", bird::check_range("ttlSecurity", hops, &TTL_HOPS).map(drop), "use 1 to 255 hops");
    }
    if let Some(count) = peer.allowed_local_as {
        let result = bird::check_range("allowedLocalAs", count, &bird::ALLOWED_LOCAL_AS).map(drop);
        failed("allowedLocalAs", result, "use 0 to 10");
    }
    if let Some(mode) = &peer.next_hop_mode {
        let known = NEXT_HOP_MODES.contains(&mode.as_str());
        let result = if known { Ok(()) } else { Err(format!("{mode:?} is not a next-hop mode")) };
        failed("nextHopMode", result, "use Auto, Self or Keep");
    }
    problems.into_result()
}

#[cfg(test)]
#[path = "nodenetwork_tests.rs"]
mod tests;
