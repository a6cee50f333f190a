//! A reference evaluator over the compiled output: decides a packet the way the agent's nftables
//! program must, reading only the nodes' spans (tiered policy lists, compiled rules, sets), in either
//! family: a packet meets the rules its family allows (`ipVersion`, ICMP or ICMPv6, nets of its
//! family) and the sets of its family.

use std::net::IpAddr;

use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledRule, IcmpMatch, IcmpProtocol};
use gingham_crds::api::policy::Action;
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::tier::TierDefaultAction;
use gingham_crds::api::{IpFamily, IpProtocol, Net, Wire};

/// A pod: `namespace/pod`, for finding the endpoint's policy lists, and the node it runs on.
#[derive(Clone, Copy, Debug)]
pub struct Pod<'a> {
    /// `namespace/pod`.
    pub endpoint: &'a str,
    /// The node the endpoint runs on.
    pub node: &'a str,
}

/// One side of a packet: a pod, or an address outside the cluster (no policy applies there).
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// The pod; `None` for an address that is no pod.
    pub pod: Option<Pod<'a>>,
    /// The address.
    pub address: &'a str,
}

/// A packet: protocol number and destination port (for ICMP and ICMPv6: the type, code 0).
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port, or ICMP type.
    pub port: u16,
}

fn address(text: &str) -> IpAddr {
    text.parse().expect("the world's addresses are addresses")
}

fn in_net(address: &str, net: &Wire<Net>) -> bool {
    let net = net.value().expect("the operator writes valid nets");
    net.0.contains(&self::address(address))
}

/// The set `name` of the span, when it is of `family`: a rule names the sets of both families,
/// and a packet meets those of its own.
fn set_of<'a>(spec: &'a NodeSpan, name: &str, family: IpFamily) -> Option<&'a gingham_crds::api::nodenetwork::IpSet> {
    let Some(found) = spec.ip_sets.iter().find(|s| s.name == name) else {
        panic!("a rule refers to set {name} that the node does not carry")
    };
    (found.family == family).then_some(&**found)
}

fn in_set(set: &gingham_crds::api::nodenetwork::IpSet, member: &str) -> bool {
    set.members.iter().any(|m| m == member)
}

fn side_matches(spec: &NodeSpan, side: &CompiledMatch, address: &str, port: Option<u16>, protocol: u8) -> bool {
    let family = IpFamily::of(self::address(address));
    // Nets of the other family never match this packet; a side whose nets are all of the other
    // family matches nothing of this one (Calico's rule: such a rule is for the other family).
    let nets = side.nets.is_empty() || side.nets.iter().any(|n| in_net(address, n));
    let not_nets = !side.not_nets.iter().any(|n| in_net(address, n));
    let sets_of = |names: &[String]| -> Vec<&gingham_crds::api::nodenetwork::IpSet> {
        names.iter().filter_map(|n| set_of(spec, n, family)).collect()
    };
    let sets = sets_of(&side.sets).iter().all(|s| in_set(s, address));
    let not_sets = !sets_of(&side.not_sets).iter().any(|s| in_set(s, address));
    let named_port_set = match family {
        IpFamily::IPv4 => side.named_port_set.as_ref(),
        IpFamily::IPv6 => side.named_port_set6.as_ref(),
    };
    let ports = match port {
        None => side.ports.is_empty() && named_port_set.is_none(),
        Some(port) => {
            let listed = side.ports.iter().any(|r| r.first <= port && port <= r.last);
            let named = named_port_set.and_then(|name| set_of(spec, name, family)).is_some_and(|set| {
                in_set(set, &format!("{address},{},{port}", IpProtocol::from_number(protocol).expect("a protocol")))
            });
            (side.ports.is_empty() && named_port_set.is_none()) || listed || named
        }
    };
    let not_ports = port.is_none_or(|port| !side.not_ports.iter().any(|r| r.first <= port && port <= r.last));
    nets && not_nets && sets && not_sets && ports && not_ports
}

fn rule_matches(
    spec: &NodeSpan,
    rule: &CompiledRule,
    source: &Side<'_>,
    destination: &Side<'_>,
    packet: Packet,
) -> bool {
    let family = IpFamily::of(address(source.address));
    let icmp = |icmp: &IcmpMatch| {
        IcmpProtocol::of_number(packet.protocol) == Some(icmp.protocol)
            && icmp.protocol.family() == family
            && u16::from(icmp.type_) == packet.port
            && icmp.code.is_none_or(|code| code == 0)
    };
    rule.ip_version.is_none_or(|version| version == family)
        && rule.icmp.as_ref().is_none_or(icmp)
        && !rule.not_icmp.as_ref().is_some_and(icmp)
        && rule.protocol.is_none_or(|p| p == packet.protocol)
        && rule.not_protocol.is_none_or(|p| p != packet.protocol)
        && side_matches(spec, &rule.source, source.address, None, packet.protocol)
        && side_matches(spec, &rule.destination, destination.address, Some(packet.port), packet.protocol)
}

/// The verdict of one node for one direction, at `local` (the destination pod for `ingress`, the
/// source pod for egress).
fn verdict(
    spec: &NodeSpan,
    ingress: bool,
    local: &str,
    source: &Side<'_>,
    destination: &Side<'_>,
    packet: Packet,
) -> bool {
    let Some(endpoint) = spec.endpoints.iter().find(|e| e.name == local) else {
        panic!("endpoint {local} has no policy entry on its node, so its traffic would be dropped")
    };
    let tiers = if ingress { &endpoint.ingress } else { &endpoint.egress };
    'tiers: for tier in tiers {
        for name in &tier.policies {
            let Some(policy) = spec.policies.iter().find(|p| &p.name == name) else {
                panic!("policy {name} is listed but not compiled on the node")
            };
            let rules = if ingress { &policy.ingress } else { &policy.egress };
            for rule in rules.iter().filter(|r| rule_matches(spec, r, source, destination, packet)) {
                match rule.action {
                    Action::Allow => return true,
                    Action::Deny => return false,
                    Action::Pass => continue 'tiers,
                    Action::Log => {}
                }
            }
        }
        if tier.default_action == TierDefaultAction::Deny {
            return false;
        }
    }
    true
}

/// Whether the packet gets from `source` to `destination`: allowed on egress at the source's node
/// and on ingress at the destination's node (an address outside the cluster has neither).
pub fn allowed(
    nodes: &std::collections::BTreeMap<String, NodeSpan>,
    source: Side<'_>,
    destination: Side<'_>,
    packet: Packet,
) -> bool {
    let at = |pod: Option<Pod<'_>>, ingress: bool| {
        pod.is_none_or(|pod| {
            let Some(node) = nodes.get(pod.node) else { panic!("no NodeNetwork for {}", pod.node) };
            verdict(node, ingress, pod.endpoint, &source, &destination, packet)
        })
    };
    at(source.pod, false) && at(destination.pod, true)
}
