//! NodeNetwork and IPAMBlock checks: decoding is validation. Every typed value of the contract
//! ([`Wire`]) was decoded once when the object was read; these walks report each value that did
//! not decode with its field path, plus the rules between fields.
//!
//! The agent acts on the two kinds of problem differently:
//! - [`validate_node_network_structure`]: the spec as a whole cannot be acted on (the node's own
//!   address, its BGP settings, set names, tunnel blocks that are not the node's). The spec is
//!   rejected whole and the last good one stays in force.
//! - [`node_network_value_errors`]: one value does not decode (a block, a pool CIDR, a net of a
//!   failsafe). The agent leaves that value out, reports it in status, and programs the rest.
//! - [`span_value_errors`]: the same for the span the stream sends (a net of a rule, a set member):
//!   a policy that needs a bad value is not programmed, so its endpoints' traffic is dropped,
//!   never allowed.
//!
//! A BGP peer session is checked on its own ([`validate_bgp_session`]): the agent leaves a bad
//! session out and programs everything else.

use super::bird::{self, AS_NUMBERS, KEEPALIVE_SECONDS, NEXT_HOP_MODES, PORTS, RESTART_SECONDS, TTL_HOPS};
use super::{FieldError, Problems};
use crate::api::IPAMBlockSpec;
use crate::api::nodenetwork::{BgpPeerSession, CompiledMatch, IpSet, IpSetKind, NodeBgpSpec, NodeNetworkSpec};
use crate::api::span::NodeSpan;
use crate::api::value::{Cidr, Decode, IpFamily, IpSetMember, Wire};

