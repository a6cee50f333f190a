//! The node plan: one NodeNetwork revision and the IPAMBlocks of its time, decoded once into the
//! typed values both planners consume (netlink: [`super::desired`]; nftables: [`super::nft`]).
//!
//! Every value was decoded when the object was read ([`Wire`]); building the plan takes the
//! decoded values and reports each one that did not decode with its field path (the same walk
//! `gingham-operator validate` runs, [`node_network_value_errors`]). What did not decode is left
//! out, and fails closed: a policy whose net, or a set whose member, does not decode is not
//! programmed, so the endpoints that use it have their traffic dropped, never allowed. IPv6
//! values decode but are left out quietly: the dataplane is IPv4-only for now.

use std::net::Ipv4Addr;

use gingham_crds::api::common::EncapsulationMode;
use gingham_crds::api::felix::Failsafe;
use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, EndpointPolicy, EndpointToHostAction, IpSetKind, NodeNetworkSpec,
};
use gingham_crds::api::{IPAMBlockSpec, IpProtocol, IpSetMember, Mac, Shared};
use gingham_crds::validate::{node_network_value_errors, set_member, validate_ipam_block};
use ipnet::Ipv4Net;

use super::{SyncError, SyncReport};

/// One revision of this node's desired state, decoded. Immutable once built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodePlan {
    /// The node's underlay address and subnet; `None` when it is not IPv4.
    pub address: Option<Ipv4Net>,
    /// The blocks this node owns.
    pub blocks: Vec<Ipv4Net>,
    /// The pools, for encapsulation decisions and natOutgoing.
    pub pools: Vec<PoolPlan>,
    /// The tunnel devices' settings.
    pub tunnel: TunnelPlan,
    /// The other nodes' blocks.
    pub remotes: Vec<RemoteBlock>,
    /// Compiled policy.
    pub policy: PolicyPlan,
    /// How often the nftables table is listed, in seconds.
    pub nftables_refresh_seconds: u32,
    /// Routing values that did not decode, each with its field path; left out.
    pub routing_problems: Vec<String>,
    /// Policy values that did not decode, and the policies left out for them.
    pub policy_problems: Vec<String>,
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// The pool's CIDR.
    pub cidr: Ipv4Net,
    /// IP-in-IP mode.
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
    /// This node's VTEP MAC.
    pub vtep_mac: Option<Mac>,
    /// VXLAN device MTU, when set.
    pub vxlan_mtu: Option<u32>,
    /// tunl0 MTU, when set.
    pub ipip_mtu: Option<u32>,
}

/// Another node's block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteBlock {
    /// The block.
    pub cidr: Ipv4Net,
    /// The node that owns it.
    pub node: String,
    /// That node's underlay address.
    pub node_ip: Ipv4Addr,
    /// That node's tunnel address, when it has a valid IPv4 one.
    pub tunnel_address: Option<Ipv4Addr>,
    /// That node's VTEP MAC, when it has a valid one.
    pub vtep_mac: Option<Mac>,
}

/// Compiled policy, decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyPlan {
    /// What happens to traffic from local pods to the node itself.
    pub default_endpoint_to_host_action: EndpointToHostAction,
    /// Inbound ports on the node that stay open whatever the policy (those that decoded; a
    /// failsafe for an IPv6 network is left out: the table is IPv4-only).
    pub failsafe_inbound: Vec<(Failsafe, Option<Ipv4Net>)>,
    /// Every local endpoint whose policy is known.
    pub endpoints: Vec<EndpointPolicy>,
    /// The policies whose every value, and every set they name, decoded.
    pub policies: Vec<Shared<CompiledPolicy>>,
    /// The sets, with the members that decoded.
    pub sets: Vec<SetPlan>,
}

/// One named set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetPlan {
    /// The set's name in the spec.
    pub name: String,
    /// Its members.
    pub members: SetMembers,
}

