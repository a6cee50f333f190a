#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]

use crate::dataplane::plan::NodePlan;
use gingham_crds::api::common::EncapsulationMode::{Always, CrossSubnet, Never};

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::nodenetwork::NodeNetworkSpec;

use super::*;
use crate::dataplane::fixtures::{
    NODE, TUNNEL, TUNNEL6, dual_stack, endpoint, ipv6_only, pool, remote_blocks, remote_blocks_dual, spec,
};

const FACTS: HostFacts = HostFacts { underlay_mtu: Some(9000), ipip: true };

fn shown(routes: &BTreeSet<RouteSpec>) -> Vec<String> {
    routes.iter().map(ToString::to_string).collect()
}

#[test]
fn routes_follow_the_pool_mode() {
    let cases: &[(&str, EncapsulationMode, EncapsulationMode, bool, &[&str])] = &[
        (
            "vxlan always",
            Always,
            Never,
            true,
            &["10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham onlink", "10.0.2.0/26 via 10.0.2.0 dev vxlan.gingham onlink"],
        ),
        (
            "vxlan cross-subnet",
            CrossSubnet,
            Never,
            true,
            &["10.0.1.0/26 via 192.168.1.3", "10.0.2.0/26 via 10.0.2.0 dev vxlan.gingham onlink"],
        ),
        (
            "ipip always",
            Never,
            Always,
            true,
            &["10.0.1.0/26 via 192.168.1.3 dev tunl0 onlink", "10.0.2.0/26 via 192.168.2.4 dev tunl0 onlink"],
        ),
        (
            "ipip cross-subnet",
            Never,
            CrossSubnet,
            true,
            &["10.0.1.0/26 via 192.168.1.3", "10.0.2.0/26 via 192.168.2.4 dev tunl0 onlink"],
        ),
        ("ipip without kernel support", Never, Always, false, &[]),
        ("no encapsulation: BIRD's job", Never, Never, true, &[]),
    ];
    for (name, vxlan, ipip, has_ipip, remote) in cases {
        let mut spec = spec();
        spec.pools = vec![pool("10.0.0.0/16", *vxlan, *ipip)];
        let blocks = remote_blocks();
        let endpoints = [endpoint("web", [10, 0, 0, 5])];
        let view = NodeView {
            plan: &NodePlan::build(NODE, &spec, None, &blocks),
            endpoints: &endpoints,
            tunnel_address: TUNNEL,
            tunnel_address6: None,
        };
        let facts = HostFacts { ipip: *has_ipip, ..FACTS };
        let mut expected =
            vec![format!("10.0.0.5/32 dev {} scope link", endpoints[0].interface), "blackhole 10.0.0.0/26".into()];
        expected.extend(remote.iter().map(ToString::to_string));
        let mut got = shown(&desired_routes(&view, &facts));
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn releasing_blocks_stay_routed_and_blocks_outside_pools_are_not() {
    let mut spec = spec();
    spec.pools = vec![pool("10.0.0.0/16", Always, Never)];
    let mut blocks = remote_blocks();
    blocks[1].releasing = true;
    blocks[2].node_address = "192.168.2.4".into();
    blocks.push(super::super::fixtures::block(
        "172.16.0.0/26",
        "node-d",
        "192.168.1.9/24",
        "172.16.0.0",
        "02:00:00:00:00:0d",
    ));
    let view = NodeView {
        plan: &NodePlan::build(NODE, &spec, None, &blocks),
        endpoints: &[],
        tunnel_address: TUNNEL,
        tunnel_address6: None,
    };
    let routes = shown(&desired_routes(&view, &FACTS));
    assert!(routes.contains(&"10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham onlink".to_string()), "{routes:?}");
    assert!(
        routes.contains(&"10.0.2.0/26 via 10.0.2.0 dev vxlan.gingham onlink".to_string()),
        "bare node address: {routes:?}"
    );
    assert!(!routes.iter().any(|r| r.starts_with("172.16.")), "{routes:?}");
}

#[test]
fn devices_exist_only_while_a_pool_needs_them() {
    let cases = [
        ("vxlan", Always, Never, vec!["vxlan.gingham mtu 8950"]),
        ("ipip", Never, CrossSubnet, vec!["tunl0 mtu 8980"]),
        ("none", Never, Never, vec![]),
    ];
    for (name, vxlan, ipip, expected) in cases {
        let mut spec = spec();
        spec.pools = vec![pool("10.0.0.0/16", vxlan, ipip)];
        let view = NodeView {
            plan: &NodePlan::build(NODE, &spec, None, &[]),
            endpoints: &[],
            tunnel_address: TUNNEL,
            tunnel_address6: None,
        };
        let got: Vec<String> =
            desired_tunnels(&view, &FACTS).iter().map(|t| format!("{} mtu {}", t.name, t.mtu)).collect();
        assert_eq!(got, expected, "{name}");
        let addresses: Vec<String> = desired_addresses(&view, &FACTS).iter().map(|a| a.address.to_string()).collect();
        assert_eq!(addresses.len(), expected.len(), "{name}");
        assert!(addresses.iter().all(|a| a == "10.0.0.0/32"), "{name}: {addresses:?}");
    }
}

#[test]
fn vxlan_device_settings_come_from_the_spec() {
    let mut spec = spec();
    spec.pools = vec![pool("10.0.0.0/16", Always, Never)];
    spec.tunnel.vxlan_vni = 77;
    spec.tunnel.vxlan_port = 8472;
    spec.tunnel.vxlan_mtu = Some(1400);
    let view = NodeView {
        plan: &NodePlan::build(NODE, &spec, None, &[]),
        endpoints: &[],
        tunnel_address: TUNNEL,
        tunnel_address6: None,
    };
    let tunnels: Vec<TunnelSpec> =
        desired_tunnels(&view, &HostFacts { underlay_mtu: None, ipip: false }).into_iter().collect();
    assert_eq!(tunnels.len(), 1);
    assert_eq!(tunnels[0].kind, TunnelKind::Vxlan { vni: 77, port: 8472, local: "192.168.1.2".parse().unwrap() });
    assert_eq!(tunnels[0].mtu, 1400);
    assert_eq!(tunnels[0].mac.map(|m| m.to_string()).as_deref(), Some("02:00:00:00:00:0a"));
    spec.tunnel.vxlan_mtu = None;
    let view = NodeView {
        plan: &NodePlan::build(NODE, &spec, None, &[]),
        endpoints: &[],
        tunnel_address: TUNNEL,
        tunnel_address6: None,
    };
    let fallback = desired_tunnels(&view, &HostFacts { underlay_mtu: None, ipip: false });
    assert_eq!(fallback.iter().map(|t| t.mtu).collect::<Vec<_>>(), vec![1450]);
}

#[test]
fn neighbours_and_fdb_cover_only_vxlan_remotes() {
    let mut spec = spec();
    spec.pools = vec![pool("10.0.0.0/16", CrossSubnet, Never)];
    let blocks = remote_blocks();
    let view = NodeView {
        plan: &NodePlan::build(NODE, &spec, None, &blocks),
        endpoints: &[],
        tunnel_address: TUNNEL,
        tunnel_address6: None,
    };
    let neighbours: Vec<String> =
        desired_neighbours(&view).iter().map(|n| format!("{} {}", n.address, n.mac)).collect();
    assert_eq!(neighbours, vec!["10.0.2.0 02:00:00:00:00:0c"]);
    let fdb: Vec<String> = desired_fdb(&view).iter().map(|f| format!("{} {}", f.mac, f.destination)).collect();
    assert_eq!(fdb, vec!["02:00:00:00:00:0c 192.168.2.4"]);
}

#[test]
fn endpoints_get_proxy_arp_without_delay() {
    let spec = spec();
    let endpoints = [endpoint("web", [10, 0, 0, 5])];
    let view = NodeView {
        plan: &NodePlan::build(NODE, &spec, None, &[]),
        endpoints: &endpoints,
        tunnel_address: TUNNEL,
        tunnel_address6: None,
    };
    let name = &endpoints[0].interface;
    let got: Vec<String> = desired_sysctls(&view).iter().map(|s| format!("{}={}", s.path, s.value)).collect();
    assert_eq!(
        got,
        vec![
            format!("net/ipv4/conf/{name}/proxy_arp=1"),
            "net/ipv4/ip_forward=1".to_string(),
            format!("net/ipv4/neigh/{name}/proxy_delay=0"),
        ]
    );
}

#[test]
fn what_cannot_be_programmed_is_explained() {
    let cases: Vec<(&str, Box<dyn Fn(&mut NodeNetworkSpec, &mut Vec<IPAMBlockSpec>)>, bool, &str)> = vec![
        ("all fine", Box::new(|_, _| {}), true, ""),
        (
            "ipip without kernel support",
            Box::new(|s, _| s.pools[0] = pool("10.0.0.0/16", Never, Always)),
            false,
            "no IP-in-IP",
        ),
        ("ipip with kernel support", Box::new(|s, _| s.pools[0] = pool("10.0.0.0/16", Never, Always)), true, ""),
        ("no VTEP MAC", Box::new(|s, _| s.tunnel.vtep_mac = Some("nonsense".into())), true, "spec.tunnel.vtepMAC"),
        ("remote without VTEP", Box::new(|_, b| b[2].vtep_mac = None), true, "IPAMBlock 10.0.2.0/26 of node node-c"),
        ("bad address", Box::new(|s, _| s.address = Some("somewhere".into())), true, "spec.address"),
    ];
    for (name, change, ipip, expected) in cases {
        let mut spec = spec();
        spec.pools = vec![pool("10.0.0.0/16", Always, Never)];
        let mut blocks = remote_blocks();
        change(&mut spec, &mut blocks);
        let view = NodeView {
            plan: &NodePlan::build(NODE, &spec, None, &blocks),
            endpoints: &[],
            tunnel_address: TUNNEL,
            tunnel_address6: None,
        };
        let problems = problems(&view, &HostFacts { ipip, ..FACTS });
        if expected.is_empty() {
            assert!(problems.is_empty(), "{name}: {problems:?}");
        } else {
            assert!(problems.len() == 1 && problems[0].contains(expected), "{name}: {problems:?}");
        }
    }
}

#[test]
fn a_remote_block_without_vtep_is_not_routed_over_vxlan() {
    let mut spec = spec();
    spec.pools = vec![pool("10.0.0.0/16", Always, Never)];
    let mut blocks = remote_blocks();
    blocks[2].vtep_mac = None;
    let view = NodeView {
        plan: &NodePlan::build(NODE, &spec, None, &blocks),
        endpoints: &[],
        tunnel_address: TUNNEL,
        tunnel_address6: None,
    };
    let routes = shown(&desired_routes(&view, &FACTS));
    assert!(routes.contains(&"10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham onlink".to_string()), "{routes:?}");
    assert!(!routes.iter().any(|r| r.starts_with("10.0.2.0")), "{routes:?}");
    assert_eq!(desired_neighbours(&view).len(), 1);
}

/// A view of `spec` with the dual-stack remote blocks and both VTEP addresses.
fn dual_view<'a>(plan: &'a NodePlan, endpoints: &'a [crate::endpoint::LocalEndpoint]) -> NodeView<'a> {
    NodeView { plan, endpoints, tunnel_address: TUNNEL, tunnel_address6: TUNNEL6 }
}

fn ipv6(routes: &BTreeSet<RouteSpec>) -> Vec<String> {
    routes.iter().filter(|r| r.destination.addr().is_ipv6()).map(ToString::to_string).collect()
}

#[test]
fn ipv6_routes_follow_the_ipv6_pool_mode_and_cross_subnet_compares_ipv6_addresses() {
    let cases: &[(EncapsulationMode, &[&str])] = &[
        (
            Always,
            &[
                "blackhole fd00:100::/122",
                "fd00:100:0:1::/122 via fd00:100:0:1:: dev vxlan6.gingham onlink",
                "fd00:100:0:2::/122 via fd00:100:0:2:: dev vxlan6.gingham onlink",
            ],
        ),
        (
            // node-b shares fd00:10::/64 with this node: direct; node-c does not.
            CrossSubnet,
            &[
                "blackhole fd00:100::/122",
                "fd00:100:0:1::/122 via fd00:10::3",
                "fd00:100:0:2::/122 via fd00:100:0:2:: dev vxlan6.gingham onlink",
            ],
        ),
        (Never, &["blackhole fd00:100::/122"]),
    ];
    for (mode, expected) in cases {
        let plan = NodePlan::build(NODE, &dual_stack(*mode), None, &remote_blocks_dual());
        let routes = desired_routes(&dual_view(&plan, &[]), &FACTS);
        let (mut got, vteps): (Vec<String>, Vec<String>) = ipv6(&routes).into_iter().partition(|r| !r.contains("/128"));
        got.sort();
        assert_eq!(got, *expected, "{mode:?}");
        // A host route onto vxlan6.gingham per remote VTEP reached over VXLAN, so that the kernel
        // takes the onlink nexthop through it.
        let over_vxlan = expected.iter().filter(|r| r.contains("dev vxlan6.gingham")).count();
        assert_eq!(vteps.len(), over_vxlan, "{mode:?}: {vteps:?}");
        assert!(vteps.iter().all(|r| r.ends_with("/128 dev vxlan6.gingham scope link")), "{vteps:?}");
        let ipv4: Vec<String> =
            routes.iter().filter(|r| r.destination.addr().is_ipv4()).map(ToString::to_string).collect();
        assert_eq!(ipv4.len(), 3, "{mode:?}: the IPv4 pool (VXLAN Always) is routed as before: {ipv4:?}");
        assert!(problems(&dual_view(&plan, &[]), &FACTS).is_empty(), "{mode:?}");
    }
}

#[test]
fn a_dual_stack_node_has_a_vxlan_device_per_family_with_its_own_address_mac_and_mtu() {
    let mut spec = dual_stack(Always);
    spec.tunnel.vxlan_mtu_v6 = Some(1400);
    let plan = NodePlan::build(NODE, &spec, None, &remote_blocks_dual());
    let view = dual_view(&plan, &[]);
    let tunnels: Vec<String> = desired_tunnels(&view, &FACTS)
        .iter()
        .map(|t| {
            let TunnelKind::Vxlan { local, .. } = &t.kind else { panic!("VXLAN only") };
            format!("{} local {local} mtu {} mac {}", t.name, t.mtu, t.mac.map(|m| m.to_string()).unwrap_or_default())
        })
        .collect();
    assert_eq!(
        tunnels,
        [
            "vxlan.gingham local 192.168.1.2 mtu 8950 mac 02:00:00:00:00:0a",
            "vxlan6.gingham local fd00:10::2 mtu 1400 mac 02:00:00:00:01:0a",
        ]
    );
    let addresses: Vec<String> =
        desired_addresses(&view, &FACTS).iter().map(|a| format!("{} {}", a.device, a.address)).collect();
    assert_eq!(addresses, ["vxlan.gingham 10.0.0.0/32", "vxlan6.gingham fd00:100::/128"]);
    let neighbours: Vec<String> =
        desired_neighbours(&view).iter().map(|n| format!("{} {} {}", n.device, n.address, n.mac)).collect();
    assert_eq!(
        neighbours,
        [
            "vxlan.gingham 10.0.1.0 02:00:00:00:00:0b",
            "vxlan.gingham 10.0.2.0 02:00:00:00:00:0c",
            "vxlan6.gingham fd00:100:0:1:: 02:00:00:00:01:0b",
            "vxlan6.gingham fd00:100:0:2:: 02:00:00:00:01:0c",
        ]
    );
    let fdb: Vec<String> =
        desired_fdb(&view).iter().map(|f| format!("{} {} {}", f.device, f.mac, f.destination)).collect();
    assert_eq!(
        fdb,
        [
            "vxlan.gingham 02:00:00:00:00:0b 192.168.1.3",
            "vxlan.gingham 02:00:00:00:00:0c 192.168.2.4",
            "vxlan6.gingham 02:00:00:00:01:0b fd00:10::3",
            "vxlan6.gingham 02:00:00:00:01:0c fd00:20::4",
        ]
    );
    spec.tunnel.vxlan_mtu_v6 = None;
    let plan = NodePlan::build(NODE, &spec, None, &[]);
    let mtus: Vec<u32> = desired_tunnels(&dual_view(&plan, &[]), &FACTS).iter().map(|t| t.mtu).collect();
    assert_eq!(mtus, [9000 - 50, 9000 - 70], "unset: the underlay's less 70 over IPv6");
}

#[test]
fn an_ipv6_only_node_gets_its_ipv6_routes_and_its_vxlan6_device_and_no_ipv4() {
    let plan = NodePlan::build(NODE, &ipv6_only(Always), None, &remote_blocks_dual());
    assert_eq!(plan.address, None);
    let endpoints = [endpoint("web", [10, 0, 0, 5])];
    let view = NodeView { tunnel_address: None, ..dual_view(&plan, &endpoints) };
    let routes = desired_routes(&view, &FACTS);
    let remote: Vec<String> =
        ipv6(&routes).into_iter().filter(|r| r.contains("vxlan6.gingham") && !r.contains("/128")).collect();
    assert_eq!(remote.len(), 2, "{routes:?}");
    assert!(
        routes
            .iter()
            .all(|r| r.destination.addr().is_ipv6() || r.target == RouteTarget::Device(endpoints[0].interface.clone())),
        "no IPv4 block route: {routes:?}"
    );
    let tunnels: Vec<String> = desired_tunnels(&view, &FACTS).iter().map(|t| t.name.clone()).collect();
    assert_eq!(tunnels, ["vxlan6.gingham"]);
    assert_eq!(desired_addresses(&view, &FACTS).len(), 1);
    assert!(desired_fdb(&view).iter().all(|f| f.destination.is_ipv6()) && desired_fdb(&view).len() == 2);
    assert!(
        desired_sysctls(&view).contains(&SysctlSpec { path: "net/ipv6/conf/all/forwarding".into(), value: "1".into() })
    );
    assert_eq!(problems(&view, &FACTS), Vec::<String>::new(), "no IPv4 address is not a problem without IPv4 blocks");
}

#[test]
fn ipv6_problems_name_the_ipv6_fields() {
    type Change = fn(&mut NodeNetworkSpec, &mut Vec<IPAMBlockSpec>, &mut Option<std::net::Ipv6Addr>);
    let cases: &[(&str, Change, &str)] = &[
        ("no IPv6 VTEP address", |_, _, t| *t = None, "spec.tunnel.blocks6"),
        ("no IPv6 VTEP MAC", |s, _, _| s.tunnel.vtep_mac_v6 = None, "spec.tunnel.vtepMACV6"),
        ("an IPv6 block without address6", |s, _, _| s.address6 = None, "spec.address6"),
        (
            "a remote IPv6 block without VTEP",
            |_, b, _| b[5].vtep_mac = None,
            "IPAMBlock fd00:100:0:2::/122 of node node-c lacks a valid IPv6",
        ),
    ];
    for (name, change, expected) in cases {
        let (mut spec, mut blocks, mut tunnel6) = (dual_stack(Always), remote_blocks_dual(), TUNNEL6);
        change(&mut spec, &mut blocks, &mut tunnel6);
        let plan = NodePlan::build(NODE, &spec, None, &blocks);
        let view = NodeView { tunnel_address6: tunnel6, ..dual_view(&plan, &[]) };
        let problems = problems(&view, &FACTS);
        assert!(problems.len() == 1 && problems[0].contains(expected), "{name}: {problems:?}");
        let tunnels: Vec<String> = desired_tunnels(&view, &FACTS).iter().map(|t| t.name.clone()).collect();
        assert!(tunnels.contains(&"vxlan.gingham".to_string()), "{name}: IPv4 is untouched: {tunnels:?}");
    }
}

#[test]
fn ipip_is_ipv4_only() {
    let mut spec = dual_stack(Never);
    spec.pools[1].ipip_mode = Always;
    let plan = NodePlan::build(NODE, &spec, None, &remote_blocks_dual());
    let view = dual_view(&plan, &[]);
    assert_eq!(
        ipv6(&desired_routes(&view, &FACTS)),
        ["blackhole fd00:100::/122"],
        "an IPv6 pool's ipipMode is not used"
    );
    assert!(!desired_tunnels(&view, &FACTS).iter().any(|t| t.name == IPIP_DEVICE));
}
