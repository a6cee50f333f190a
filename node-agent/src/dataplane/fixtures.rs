//! Short builders for dataplane test fixtures (test-only).

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::common::EncapsulationMode;
use gingham_crds::api::nodenetwork::{NodeNetworkSpec, PoolRouting};
use gingham_crds::api::span::NodeSpan;

use super::NodeView;
use super::nft::build::ruleset;
use super::nft::model::Ruleset;
use super::plan::NodePlan;
use crate::endpoint::LocalEndpoint;

/// This node's name in fixtures.
pub const NODE: &str = "node-a";

/// This node's tunnel address in fixtures (IPAM's, from the [`spec`]'s tunnel block).
pub const TUNNEL: Option<std::net::Ipv4Addr> = Some(std::net::Ipv4Addr::new(10, 0, 0, 0));

/// A node spec at `192.168.1.2/24` owning `10.0.0.0/26`, with a VTEP.
pub fn spec() -> NodeNetworkSpec {
    let mut spec = NodeNetworkSpec {
        address: Some("192.168.1.2/24".into()),
        blocks: vec!["10.0.0.0/26".into()],
        ..NodeNetworkSpec::default()
    };
    spec.tunnel.blocks = vec!["10.0.0.0/26".into()];
    spec.tunnel.vtep_mac = Some("02:00:00:00:00:0a".into());
    spec
}

/// This node's IPv6 VTEP address in fixtures (from the [`dual_stack`] spec's IPv6 tunnel block).
pub const TUNNEL6: Option<std::net::Ipv6Addr> = Some(std::net::Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 0));

/// [`spec`] with IPv6 too: `fd00:10::2/64`, owning `fd00:100::/122` (its IPv6 tunnel block), an
/// IPv6 VTEP MAC, and a VXLAN pool of each family.
pub fn dual_stack(vxlan6: EncapsulationMode) -> NodeNetworkSpec {
    let mut spec = spec();
    spec.address6 = Some("fd00:10::2/64".into());
    spec.blocks.push("fd00:100::/122".into());
    spec.tunnel.blocks6 = vec!["fd00:100::/122".into()];
    spec.tunnel.vtep_mac_v6 = Some("02:00:00:00:01:0a".into());
    spec.pools = vec![
        pool("10.0.0.0/16", EncapsulationMode::Always, EncapsulationMode::Never),
        pool("fd00:100::/48", vxlan6, EncapsulationMode::Never),
    ];
    spec
}

/// [`dual_stack`] without any IPv4: no address, no IPv4 block, pool or VTEP.
pub fn ipv6_only(vxlan6: EncapsulationMode) -> NodeNetworkSpec {
    let mut spec = dual_stack(vxlan6);
    spec.address = None;
    spec.blocks.retain(|b| b.as_str().contains(':'));
    spec.pools.retain(|p| p.cidr.as_str().contains(':'));
    spec.tunnel.blocks.clear();
    spec.tunnel.vtep_mac = None;
    spec
}

/// [`remote_blocks`] and the IPv6 blocks of the same nodes: node-b on this node's IPv6 subnet,
/// node-c on another; each IPv6 block carries its node's IPv6 address, VTEP and VTEP MAC.
pub fn remote_blocks_dual() -> Vec<IPAMBlockSpec> {
    let mut blocks = remote_blocks();
    blocks.extend([
        block("fd00:100::/122", NODE, "fd00:10::2/64", "fd00:100::", "02:00:00:00:01:0a"),
        block("fd00:100:0:1::/122", "node-b", "fd00:10::3/64", "fd00:100:0:1::", "02:00:00:00:01:0b"),
        block("fd00:100:0:2::/122", "node-c", "fd00:20::4/64", "fd00:100:0:2::", "02:00:00:00:01:0c"),
    ]);
    blocks
}

/// A pool with the given encapsulation modes.
pub fn pool(cidr: &str, vxlan: EncapsulationMode, ipip: EncapsulationMode) -> PoolRouting {
    PoolRouting {
        name: format!("pool-{cidr}"),
        cidr: cidr.into(),
        vxlan_mode: vxlan,
        ipip_mode: ipip,
        ..Default::default()
    }
}

/// A remote node's block.
pub fn block(cidr: &str, node: &str, node_address: &str, tunnel: &str, mac: &str) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: cidr.into(),
        node: node.into(),
        pool: "pool".into(),
        node_address: node_address.into(),
        tunnel_address: Some(tunnel.into()),
        vtep_mac: Some(mac.into()),
        releasing: false,
    }
}

