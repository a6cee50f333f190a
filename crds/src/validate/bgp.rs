//! BGPConfiguration and BGPPeer rules.

use super::bird::{self, AS_NUMBERS, KEEPALIVE_SECONDS, PORTS, RESTART_SECONDS, TTL_HOPS};
use super::{FieldError, Problems, parse_peer_address};
use crate::api::bgp::{BGPConfigurationSpec, BGPPeerSpec};
use crate::api::common::AsNumber;

impl Problems {
    /// Checks an AS number against what BIRD accepts.
    fn as_number(&mut self, path: &str, value: Option<&AsNumber>) {
        if let Some(value) = value
            && let Err(message) = bird::check_range("AS number", value.value(), &AS_NUMBERS)
        {
            self.add(
                path,
                message,
                "use the AS number from 1 to 4294967295 (or asdot X.Y) the peer is configured with",
            );
        }
    }

    /// Checks a go-style duration against the whole seconds BIRD accepts.
    fn duration(&mut self, path: &str, value: Option<&str>, range: &std::ops::RangeInclusive<u32>) {
        if let Some(text) = value
            && let Err(message) = bird::duration_in(path.rsplit('.').next().unwrap_or(path), text, range)
        {
            self.add(path, message, "write a duration such as 20s or 2m within the range");
        }
    }
}

/// Checks a BGPConfiguration.
pub fn validate_bgp_configuration(spec: &BGPConfigurationSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    problems.check(
        spec.node_mesh_password.is_some() && !spec.mesh_enabled(),
        "spec.nodeMeshPassword",
        "nodeMeshPassword cannot be set when nodeToNodeMeshEnabled is false",
        "remove nodeMeshPassword or enable the mesh",
    );
    problems.as_number("spec.asNumber", spec.as_number.as_ref());
    problems.check(
        spec.listen_port == Some(0),
        "spec.listenPort",
        "listenPort 0 is not a port BGP can listen on",
        "remove it (179) or use 1 to 65535",
    );
    problems.duration("spec.nodeMeshMaxRestartTime", spec.node_mesh_max_restart_time.as_deref(), &RESTART_SECONDS);
    problems.check(
        spec.node_mesh_max_restart_time.is_some() && !spec.mesh_enabled(),
        "spec.nodeMeshMaxRestartTime",
        "nodeMeshMaxRestartTime cannot be set when nodeToNodeMeshEnabled is false",
        "remove it or enable the mesh",
    );
    for (field, ranges) in [
        ("serviceClusterIPs", &spec.service_cluster_ips),
        ("serviceExternalIPs", &spec.service_external_ips),
        ("serviceLoadBalancerIPs", &spec.service_load_balancer_ips),
    ] {
        for (index, range) in ranges.iter().flatten().enumerate() {
            problems.network(&format!("spec.{field}[{index}].cidr"), &range.cidr);
        }
    }
    let communities = spec.communities.as_deref().unwrap_or_default();
    problems.check(
        !communities.is_empty() && spec.prefix_advertisements.is_none(),
        "spec.communities",
        "communities are defined but not used in prefixAdvertisements",
        "add prefixAdvertisements that name them, or remove them",
    );
    for (index, community) in communities.iter().enumerate() {
        if let Err(message) = check_community_value(&community.value) {
            problems.add(
                format!("spec.communities[{index}].value"),
                message,
                "write aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)",
            );
        }
    }
    for (index, advertisement) in spec.prefix_advertisements.iter().flatten().enumerate() {
        problems.network(&format!("spec.prefixAdvertisements[{index}].cidr"), &advertisement.cidr);
        for (position, name) in advertisement.communities.iter().enumerate() {
            let known = communities.iter().any(|c| &c.name == name);
            if !known && check_community_value(name).is_err() {
                problems.add(
                    format!("spec.prefixAdvertisements[{index}].communities[{position}]"),
                    format!("{name:?} is neither a community defined in spec.communities nor a community value"),
                    "define it in spec.communities or write aa:nn / aa:nn:mm",
                );
            }
        }
    }
    problems.into_result()
}

