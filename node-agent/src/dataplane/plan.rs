//! The node plan: one revision of this node's inputs (its NodeNetwork, its span and the IPAMBlocks
//! of its time), decoded once into the typed values both planners consume (netlink:
//! [`super::desired`]; nftables: [`super::nft`]).
//!
//! Every value was decoded when the object was read ([`Wire`]); building the plan takes the
//! decoded values and reports each one that did not decode with its path (the same walks
//! `gingham-operator validate` runs, [`node_network_value_errors`] and [`span_value_errors`]).
//! What did not decode is left out, and fails closed: a policy whose net, or a set whose member
//! or name, does not decode is not programmed, so the endpoints that use it have their traffic
//! dropped, never allowed. Both parts hold both families: every routing fact of a remote block is
//! of the block's family, and the policy has sets typed by family, failsafes and natOutgoing
//! pools of either family. While the span is not known the plan has no policy at all
//! ([`NodePlan::policy`] is `None`), and the dataplane leaves nftables as it is.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gingham_crds::api::common::EncapsulationMode;
use gingham_crds::api::felix::Failsafe;
use gingham_crds::api::hostpolicy::HostEndpointPolicy;
use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, EndpointPolicy, EndpointToHostAction, IpSet, IpSetKind, NodeNetworkSpec,
};
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::{IPAMBlockSpec, IpFamily, IpProtocol, IpSetMember, Mac, Shared};
use gingham_crds::validate::{
    is_set_name, node_network_value_errors, set_member, span_value_errors, validate_ipam_block,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{SyncError, SyncReport};

/// One revision of this node's desired state, decoded. Immutable once built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodePlan {
    /// The node's IPv4 underlay address and subnet (`spec.address`); `None` on a node without
    /// IPv4.
    pub address: Option<Ipv4Net>,
    /// The node's IPv6 underlay address and subnet (`spec.address6`); `None` on a node without
    /// IPv6.
    pub address6: Option<Ipv6Net>,
    /// The blocks this node owns, of both families.
    pub blocks: Vec<IpNet>,
    /// The pools of both families, for encapsulation decisions and natOutgoing.
    pub pools: Vec<PoolPlan>,
    /// The tunnel devices' settings.
    pub tunnel: TunnelPlan,
    /// The other nodes' blocks, of both families.
    pub remotes: Vec<RemoteBlock>,
    /// The policy of the node's endpoints; `None` while the node's span is not known.
    pub policy: Option<PolicyPlan>,
    /// How often the nftables table is listed, in seconds.
    pub nftables_refresh_seconds: u32,
    /// How often the routes, devices, neighbours, FDB and nexthops are dumped in full, in seconds
    /// (between dumps, the kernel's notifications keep the agent's picture of them current).
    pub route_refresh_seconds: u32,
    /// Routing values that did not decode, each with its field path; left out.
    pub routing_problems: Vec<String>,
    /// Policy values that did not decode, and the policies left out for them.
    pub policy_problems: Vec<String>,
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// The pool's CIDR (its family is the pool's).
    pub cidr: IpNet,
    /// IP-in-IP mode (IPv4 pools only; an IPv6 pool's is never used).
    pub ipip_mode: EncapsulationMode,
    /// VXLAN mode.
    pub vxlan_mode: EncapsulationMode,
    /// Masquerade traffic leaving every pool.
    pub nat_outgoing: bool,
}

/// The tunnel devices' settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelPlan {
    /// The VXLAN network identifier.
    pub vxlan_vni: u32,
    /// The VXLAN UDP port.
    pub vxlan_port: u16,
    /// This node's IPv4 VTEP MAC (`vtepMAC`).
    pub vtep_mac: Option<Mac>,
    /// This node's IPv6 VTEP MAC (`vtepMACV6`).
    pub vtep_mac_v6: Option<Mac>,
    /// IPv4 VXLAN device MTU, when set.
    pub vxlan_mtu: Option<u32>,
    /// IPv6 VXLAN device MTU (`vxlanMTUV6`), when set.
    pub vxlan_mtu_v6: Option<u32>,
    /// tunl0 MTU, when set.
    pub ipip_mtu: Option<u32>,
}