/// The members of a set, by kind (IPv4 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetMembers {
    /// Addresses and networks.
    Addresses(Vec<Ipv4Net>),
    /// Address, protocol and port triples.
    AddressPorts(Vec<(Ipv4Addr, IpProtocol, u16)>),
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

    /// Decodes one revision for `node`: its spec and every IPAMBlock (its own are skipped).
    pub fn build(node: &str, spec: &NodeNetworkSpec, blocks: &[IPAMBlockSpec]) -> Self {
        let mut routing_problems = Vec::new();
        let mut policy_problems = Vec::new();
        for error in node_network_value_errors(spec) {
            let problems =
                if error.path.starts_with("spec.policy.") { &mut policy_problems } else { &mut routing_problems };
            problems.push(format!("{error}; left out"));
        }
        let tunnel = &spec.tunnel;
        Self {
            address: spec.address.value().and_then(|cidr| cidr.v4()),
            blocks: spec.blocks.iter().filter_map(|block| block.value()?.v4()).collect(),
            pools: spec
                .pools
                .iter()
                .filter_map(|pool| {
                    Some(PoolPlan {
                        cidr: pool.cidr.value()?.v4()?,
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
                vxlan_mtu: tunnel.vxlan_mtu,
                ipip_mtu: tunnel.ipip_mtu,
            },
            remotes: remotes(node, blocks, &mut routing_problems),
            policy: policy(spec, &mut policy_problems),
            nftables_refresh_seconds: spec.agent.nftables_refresh_seconds,
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
        let (Some(cidr), Some(node_ip)) = (
            block.cidr.value().and_then(|c| c.v4()),
            block.node_address.value().and_then(|n| n.v4()).map(|n| n.addr()),
        ) else {
            continue;
        };
        out.push(RemoteBlock {
            cidr,
            node: block.node.clone(),
            node_ip,
            tunnel_address: block.tunnel_address.as_ref().and_then(|a| match a.value() {
                Some(std::net::IpAddr::V4(address)) => Some(*address),
                _ => None,
            }),
            vtep_mac: block.vtep_mac.as_ref().and_then(|mac| mac.value().copied()),
        });
    }
    out
}

fn policy(spec: &NodeNetworkSpec, problems: &mut Vec<String>) -> PolicyPlan {
    let policy = &spec.policy;
    let mut tainted = Vec::new();
    let sets = policy
        .ip_sets
        .iter()
        .enumerate()
        .map(|(index, set)| {
            let decoded: Vec<IpSetMember> = set
                .members
                .iter()
                .enumerate()
                .filter_map(|(at, member)| {
                    set_member(set, member, &format!("spec.policy.ipSets[{index}].members[{at}]")).ok().copied()
                })
                .collect();
            if decoded.len() != set.members.len() {
                tainted.push(set.name.as_str());
            }
            let members = match set.kind {
                IpSetKind::Addresses => SetMembers::Addresses(
                    decoded
                        .iter()
                        .filter_map(|m| if let IpSetMember::Address(net) = m { net.v4() } else { None })
                        .collect(),
                ),
                IpSetKind::AddressPorts => SetMembers::AddressPorts(
                    decoded
                        .iter()
                        .filter_map(|m| match m {
                            IpSetMember::Port(m) => match m.addr {
                                std::net::IpAddr::V4(addr) => Some((addr, m.proto, m.port)),
                                std::net::IpAddr::V6(_) => None,
                            },
                            IpSetMember::Address(_) => None,
                        })
                        .collect(),
                ),
            };
            SetPlan { name: set.name.clone(), members }
        })
        .collect();
    let policies = policy
        .policies
        .iter()
        .filter(|compiled| {
            let why = left_out(compiled, &tainted);
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
    PolicyPlan {
        default_endpoint_to_host_action: policy.default_endpoint_to_host_action,
        failsafe_inbound: policy
            .failsafe_inbound
            .iter()
            // One that does not decode is reported by `node_network_value_errors` above.
            .filter_map(|port| port.decode("").ok())
            .filter_map(|failsafe| match failsafe.net {
                None => Some((failsafe, None)),
                Some(net) => net.v4().map(|net| (failsafe, Some(net))),
            })
            .collect(),
        endpoints: policy.endpoints.clone(),
        policies,
        sets,
    }
}

/// Why a policy cannot be programmed as compiled: a net that does not decode, or a set with a
/// member that does not.
fn left_out(policy: &CompiledPolicy, tainted: &[&str]) -> Option<String> {
    let sides = policy.ingress.iter().chain(&policy.egress).flat_map(|rule| [&rule.source, &rule.destination]);
    for side in sides {
        if let Some(net) = side.nets.iter().chain(&side.not_nets).find(|net| net.value().is_none()) {
            return Some(format!("net {:?} does not decode", net.as_str()));
        }
        if let Some(set) = names(side).find(|name| tainted.contains(name)) {
            return Some(format!("set {set} has a member that does not decode"));
        }
    }
    None
}

fn names(side: &CompiledMatch) -> impl Iterator<Item = &str> {
    side.sets.iter().chain(&side.not_sets).chain(&side.named_port_set).map(String::as_str)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
