#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]

use crate::dataplane::plan::NodePlan;
use gingham_crds::api::common::EncapsulationMode::{Always, CrossSubnet, Never};

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::nodenetwork::NodeNetworkSpec;

use super::*;
use crate::dataplane::fixtures::{NODE, TUNNEL, endpoint, pool, remote_blocks, spec};

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
    let view = NodeView { plan: &NodePlan::build(NODE, &spec, None, &blocks), endpoints: &[], tunnel_address: TUNNEL };
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
        let view = NodeView { plan: &NodePlan::build(NODE, &spec, None, &[]), endpoints: &[], tunnel_address: TUNNEL };
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
    let view = NodeView { plan: &NodePlan::build(NODE, &spec, None, &[]), endpoints: &[], tunnel_address: TUNNEL };
    let tunnels: Vec<TunnelSpec> =
        desired_tunnels(&view, &HostFacts { underlay_mtu: None, ipip: false }).into_iter().collect();
    assert_eq!(tunnels.len(), 1);
    assert_eq!(tunnels[0].kind, TunnelKind::Vxlan { vni: 77, port: 8472, local: Ipv4Addr::new(192, 168, 1, 2) });
    assert_eq!(tunnels[0].mtu, 1400);
    assert_eq!(tunnels[0].mac.map(|m| m.to_string()).as_deref(), Some("02:00:00:00:00:0a"));
    spec.tunnel.vxlan_mtu = None;
    let view = NodeView { plan: &NodePlan::build(NODE, &spec, None, &[]), endpoints: &[], tunnel_address: TUNNEL };
    let fallback = desired_tunnels(&view, &HostFacts { underlay_mtu: None, ipip: false });
    assert_eq!(fallback.iter().map(|t| t.mtu).collect::<Vec<_>>(), vec![1450]);
}

#[test]
fn neighbours_and_fdb_cover_only_vxlan_remotes() {
    let mut spec = spec();
    spec.pools = vec![pool("10.0.0.0/16", CrossSubnet, Never)];
    let blocks = remote_blocks();
    let view = NodeView { plan: &NodePlan::build(NODE, &spec, None, &blocks), endpoints: &[], tunnel_address: TUNNEL };
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
    let view =
        NodeView { plan: &NodePlan::build(NODE, &spec, None, &[]), endpoints: &endpoints, tunnel_address: TUNNEL };
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
        let view =
            NodeView { plan: &NodePlan::build(NODE, &spec, None, &blocks), endpoints: &[], tunnel_address: TUNNEL };
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
    let view = NodeView { plan: &NodePlan::build(NODE, &spec, None, &blocks), endpoints: &[], tunnel_address: TUNNEL };
    let routes = shown(&desired_routes(&view, &FACTS));
    assert!(routes.contains(&"10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham onlink".to_string()), "{routes:?}");
    assert!(!routes.iter().any(|r| r.starts_with("10.0.2.0")), "{routes:?}");
    assert_eq!(desired_neighbours(&view).len(), 1);
}