/// Another node's block. Every fact of it is of the block's family (the IPAMBlock contract): an
/// IPv6 block carries its owner's IPv6 underlay address, IPv6 VTEP address and IPv6 VTEP MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteBlock {
    /// The block.
    pub cidr: IpNet,
    /// The node that owns it.
    pub node: String,
    /// That node's underlay address of the block's family.
    pub node_ip: IpAddr,
    /// That node's tunnel (VTEP) address, when it has a valid one of the block's family.
    pub tunnel_address: Option<IpAddr>,
    /// That node's VTEP MAC of the block's family, when it has a valid one.
    pub vtep_mac: Option<Mac>,
}

/// The node's policy settings and its span's compiled policy, decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyPlan {
    /// What happens to traffic from local pods to the node itself.
    pub default_endpoint_to_host_action: EndpointToHostAction,
    /// Inbound ports on the node that stay open whatever the policy (those that decoded), each
    /// for any source or for a network of either family.
    pub failsafe_inbound: Vec<(Failsafe, Option<IpNet>)>,
    /// Outbound ports from the node that stay open whatever the host endpoint policy, each to
    /// any destination or to a network.
    pub failsafe_outbound: Vec<(Failsafe, Option<IpNet>)>,
    /// The node's host endpoints the agent enforces: those with an interface name (one given by
    /// `expectedIPs` only is reported and not enforced).
    pub host_endpoints: Vec<HostEndpointPolicy>,
    /// The VXLAN UDP port: the node's own tunnel traffic passes host endpoint policy.
    pub vxlan_port: u16,
    /// Every local endpoint whose policy is known.
    pub endpoints: Vec<EndpointPolicy>,
    /// The policies whose every value, and every set they name, decoded.
    pub policies: Vec<Shared<CompiledPolicy>>,
    /// The sets whose name nftables can take, with the members that decoded.
    pub sets: Vec<SetPlan>,
    /// What natOutgoing masquerades, in both families.
    pub nat: NatPlan,
    /// The families the node has an address of (those that decoded), IPv4 first.
    pub node_families: Vec<IpFamily>,
}

/// natOutgoing in both families: traffic from a natOutgoing pool to a destination outside every
/// pool of its family is masqueraded to the node's address of that family. The pools are the
/// spec's (the routing part of the plan keeps its own view of them, for encapsulation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatPlan {
    /// Every pool's CIDR, of both families.
    pub pools: Vec<IpNet>,
    /// The CIDRs of the pools with natOutgoing.
    pub nat_outgoing: Vec<IpNet>,
}

/// One named set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetPlan {
    /// The set's name in the span.
    pub name: String,
    /// The family of every member: a rule checks a packet against the sets of its own family.
    pub family: IpFamily,
    /// Its members.
    pub members: SetMembers,
}

/// The members of a set, by kind, each of the set's family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetMembers {
    /// Addresses and networks.
    Addresses(Vec<IpNet>),
    /// Address, protocol and port triples.
    AddressPorts(Vec<(IpAddr, IpProtocol, u16)>),
}

impl NodePlan {
    /// Adds what this plan left out to a sync's report: routing values make routes not
    /// programmed (as any part of the spec that cannot be programmed does); policy values fail
    /// closed and are reported without holding back the endpoints.
    pub fn report(&self, report: &mut SyncReport) {
        if !self.routing_problems.is_empty() {
            report.routes_programmed = false;
        }
        let problems = self.routing_problems.iter().chain(&self.policy_problems);
        report.errors.extend(problems.cloned().map(SyncError::undecodable));
    }

    /// The routing part of this plan alone (what the netlink side reads), without policy.
    pub fn routing(&self) -> Self {
        Self {
            address: self.address,
            address6: self.address6,
            blocks: self.blocks.clone(),
            pools: self.pools.clone(),
            tunnel: self.tunnel.clone(),
            remotes: self.remotes.clone(),
            route_refresh_seconds: self.route_refresh_seconds,
            ..Self::default()
        }
    }

    /// Whether two plans route alike (their [`Self::routing`] parts are equal), without copying.
    pub fn same_routing(&self, other: &Self) -> bool {
        self.address == other.address
            && self.address6 == other.address6
            && self.route_refresh_seconds == other.route_refresh_seconds
            && self.tunnel == other.tunnel
            && self.blocks == other.blocks
            && self.pools == other.pools
            && self.remotes == other.remotes
    }