/// Every problem of a NodeNetwork spec: [`validate_node_network_structure`] and
/// [`node_network_value_errors`]. Peer sessions are not checked here: see
/// [`validate_bgp_session`].
pub fn validate_node_network(spec: &NodeNetworkSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = validate_node_network_structure(spec).err().unwrap_or_default();
    errors.extend(node_network_value_errors(spec));
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// An address that must be of `family`: decoded, and of it.
fn of_family(problems: &mut Problems, path: &str, address: &Wire<Cidr>, family: IpFamily) {
    match address.decoded(path) {
        Ok(cidr) if cidr.family() != family => problems.add(
            path,
            format!("{:?} is not an {family} address", address.as_str()),
            "address holds the node's IPv4 address, address6 its IPv6 one",
        ),
        Ok(_) => {}
        Err(error) => problems.push(error),
    }
}

/// The problems that stop an agent from acting on the spec at all.
pub fn validate_node_network_structure(spec: &NodeNetworkSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    problems.check(
        spec.address.is_none() && spec.address6.is_none(),
        "spec.address",
        "the node has neither an IPv4 nor an IPv6 address",
        "the operator writes address, address6 or both",
    );
    for (path, address, family) in
        [("spec.address", &spec.address, IpFamily::IPv4), ("spec.address6", &spec.address6, IpFamily::IPv6)]
    {
        if let Some(address) = address {
            of_family(&mut problems, path, address, family);
        }
    }
    for (field, blocks, family) in
        [("blocks", &spec.tunnel.blocks, IpFamily::IPv4), ("blocks6", &spec.tunnel.blocks6, IpFamily::IPv6)]
    {
        for (index, block) in blocks.iter().enumerate() {
            let path = format!("spec.tunnel.{field}[{index}]");
            problems.check(
                !spec.blocks.contains(block),
                &path,
                &format!("{:?} is not one of the node's blocks", block.as_str()),
                "the operator lists only blocks from spec.blocks here",
            );
            if block.value().is_some_and(|cidr| cidr.family() != family) {
                problems.add(
                    path,
                    format!("{:?} is not an {family} block", block.as_str()),
                    "tunnel.blocks holds IPv4 blocks, tunnel.blocks6 IPv6 ones",
                );
            }
        }
    }
    if let Some(bgp) = &spec.bgp {
        node_bgp(&mut problems, bgp);
    }
    problems.into_result()
}

/// Every value of the spec that does not decode, with its field path (`spec.blocks[2]`), except
/// the node's address (see [`validate_node_network_structure`]) and BGP (see
/// [`validate_node_bgp`] and [`validate_bgp_session`]).
pub fn node_network_value_errors(spec: &NodeNetworkSpec) -> Vec<FieldError> {
    let mut problems = Problems::default();
    for (index, block) in spec.blocks.iter().enumerate() {
        problems.decoded(&format!("spec.blocks[{index}]"), block);
    }
    for (index, pool) in spec.pools.iter().enumerate() {
        problems.decoded(&format!("spec.pools[{index}].cidr"), &pool.cidr);
    }
    for (field, blocks) in [("blocks", &spec.tunnel.blocks), ("blocks6", &spec.tunnel.blocks6)] {
        for (index, block) in blocks.iter().enumerate() {
            problems.decoded(&format!("spec.tunnel.{field}[{index}]"), block);
        }
    }
    for (field, mac) in [("vtepMAC", &spec.tunnel.vtep_mac), ("vtepMACV6", &spec.tunnel.vtep_mac_v6)] {
        if let Some(mac) = mac {
            problems.decoded(&format!("spec.tunnel.{field}"), mac);
        }
    }
    for (field, failsafes) in
        [("failsafeInbound", &spec.policy.failsafe_inbound), ("failsafeOutbound", &spec.policy.failsafe_outbound)]
    {
        for (index, failsafe) in failsafes.iter().enumerate() {
            let path = format!("spec.policy.{field}[{index}]");
            failsafe.decode(&path).err().into_iter().flatten().for_each(|e| problems.push(e));
        }
    }
    problems.into_result().err().unwrap_or_default()
}

/// Every value of a node's span that does not decode, with its path: the item's key, then the
/// field (`policy/global/web.ingress[0].source.nets[1]`, `ipset/s_web.members[3]`). The agent
/// leaves such a value out and fails closed: a set with a bad name or member, and every policy
/// that uses it or has a bad net, is not programmed, so its endpoints' traffic is dropped. BGP
/// sessions are checked one by one ([`validate_bgp_session`]).
pub fn span_value_errors(span: &NodeSpan) -> Vec<FieldError> {
    let mut problems = Problems::default();
    for policy in &span.policies {
        for (direction, rules) in [("ingress", &policy.ingress), ("egress", &policy.egress)] {
            for (rule, compiled) in rules.iter().enumerate() {
                let path = format!("policy/{}.{direction}[{rule}]", policy.name);
                nets(&mut problems, &format!("{path}.source"), &compiled.source);
                nets(&mut problems, &format!("{path}.destination"), &compiled.destination);
            }
        }
    }
    for endpoint in &span.endpoints {
        for (field, pools, family) in
            [("ipv4Pools", &endpoint.ipv4_pools, IpFamily::IPv4), ("ipv6Pools", &endpoint.ipv6_pools, IpFamily::IPv6)]
        {
            for (index, pool) in pools.iter().enumerate() {
                let path = format!("endpoint/{}.{field}[{index}]", endpoint.name);
                match pool.decoded(&path) {
                    Ok(cidr) if cidr.family() != family => problems.add(
                        &path,
                        format!("{cidr} is not an {family} pool"),
                        "ipv4Pools holds the pod's IPv4 pools, ipv6Pools its IPv6 ones",
                    ),
                    Ok(_) => {}
                    Err(error) => problems.push(error),
                }
            }
        }
    }
    for host in &span.host_endpoints {
        for (index, address) in host.expected_ips.iter().enumerate() {
            problems.decoded(&format!("hostendpoint/{}.expectedIPs[{index}]", host.name), address);
        }
    }
    for set in &span.ip_sets {
        problems.check(
            !is_set_name(&set.name),
            &format!("ipset/{}.name", set.name),
            &format!("{:?} is not a valid set name", set.name),
            "use letters, digits and _ only",
        );
        for (member, text) in set.members.iter().enumerate() {
            if let Err(error) = set_member(set, text, &format!("ipset/{}.members[{member}]", set.name)) {
                problems.push(error);
            }
        }
    }
    problems.into_result().err().unwrap_or_default()
}

/// Whether `name` can name an nftables set: letters, digits and `_`, not empty.
pub fn is_set_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn nets(problems: &mut Problems, path: &str, side: &CompiledMatch) {
    for (field, nets) in [("nets", &side.nets), ("notNets", &side.not_nets)] {
        for (index, net) in nets.iter().enumerate() {
            problems.decoded(&format!("{path}.{field}[{index}]"), net);
        }
    }
}

/// A member of `set`, decoded and of the set's kind and family, or the error naming it at `path`.
pub fn set_member<'a>(set: &IpSet, member: &'a Wire<IpSetMember>, path: &str) -> Result<&'a IpSetMember, FieldError> {
    let decoded = member.decoded(path)?;
    if decoded.family() != set.family {
        return Err(FieldError {
            path: path.to_string(),
            message: format!("{:?} is not an {} member (the set's family)", member.as_str(), set.family),
            hint: format!("an {} set holds only {} addresses", set.family, set.family),
        });
    }
    let (fits, expected) = match (set.kind, decoded) {
        (IpSetKind::Addresses, IpSetMember::Address(_)) | (IpSetKind::AddressPorts, IpSetMember::Port(_)) => (true, ""),
        (IpSetKind::Addresses, IpSetMember::Port(_)) => (false, "an address or CIDR (the set's kind is Addresses)"),
        (IpSetKind::AddressPorts, IpSetMember::Address(_)) => {
            (false, "address,protocol,port (the set's kind is AddressPorts)")
        }
    };
    if fits {
        Ok(decoded)
    } else {
        Err(FieldError {
            path: path.to_string(),
            message: format!("{:?} is not {expected}", member.as_str()),
            hint: format!("write {}", IpSetMember::EXPECTED),
        })
    }
}