/// Two remote blocks: node-b on this subnet, node-c on another.
pub fn remote_blocks() -> Vec<IPAMBlockSpec> {
    vec![
        block("10.0.0.0/26", NODE, "192.168.1.2/24", "10.0.0.0", "02:00:00:00:00:0a"),
        block("10.0.1.0/26", "node-b", "192.168.1.3/24", "10.0.1.0", "02:00:00:00:00:0b"),
        block("10.0.2.0/26", "node-c", "192.168.2.4/24", "10.0.2.0", "02:00:00:00:00:0c"),
    ]
}

/// A local pod.
pub fn endpoint(pod: &str, address: [u8; 4]) -> LocalEndpoint {
    LocalEndpoint {
        namespace: "default".into(),
        pod: pod.into(),
        uid: None,
        container_id: format!("c-{pod}"),
        interface: gingham_crds::naming::endpoint_interface_name("default", pod),
        address: Some(address.into()),
        address6: None,
    }
}

/// The spec of the policy fixtures: a natOutgoing VXLAN pool and two inbound failsafe ports.
pub fn policy_spec() -> NodeNetworkSpec {
    let mut spec = spec();
    spec.pools = vec![PoolRouting {
        nat_outgoing: true,
        ..pool("10.0.0.0/16", EncapsulationMode::Always, EncapsulationMode::Never)
    }];
    spec.policy.failsafe_inbound = gingham_crds::api::felix::default_failsafe_inbound().into_iter().take(2).collect();
    spec
}

/// A span: `web` has ingress policy `default/allow-http`, `db` is known with no policies, and one
/// Log-then-Deny egress policy.
pub fn policy_span() -> NodeSpan {
    use gingham_crds::api::nodenetwork::{
        CompiledMatch, CompiledPolicy, CompiledRule, EndpointPolicy, IcmpMatch, IpSet, IpSetKind, PortRange,
        TierPolicies,
    };
    use gingham_crds::api::policy::Action;
    let ip_sets = vec![
        IpSet {
            name: "clients".into(),
            kind: IpSetKind::Addresses,
            members: vec!["10.0.1.0/26".into(), "10.0.0.9".into()],
            ..IpSet::default()
        }
        .into(),
        IpSet {
            name: "web_http".into(),
            kind: IpSetKind::AddressPorts,
            members: vec!["10.0.0.5,TCP,8080".into()],
            ..IpSet::default()
        }
        .into(),
    ];
    let http = CompiledRule {
        action: Action::Allow,
        protocol: Some(6),
        source: CompiledMatch { sets: vec!["clients".into()], ..Default::default() },
        destination: CompiledMatch {
            ports: vec![PortRange { first: 80, last: 80 }, PortRange { first: 8000, last: 8100 }],
            named_port_set: Some("web_http".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ping = CompiledRule {
        action: Action::Allow,
        protocol: Some(1),
        icmp: Some(IcmpMatch { type_: 8, ..IcmpMatch::default() }),
        ..Default::default()
    };
    let log = CompiledRule { action: Action::Log, ..Default::default() };
    let deny = CompiledRule {
        action: Action::Deny,
        destination: CompiledMatch { nets: vec!["192.168.0.0/16".into()], ..Default::default() },
        ..Default::default()
    };
    let policies = vec![
        CompiledPolicy { name: "default/allow-http".into(), ingress: vec![http, ping], egress: vec![] }.into(),
        CompiledPolicy { name: "global/audit".into(), ingress: vec![], egress: vec![log, deny] }.into(),
    ];
    let endpoints = vec![
        EndpointPolicy {
            name: "default/web".into(),
            uid: None,
            ingress: vec![TierPolicies::default_tier(["default/allow-http"])],
            egress: vec![TierPolicies::default_tier(["global/audit"])],
            ..EndpointPolicy::default()
        },
        EndpointPolicy { name: "default/db".into(), ..EndpointPolicy::default() },
    ];
    NodeSpan { endpoints, policies, ip_sets, ..NodeSpan::default() }
}

/// The plan of `spec` and `span` with no other node's blocks.
pub fn plan(spec: &NodeNetworkSpec, span: &NodeSpan) -> NodePlan {
    NodePlan::build(NODE, spec, Some(span), &[])
}

/// The nftables ruleset of `spec` and `span` for `endpoints`.
pub fn rules(spec: &NodeNetworkSpec, span: &NodeSpan, endpoints: &[LocalEndpoint]) -> Ruleset {
    let plan = plan(spec, span);
    let policy = plan.policy.as_ref().unwrap_or_else(|| unreachable!("a plan with a span has a policy"));
    ruleset(&NodeView { plan: &plan, endpoints, tunnel_address: TUNNEL, tunnel_address6: None }, policy)
}
