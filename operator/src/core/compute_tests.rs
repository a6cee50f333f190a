//! `compute` as a whole: one small cluster, every part of the desired state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::{FelixConfiguration, FelixConfigurationSpec, Wire};

use super::testkit::{Meta, PoolExt, ipam_status, meta, node, pool};
use super::{ClusterSnapshot, OperatorSettings, compute};

fn cluster() -> ClusterSnapshot {
    let felix = FelixConfiguration {
        metadata: meta(None, "default"),
        spec: FelixConfigurationSpec {
            vxlan_vni: Some(5000),
            route_refresh_interval: Some("1m".into()),
            ..FelixConfigurationSpec::default()
        },
    }
    .uid("felix-uid");
    ClusterSnapshot {
        pools: vec![pool("main", "10.0.0.0/16").vxlan().created(1), pool("late", "10.0.1.0/24").created(2)],
        nodes: vec![node("a", "192.168.0.1/24"), node("b", "192.168.0.2/24")],
        felix_configurations: vec![felix],
        node_statuses: [("a".to_string(), ipam_status(7, 64, false))].into(),
        ..ClusterSnapshot::default()
    }
}

#[test]
fn every_node_gets_its_network_and_every_block_its_object() {
    let desired = compute(&cluster(), &OperatorSettings::default());
    assert_eq!(desired.node_networks.keys().collect::<Vec<_>>(), ["a", "b"]);
    let a = &desired.node_networks["a"];
    assert_eq!(a.address.as_ref().map(Wire::as_str), Some("192.168.0.1/24"));
    assert_eq!(a.blocks, ["10.0.0.0/26"]);
    assert_eq!(
        a.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["main"],
        "the overlapping pool is not used"
    );
    assert_eq!((a.tunnel.vxlan_vni, a.tunnel.blocks.as_slice()), (5000, ["10.0.0.0/26".into()].as_slice()));
    assert!(a.tunnel.vtep_mac.is_some());
    assert_eq!(a.agent.route_refresh_seconds, 60);
    assert!(a.bgp.is_some());
    assert_eq!(desired.spans["a"].bgp_peers.iter().map(|p| p.address.as_str()).collect::<Vec<_>>(), ["192.168.0.2"]);
    assert_eq!(a.policy.failsafe_inbound, gingham_crds::api::felix::default_failsafe_inbound());
    assert_eq!(desired.blocks.len(), 2);
    assert_eq!(desired.blocks["10-0-0-64-26"].node, "b");
}

#[test]
fn pools_report_status_and_problems() {
    let desired = compute(&cluster(), &OperatorSettings::default());
    let main = &desired.pool_statuses["main"];
    assert_eq!((main.blocks_in_use, main.addresses_in_use), (2, 7));
    assert_eq!(desired.pool_statuses["late"].conditions[0].reason, "CIDROverlap");
    let reasons: Vec<(&str, &str)> = desired.problems.iter().map(|p| (p.name.as_str(), p.reason.as_str())).collect();
    assert_eq!(reasons, [("late", "CIDROverlap")]);
}

#[test]
fn the_daemonset_is_owned_by_the_default_felix_configuration() {
    let desired = compute(&cluster(), &OperatorSettings::default());
    let ds = desired.agent_daemon_set.unwrap();
    assert_eq!(ds.metadata.owner_references.unwrap()[0].uid, "felix-uid");
}

#[test]
fn an_empty_cluster_wants_only_the_agent() {
    let desired = compute(&ClusterSnapshot::default(), &OperatorSettings::default());
    assert!(desired.node_networks.is_empty() && desired.blocks.is_empty() && desired.problems.is_empty());
    assert!(desired.agent_daemon_set.is_some());
}

/// A dual-stack cluster with an IPv6-only node: every NodeNetwork holds the node's addresses of
/// both families, blocks and tunnel sources per family, and pools of both families (each family's
/// pools are the inside for its natOutgoing); each node's span peers per family; compute as a
/// whole agrees with the incremental engine (the engine tests' oracle).
#[test]
fn a_dual_stack_cluster_gets_both_families_in_every_part() {
    let mut v6 = pool("v6", "fd00:244::/64").vxlan().created(3);
    v6.spec.nat_outgoing = true;
    let snapshot = ClusterSnapshot {
        pools: vec![pool("v4", "10.0.0.0/16").vxlan().created(1), v6],
        nodes: vec![node("a", "192.168.0.1/24,fd00:10::1/64"), node("c", "fd00:10::3/64")],
        ..ClusterSnapshot::default()
    };
    let desired = compute(&snapshot, &OperatorSettings::default());
    let (a, c) = (&desired.node_networks["a"], &desired.node_networks["c"]);
    assert_eq!(
        (a.address.as_ref().map(Wire::as_str), a.address6.as_ref().map(Wire::as_str)),
        (Some("192.168.0.1/24"), Some("fd00:10::1/64"))
    );
    assert_eq!(a.blocks, ["10.0.0.0/26", "fd00:244::/122"]);
    assert_eq!(
        (a.tunnel.blocks.as_slice(), a.tunnel.blocks6.as_slice()),
        (["10.0.0.0/26".into()].as_slice(), ["fd00:244::/122".into()].as_slice())
    );
    assert!(a.tunnel.vtep_mac.is_some() && a.tunnel.vtep_mac_v6.is_some());
    let pools: Vec<(&str, bool)> = a.pools.iter().map(|p| (p.cidr.as_str(), p.nat_outgoing)).collect();
    assert_eq!(pools, [("10.0.0.0/16", false), ("fd00:244::/64", true)]);
    assert_eq!((c.address.as_ref(), c.blocks.as_slice()), (None, ["fd00:244::40/122".into()].as_slice()));
    assert_eq!(c.bgp.as_ref().map(|b| b.router_id.to_string()), Some(super::facts::hashed_router_id("c").to_string()));
    let peers = |node: &str| desired.spans[node].bgp_peers.iter().map(|p| p.address.to_string()).collect::<Vec<_>>();
    assert_eq!((peers("a"), peers("c")), (vec!["fd00:10::3".to_string()], vec!["fd00:10::1".to_string()]));
    assert_eq!(desired.blocks["fd00-244---122"].node_address.as_str(), "fd00:10::1/64");
    let reasons: Vec<(&str, &str)> = desired.problems.iter().map(|p| (p.name.as_str(), p.reason.as_str())).collect();
    assert_eq!(reasons, [("c", "NoAddressForPool")], "c has no IPv4 address for pool v4");
    for spec in desired.node_networks.values() {
        assert_eq!(gingham_crds::validate::validate_node_network(spec), Ok(()));
    }
}