    /// Decodes one revision for `node`: its spec, its span when known, and every IPAMBlock (its
    /// own are skipped).
    pub fn build(node: &str, spec: &NodeNetworkSpec, span: Option<&NodeSpan>, blocks: &[IPAMBlockSpec]) -> Self {
        let mut routing_problems = Vec::new();
        let mut policy_problems = Vec::new();
        for error in node_network_value_errors(spec) {
            let problems =
                if error.path.starts_with("spec.policy.") { &mut policy_problems } else { &mut routing_problems };
            problems.push(format!("{error}; left out"));
        }
        let span_problems = span.map(span_value_errors).unwrap_or_default();
        policy_problems.extend(span_problems.iter().map(|error| format!("{error}; left out")));
        let tunnel = &spec.tunnel;
        Self {
            address: spec.address.as_ref().and_then(|address| address.value()?.v4()),
            address6: spec.address6.as_ref().and_then(|address| address.value()?.v6()),
            blocks: spec.blocks.iter().filter_map(|block| Some(block.value()?.0)).collect(),
            pools: spec
                .pools
                .iter()
                .filter_map(|pool| {
                    Some(PoolPlan {
                        cidr: pool.cidr.value()?.0,
                        ipip_mode: pool.ipip_mode,
                        vxlan_mode: pool.vxlan_mode,
                        nat_outgoing: pool.nat_outgoing,
                    })
                })
                .collect(),
            tunnel: TunnelPlan {
                vxlan_vni: tunnel.vxlan_vni,
                vxlan_port: tunnel.vxlan_port,
                vtep_mac: tunnel.vtep_mac.as_ref().and_then(|mac| mac.value().copied()),
                vtep_mac_v6: tunnel.vtep_mac_v6.as_ref().and_then(|mac| mac.value().copied()),
                vxlan_mtu: tunnel.vxlan_mtu,
                vxlan_mtu_v6: tunnel.vxlan_mtu_v6,
                ipip_mtu: tunnel.ipip_mtu,
            },
            remotes: remotes(node, blocks, &mut routing_problems),
            policy: span.map(|span| policy(spec, span, &mut policy_problems)),
            nftables_refresh_seconds: spec.agent.nftables_refresh_seconds,
            route_refresh_seconds: spec.agent.route_refresh_seconds,
            routing_problems,
            policy_problems,
        }
    }
}

fn remotes(node: &str, blocks: &[IPAMBlockSpec], problems: &mut Vec<String>) -> Vec<RemoteBlock> {
    let mut out = Vec::new();
    for block in blocks.iter().filter(|b| b.node != node) {
        if let Err(errors) = validate_ipam_block(block) {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            problems.push(format!("IPAMBlock {} of node {}: {}; left out", block.cidr, block.node, errors.join("; ")));
        }
        // A value of another family than the block's was reported above; it is left out.
        let Some(cidr) = block.cidr.value().map(|c| c.0) else { continue };
        let same_family = |address: &IpAddr| address.is_ipv4() == cidr.addr().is_ipv4();
        let Some(node_ip) = block.node_address.value().map(|n| n.0.addr()).filter(same_family) else { continue };
        out.push(RemoteBlock {
            cidr,
            node: block.node.clone(),
            node_ip,
            tunnel_address: block.tunnel_address.as_ref().and_then(|a| a.value().copied()).filter(same_family),
            vtep_mac: block.vtep_mac.as_ref().and_then(|mac| mac.value().copied()),
        });
    }
    out
}

