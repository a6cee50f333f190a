//! IPPool rules, and the one rule no single object can check: overlap between pools.

use ipnet::IpNet;

use super::{FieldError, Problems, is_strictly_masked};
use crate::api::ippool::{AllowedUse, IPPoolSpec};

/// Checks one pool on its own.
pub fn validate_ippool(spec: &IPPoolSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let network = match spec.cidr.parse::<IpNet>() {
        Ok(net) => Some(net),
        Err(_) => {
            problems.add(
                "spec.cidr",
                format!("{:?} is not a CIDR", spec.cidr),
                "write an address range such as 10.244.0.0/16",
            );
            None
        }
    };
    if let Some(net) = network {
        problems.check(
            !is_strictly_masked(&net),
            "spec.cidr",
            &format!("{} has host bits set", spec.cidr),
            &format!("use {}", net.trunc()),
        );
        let link_local: IpNet = if net.addr().is_ipv4() { link_local_v4() } else { link_local_v6() };
        problems.check(
            link_local.contains(&net) || net.contains(&link_local),
            "spec.cidr",
            &format!("{} overlaps the link-local range {link_local}", spec.cidr),
            "choose a range outside 169.254.0.0/16 and fe80::/10",
        );
    }
    let ipv6 = network.map_or(spec.is_ipv6(), |net| net.addr().is_ipv6());
    let block_size = spec.effective_block_size();
    let (low, high) = if ipv6 { (116, 128) } else { (20, 32) };
    problems.check(
        !(low..=high).contains(&block_size),
        "spec.blockSize",
        &format!("blockSize {block_size} is out of range for an IPv{} pool", if ipv6 { 6 } else { 4 }),
        &format!("use a value from {low} to {high}"),
    );
    if let Some(net) = network {
        problems.check(
            net.prefix_len() > block_size,
            "spec.cidr",
            &format!("the pool {} is smaller than one /{block_size} block", spec.cidr),
            "make the pool larger or blockSize larger",
        );
    }
    problems.check(
        spec.ipip_mode.is_enabled() && spec.vxlan_mode.is_enabled(),
        "spec.vxlanMode",
        "ipipMode and vxlanMode cannot both be enabled",
        "set one of them to Never",
    );
    problems.check(
        spec.ipip_mode.is_enabled() && ipv6,
        "spec.ipipMode",
        "IPIP is not supported on IPv6 pools",
        "set ipipMode to Never; use vxlanMode for IPv6",
    );
    problems.selector("spec.nodeSelector", Some(&spec.node_selector));
    let load_balancer = spec.allowed_uses.contains(&AllowedUse::LoadBalancer);
    problems.check(
        load_balancer && spec.allowed_uses.iter().any(|u| *u != AllowedUse::LoadBalancer),
        "spec.allowedUses",
        "LoadBalancer cannot be combined with Workload or Tunnel",
        "use separate pools",
    );
    problems.check(
        load_balancer && (spec.ipip_mode.is_enabled() || spec.vxlan_mode.is_enabled()),
        "spec.allowedUses",
        "LoadBalancer pools cannot use ipipMode or vxlanMode",
        "set both to Never",
    );
    problems.check(
        load_balancer && spec.node_selector.trim() != "all()",
        "spec.nodeSelector",
        "LoadBalancer pools must select all nodes",
        "set nodeSelector to all()",
    );
    problems.into_result()
}

fn link_local_v4() -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::new(169, 254, 0, 0), 16))
}

fn link_local_v6() -> IpNet {
    IpNet::V6(ipnet::Ipv6Net::new_assert(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10))
}

/// Two pools whose ranges overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOverlap {
    /// The pool that loses (created later, or later by name on a tie).
    pub pool: String,
    /// The pool it overlaps.
    pub other: String,
}

/// Finds overlapping pools. `pools` is `(name, cidr, creation order key)`; of two overlapping pools
/// the older keeps working and the younger is reported, so adding a bad pool never breaks a good one.
pub fn find_pool_overlaps<K: Ord>(pools: &[(String, String, K)]) -> Vec<PoolOverlap> {
    let mut parsed: Vec<(&String, IpNet, &K)> =
        pools.iter().filter_map(|(name, cidr, key)| cidr.parse::<IpNet>().ok().map(|net| (name, net, key))).collect();
    parsed.sort_by(|a, b| a.2.cmp(b.2).then_with(|| a.0.cmp(b.0)));
    let mut overlaps = Vec::new();
    for (index, (name, net, _)) in parsed.iter().enumerate() {
        if let Some((other, _, _)) =
            parsed[..index].iter().find(|(_, earlier, _)| earlier.contains(net) || net.contains(earlier))
        {
            overlaps.push(PoolOverlap { pool: (*name).clone(), other: (*other).clone() });
        }
    }
    overlaps
}