/// Checks a BGP community value: `aa:nn` with 16-bit parts or `aa:nn:mm` with 32-bit parts.
pub fn check_community_value(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split(':').collect();
    let fits = |bits: u32| parts.iter().all(|p| !p.is_empty() && p.parse::<u64>().is_ok_and(|n| n < (1u64 << bits)));
    match parts.len() {
        2 if fits(16) => Ok(()),
        3 if fits(32) => Ok(()),
        2 => Err(format!("standard community {value:?} needs two numbers from 0 to 65535")),
        3 => Err(format!("large community {value:?} needs three numbers from 0 to 4294967295")),
        _ => Err(format!("{value:?} is not a community")),
    }
}

/// Checks a BGPPeer.
pub fn validate_bgp_peer(spec: &BGPPeerSpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    problems.check(
        set(&spec.node) && set(&spec.node_selector),
        "spec.nodeSelector",
        "node and nodeSelector cannot both be set",
        "keep one of them",
    );
    problems.check(
        set(&spec.peer_ip) && set(&spec.peer_selector),
        "spec.peerSelector",
        "peerIP and peerSelector cannot both be set",
        "keep one of them",
    );
    problems.check(
        spec.as_number.is_some() && set(&spec.peer_selector),
        "spec.asNumber",
        "asNumber must be empty when peerSelector is set",
        "remove asNumber: the selected nodes' own AS numbers are used",
    );
    problems.check(
        spec.peer_ip.is_some() && spec.as_number.is_none(),
        "spec.asNumber",
        "a peer given by peerIP needs its asNumber",
        "set asNumber to the peer's AS number",
    );
    problems.check(
        !set(&spec.peer_ip) && !set(&spec.peer_selector),
        "spec.peerIP",
        "a BGPPeer needs peerIP or peerSelector",
        "set peerIP (an external router) or peerSelector (other nodes)",
    );
    problems.check(
        spec.keep_original_next_hop == Some(true) && spec.next_hop_mode.is_some(),
        "spec.keepOriginalNextHop",
        "keepOriginalNextHop and nextHopMode cannot both be set",
        "use nextHopMode: Keep alone",
    );
    if let Some(peer_ip) = spec.peer_ip.as_deref().filter(|p| !p.is_empty())
        && let Err(message) = parse_peer_address(peer_ip)
    {
        problems.add("spec.peerIP", message, "write 192.0.2.1, 192.0.2.1:179 or [2001:db8::1]:179");
    }
    if let Some(Ok((_, Some(port)))) = spec.peer_ip.as_deref().map(parse_peer_address) {
        problems.check(
            !PORTS.contains(&port),
            "spec.peerIP",
            "port 0 is not a port BGP can connect to",
            "leave the port out (179) or use 1 to 65535",
        );
    }
    problems.as_number("spec.asNumber", spec.as_number.as_ref());
    problems.as_number("spec.localASNumber", spec.local_as_number.as_ref());
    problems.duration("spec.keepaliveTime", spec.keepalive_time.as_deref(), &KEEPALIVE_SECONDS);
    problems.duration("spec.maxRestartTime", spec.max_restart_time.as_deref(), &RESTART_SECONDS);
    if let Some(hops) = spec.ttl_security
        && let Err(message) = bird::check_range("ttlSecurity", hops, &TTL_HOPS)
    {
        problems.add("spec.ttlSecurity", message, "use the number of hops to the peer, 1 to 255");
    }
    if let Some(count) = spec.num_allowed_local_as_numbers
        && let Err(message) = bird::check_range("numAllowedLocalASNumbers", count, &bird::ALLOWED_LOCAL_AS)
    {
        problems.add("spec.numAllowedLocalASNumbers", message, "use 0 to 10");
    }
    problems.selector("spec.nodeSelector", spec.node_selector.as_deref());
    problems.selector("spec.peerSelector", spec.peer_selector.as_deref());
    problems.into_result()
}