/// Every value of an IPAMBlock that does not decode, with its field path (`spec.vtepMAC`).
pub fn validate_ipam_block(spec: &IPAMBlockSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    problems.decoded("spec.cidr", &spec.cidr);
    problems.decoded("spec.nodeAddress", &spec.node_address);
    if let Some(address) = &spec.tunnel_address {
        problems.decoded("spec.tunnelAddress", address);
    }
    // Every routing fact of a block is of the block's family: an IPv6 block carries its node's
    // IPv6 underlay address and IPv6 VTEP.
    if let Some(family) = spec.cidr.value().map(|cidr| cidr.family()) {
        let node = spec.node_address.value().map(|net| net.family());
        let tunnel = spec.tunnel_address.as_ref().and_then(|a| a.value()).map(|a| IpFamily::of(*a));
        for (path, found) in [("spec.nodeAddress", node), ("spec.tunnelAddress", tunnel)] {
            if let Some(found) = found.filter(|found| *found != family) {
                problems.add(
                    path,
                    format!("an {found} address on an {family} block"),
                    "use the node's address of the block's family",
                );
            }
        }
    }
    if let Some(mac) = &spec.vtep_mac {
        problems.decoded("spec.vtepMAC", mac);
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
    problems.decoded("spec.bgp.routerID", &bgp.router_id);
    if let Err(message) = bird::check_range("asNumber", bgp.as_number, &AS_NUMBERS) {
        problems.add("spec.bgp.asNumber", message, "set the node's AS number (default 64512)");
    }
    if let Err(message) = bird::check_range("listenPort", bgp.listen_port, &PORTS) {
        problems.add("spec.bgp.listenPort", message, "use 1 to 65535 (default 179)");
    }
    if let Some(cluster) = &bgp.route_reflector_cluster_id {
        problems.decoded("spec.bgp.routeReflectorClusterID", cluster);
    }
}

/// Checks one BGP peer session (at `path`, e.g. `bgppeers/node-a[0]`) against what BIRD accepts:
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
        peer.address.value().map(drop).ok_or_else(|| format!("{:?} is not an IP address", peer.address.as_str())),
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