/// A pod's pool annotations reach its span entry as the pools' CIDRs (names resolved), before
/// its CNI ADD, and a pod without one of them inherits its namespace's (as in Calico); a name that
/// is no pool, or text that is no JSON list, is kept as written (so the agent fails the ADD naming
/// it) and reported as a Problem on the Pod or the Namespace.
#[test]
fn pool_annotations_become_the_span_entrys_pools_and_bad_ones_problems() {
    use gingham_crds::api::nodenetwork::{IPV4_POOLS_ANNOTATION, IPV6_POOLS_ANNOTATION};

    use super::testkit::{namespace, pod, scheduled};
    let mut snapshot = cluster();
    snapshot.pools.push(pool("six", "fd00:10::/48").created(3));
    snapshot.namespaces = vec![
        namespace("tenant")
            .annotate(IPV4_POOLS_ANNOTATION, r#"["main"]"#)
            .annotate(IPV6_POOLS_ANNOTATION, r#"["six"]"#),
        namespace("broken").annotate(IPV4_POOLS_ANNOTATION, r#"["nope"]"#),
    ];
    snapshot.pods = vec![
        scheduled(pod("ns", "named").annotate(IPV4_POOLS_ANNOTATION, r#"["main"]"#), "a", false),
        scheduled(
            pod("ns", "both")
                .annotate(IPV4_POOLS_ANNOTATION, r#"["10.0.0.0/16"]"#)
                .annotate(IPV6_POOLS_ANNOTATION, r#"["six"]"#),
            "a",
            false,
        ),
        scheduled(pod("ns", "unknown").annotate(IPV4_POOLS_ANNOTATION, r#"["green"]"#), "a", false),
        scheduled(pod("ns", "garbled").annotate(IPV6_POOLS_ANNOTATION, "six"), "a", false),
        scheduled(pod("ns", "plain"), "a", false),
        scheduled(pod("tenant", "child"), "a", false),
        scheduled(pod("tenant", "own").annotate(IPV4_POOLS_ANNOTATION, r#"["green"]"#), "a", false),
    ];
    let desired = compute(&snapshot, &OperatorSettings::default());
    let pools = |name: &str| {
        let entry = desired.spans["a"].endpoints.iter().find(|e| e.name == name).unwrap();
        let text =
            |pools: &[Wire<gingham_crds::api::Cidr>]| pools.iter().map(|p| p.as_str().to_string()).collect::<Vec<_>>();
        (text(&entry.ipv4_pools), text(&entry.ipv6_pools))
    };
    let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases = [
        ("ns/named", list(&["10.0.0.0/16"]), list(&[])),
        ("ns/both", list(&["10.0.0.0/16"]), list(&["fd00:10::/48"])),
        ("ns/unknown", list(&["green"]), list(&[])),
        ("ns/garbled", list(&[]), list(&["six"])),
        ("ns/plain", list(&[]), list(&[])),
        ("tenant/child", list(&["10.0.0.0/16"]), list(&["fd00:10::/48"])),
        ("tenant/own", list(&["green"]), list(&["fd00:10::/48"])),
    ];
    for (name, v4, v6) in cases {
        assert_eq!(pools(name), (v4, v6), "{name}");
    }
    let problems: Vec<(&str, &str, &str)> = desired
        .problems
        .iter()
        .filter(|p| p.reason == "InvalidPoolAnnotation")
        .map(|p| (p.kind.as_str(), p.name.as_str(), p.reason.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("Namespace", "broken", "InvalidPoolAnnotation"),
            ("Pod", "garbled", "InvalidPoolAnnotation"),
            ("Pod", "unknown", "InvalidPoolAnnotation"),
            ("Pod", "own", "InvalidPoolAnnotation"),
        ]
    );
    let json = serde_json::to_value(&desired.spans["a"].endpoints).unwrap();
    assert!(json.to_string().contains(r#""ipv4Pools":["10.0.0.0/16"]"#), "{json}");
}