fn policy(spec: &NodeNetworkSpec, span: &NodeSpan, problems: &mut Vec<String>) -> PolicyPlan {
    // The sets that cannot be programmed whole, and why: every policy that names one fails closed.
    let mut tainted = BTreeMap::new();
    let mut sets = Vec::with_capacity(span.ip_sets.len());
    for set in &span.ip_sets {
        if !is_set_name(&set.name) {
            tainted.insert(set.name.as_str(), "has a name nftables cannot take");
            continue;
        }
        let (members, complete) = set_members(set);
        if !complete {
            tainted.insert(set.name.as_str(), "has a member that does not decode");
        }
        sets.push(SetPlan { name: set.name.clone(), family: set.family, members });
    }
    let kinds: BTreeMap<&str, IpSetKind> = span.ip_sets.iter().map(|set| (set.name.as_str(), set.kind)).collect();
    let policies = span
        .policies
        .iter()
        .filter(|compiled| {
            let why = left_out(compiled, &tainted, &kinds);
            if let Some(why) = &why {
                problems.push(format!(
                    "policy {} is not programmed (its endpoints' traffic is dropped): {why}",
                    compiled.name
                ));
            }
            why.is_none()
        })
        .cloned()
        .collect();
    let header = &spec.policy;
    let decoded = |ports: &[gingham_crds::api::felix::ProtoPort]| -> Vec<(Failsafe, Option<IpNet>)> {
        ports
            .iter()
            // One that does not decode is reported by `node_network_value_errors`.
            .filter_map(|port| port.decode("").ok())
            .map(|failsafe| {
                let net = failsafe.net.as_ref().map(|net| net.0);
                (failsafe, net)
            })
            .collect()
    };
    let host_endpoints = span
        .host_endpoints
        .iter()
        .filter(|host| {
            let enforced = host.interface_name.is_some();
            if !enforced {
                problems.push(format!(
                    "host endpoint {} names no interface (expectedIPs only): not enforced; set interfaceName",
                    host.name
                ));
            }
            enforced
        })
        .cloned()
        .collect();
    PolicyPlan {
        default_endpoint_to_host_action: header.default_endpoint_to_host_action,
        failsafe_inbound: decoded(&header.failsafe_inbound),
        failsafe_outbound: decoded(&header.failsafe_outbound),
        host_endpoints,
        vxlan_port: spec.tunnel.vxlan_port,
        endpoints: span.endpoints.clone(),
        policies,
        sets,
        nat: nat(spec),
        node_families: [&spec.address, &spec.address6]
            .into_iter()
            .filter_map(|address| Some(address.as_ref()?.value()?.family()))
            .collect(),
    }
}

/// The pools' CIDRs that decoded (one that did not is reported by `node_network_value_errors`).
fn nat(spec: &NodeNetworkSpec) -> NatPlan {
    let decoded = || spec.pools.iter().filter_map(|pool| Some((pool.cidr.value()?.0, pool.nat_outgoing)));
    NatPlan {
        pools: decoded().map(|(cidr, _)| cidr).collect(),
        nat_outgoing: decoded().filter(|(_, nat)| *nat).map(|(cidr, _)| cidr).collect(),
    }
}

/// A set's members, and whether every member decoded and is of the set's family (one that is
/// not is reported by `span_value_errors`).
fn set_members(set: &IpSet) -> (SetMembers, bool) {
    let decoded: Vec<IpSetMember> = set
        .members
        .iter()
        .enumerate()
        .filter_map(|(at, member)| set_member(set, member, &format!("ipset/{}.members[{at}]", set.name)).ok().copied())
        .collect();
    let complete = decoded.len() == set.members.len();
    let members = match set.kind {
        IpSetKind::Addresses => SetMembers::Addresses(
            decoded.iter().filter_map(|m| if let IpSetMember::Address(net) = m { Some(net.0) } else { None }).collect(),
        ),
        IpSetKind::AddressPorts => SetMembers::AddressPorts(
            decoded
                .iter()
                .filter_map(|m| if let IpSetMember::Port(m) = m { Some((m.addr, m.proto, m.port)) } else { None })
                .collect(),
        ),
    };
    (members, complete)
}

/// Why a policy cannot be programmed as compiled: a net that does not decode, a set that cannot
/// be programmed whole, or a set named where its kind cannot serve (nftables would refuse the
/// table).
fn left_out(
    policy: &CompiledPolicy,
    tainted: &BTreeMap<&str, &str>,
    kinds: &BTreeMap<&str, IpSetKind>,
) -> Option<String> {
    let sides = policy.ingress.iter().chain(&policy.egress).flat_map(|rule| [&rule.source, &rule.destination]);
    for side in sides {
        if let Some(net) = side.nets.iter().chain(&side.not_nets).find(|net| net.value().is_none()) {
            return Some(format!("net {:?} does not decode", net.as_str()));
        }
        if let Some((set, why)) = names(side).find_map(|(name, _)| tainted.get_key_value(name)) {
            return Some(format!("set {set} {why}"));
        }
        if let Some((set, _)) = names(side).find(|(name, kind)| kinds.get(name).is_some_and(|k| k != kind)) {
            return Some(format!("set {set} is not of the kind the rule needs (addresses or named ports)"));
        }
    }
    None
}

/// Every set a side names, with the kind it needs.
fn names(side: &CompiledMatch) -> impl Iterator<Item = (&str, IpSetKind)> {
    let addresses = side.sets.iter().chain(&side.not_sets).map(|name| (name.as_str(), IpSetKind::Addresses));
    let ports = side.named_port_set.iter().chain(&side.named_port_set6);
    addresses.chain(ports.map(|name| (name.as_str(), IpSetKind::AddressPorts)))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
