#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use gingham_crds::api::{IPAMBlock, IPPool, NodeNetworkStatus};
use k8s_openapi::api::core::v1::Node;

use super::*;
use crate::core::facts::NodeFacts;
use crate::core::pools::check_pools;
use crate::core::testkit::{Meta, PoolExt, block, ipam_status, node, pool};

struct Case {
    name: &'static str,
    pools: Vec<IPPool>,
    nodes: Vec<Node>,
    existing: Vec<IPAMBlock>,
    statuses: Vec<(&'static str, NodeNetworkStatus)>,
    max: usize,
    expected: Vec<(&'static str, Vec<&'static str>)>,
}

fn run(case: &Case) -> Assignment {
    let (pools, _) = check_pools(&case.pools);
    let nodes: BTreeMap<String, NodeFacts> = case
        .nodes
        .iter()
        .map(|n| {
            let (facts, _) = NodeFacts::from_node(n);
            (facts.name.clone(), facts)
        })
        .collect();
    let statuses = case.statuses.iter().map(|(n, s)| ((*n).to_string(), s.clone())).collect();
    assign(&IpamInput {
        pools: &pools,
        nodes: &nodes,
        existing: &case.existing,
        statuses: &statuses,
        max_blocks_per_node: case.max,
    })
}

fn base() -> Case {
    Case {
        name: "",
        pools: vec![pool("p", "10.0.0.0/24")],
        nodes: vec![node("a", "192.168.0.1/24"), node("b", "192.168.0.2/24")],
        existing: vec![],
        statuses: vec![],
        max: 20,
        expected: vec![],
    }
}

#[test]
fn blocks_are_assigned_like_the_rules_say() {
    let cases = vec![
        Case {
            name: "each node gets the lowest free block",
            expected: vec![("a", vec!["10.0.0.0/26"]), ("b", vec!["10.0.0.64/26"])],
            ..base()
        },
        Case {
            name: "existing blocks stay put; new nodes fill the gaps",
            existing: vec![block("10.0.0.0/26", "b", "p")],
            expected: vec![("a", vec!["10.0.0.64/26"]), ("b", vec!["10.0.0.0/26"])],
            ..base()
        },
        Case {
            name: "a deleted node's blocks are released",
            existing: vec![block("10.0.0.0/26", "gone", "p")],
            expected: vec![("a", vec!["10.0.0.0/26"]), ("b", vec!["10.0.0.64/26"])],
            ..base()
        },
        Case {
            name: "nodeSelector picks the nodes",
            pools: vec![pool("p", "10.0.0.0/24").node_selector("zone == 'x'")],
            nodes: vec![node("a", "192.168.0.1/24").label("zone", "x"), node("b", "192.168.0.2/24")],
            expected: vec![("a", vec!["10.0.0.0/26"]), ("b", vec![])],
            ..base()
        },
        Case {
            name: "one block from every matching pool",
            pools: vec![pool("p", "10.0.0.0/24"), pool("q", "10.1.0.0/24")],
            nodes: vec![node("a", "192.168.0.1/24")],
            expected: vec![("a", vec!["10.0.0.0/26", "10.1.0.0/26"])],
            ..base()
        },
        Case {
            name: "disabled and invalid pools hand out nothing but keep blocks in use",
            pools: vec![pool("p", "10.0.0.0/24").disabled(), pool("bad", "10.1.0.0/33")],
            existing: vec![block("10.0.0.64/26", "a", "p"), block("10.9.0.0/26", "b", "deleted-pool")],
            expected: vec![("a", vec!["10.0.0.64/26"]), ("b", vec!["10.9.0.0/26"])],
            ..base()
        },
        Case {
            name: "pressure with an up-to-date report: one more block",
            existing: vec![block("10.0.0.0/26", "a", "p")],
            statuses: vec![("a", ipam_status(60, 64, true))],
            expected: vec![("a", vec!["10.0.0.0/26", "10.0.0.64/26"]), ("b", vec!["10.0.0.128/26"])],
            ..base()
        },
        Case {
            name: "pressure from a report older than the last block: wait",
            existing: vec![block("10.0.0.0/26", "a", "p"), block("10.0.0.128/26", "a", "p")],
            statuses: vec![("a", ipam_status(60, 64, true))],
            expected: vec![("a", vec!["10.0.0.0/26", "10.0.0.128/26"]), ("b", vec!["10.0.0.64/26"])],
            ..base()
        },
        Case {
            name: "pressure stops at the cap",
            existing: vec![block("10.0.0.0/26", "a", "p")],
            statuses: vec![("a", ipam_status(64, 64, true))],
            max: 1,
            expected: vec![("a", vec!["10.0.0.0/26"]), ("b", vec!["10.0.0.64/26"])],
            ..base()
        },
        Case {
            name: "a full pool hands out nothing more",
            pools: vec![pool("p", "10.0.0.0/26")],
            expected: vec![("a", vec!["10.0.0.0/26"]), ("b", vec![])],
            ..base()
        },
    ];
    for case in &cases {
        let assignment = run(case);
        for (node, expected) in &case.expected {
            let got = assignment.node_blocks.get(*node).cloned().unwrap_or_default();
            assert_eq!(got, *expected, "{}: node {node}", case.name);
        }
        let mut all: Vec<&gingham_crds::api::Wire<gingham_crds::api::Cidr>> =
            assignment.node_blocks.values().flatten().collect();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "{}: a block was assigned twice", case.name);
    }
}

/// Node `a`'s agent reports `tunnel` as its tunnel address.
fn reporting(tunnel: &str) -> Vec<(&'static str, NodeNetworkStatus)> {
    vec![("a", NodeNetworkStatus { tunnel_address: Some(tunnel.into()), ..NodeNetworkStatus::default() })]
}

#[test]
fn blocks_carry_the_routing_facts() {
    let vxlan = Case { pools: vec![pool("p", "10.0.0.0/24").vxlan()], statuses: reporting("10.0.0.3"), ..base() };
    let assignment = run(&vxlan);
    let first = &assignment.blocks["10-0-0-0-26"];
    assert_eq!(first.node, "a");
    assert_eq!(first.pool, "p");
    assert_eq!(first.node_address, "192.168.0.1/24");
    assert_eq!(first.tunnel_address.as_ref().map(|a| a.as_str()), Some("10.0.0.3"), "the address the agent allocated");
    assert_eq!(first.vtep_mac, Some(gingham_crds::naming::vtep_mac("a").into()));
    assert!(!first.releasing);
    assert_eq!(assignment.tunnels["a"].v4.blocks, ["10.0.0.0/26"]);
    assert_eq!(assignment.blocks["10-0-0-64-26"].tunnel_address, None, "node b has not reported one yet");
    assert_eq!(assignment.tunnels["b"].v4.blocks, ["10.0.0.64/26"], "but may take one from its block");

    let ipip = run(&Case { pools: vec![pool("p", "10.0.0.0/24").ipip()], statuses: reporting("10.0.0.3"), ..base() });
    assert_eq!(ipip.blocks["10-0-0-0-26"].tunnel_address.as_ref().map(|a| a.as_str()), Some("10.0.0.3"));
    assert_eq!(ipip.blocks["10-0-0-0-26"].vtep_mac, None);

    let plain = run(&Case { statuses: reporting("10.0.0.3"), ..base() });
    assert_eq!(plain.blocks["10-0-0-0-26"].tunnel_address, None, "a stale report is not published");
    assert!(plain.tunnels["a"].v4.blocks.is_empty(), "no pool encapsulates: the agent releases its address");

    let disabled = run(&Case {
        pools: vec![pool("p", "10.0.0.0/24").disabled()],
        existing: vec![block("10.0.0.0/26", "a", "p")],
        ..base()
    });
    assert!(disabled.blocks["10-0-0-0-26"].releasing);
}

#[test]
fn the_published_tunnel_address_is_the_reported_one_inside_a_tunnel_block() {
    let two_blocks = |statuses| Case {
        pools: vec![pool("p", "10.0.0.0/24").vxlan()],
        nodes: vec![node("a", "192.168.0.1/24")],
        existing: vec![block("10.0.0.64/26", "a", "p"), block("10.0.0.0/26", "a", "p")],
        statuses,
        ..base()
    };
    let cases = [
        ("in the second block", reporting("10.0.0.65"), Some("10.0.0.65")),
        ("in the first block", reporting("10.0.0.7"), Some("10.0.0.7")),
        ("outside the node's blocks (an old report)", reporting("10.0.0.130"), None),
        ("not an address", reporting("nonsense"), None),
        ("nothing reported yet", vec![], None),
    ];
    for (name, statuses, expected) in cases {
        let assignment = run(&two_blocks(statuses));
        assert_eq!(assignment.tunnels["a"].v4.address.as_ref().map(|a| a.as_str()), expected, "{name}");
        assert_eq!(assignment.tunnels["a"].v4.blocks, ["10.0.0.0/26", "10.0.0.64/26"], "{name}");
        for block in assignment.blocks.values() {
            assert_eq!(
                block.tunnel_address.as_ref().map(|a| a.as_str()),
                expected,
                "{name}: every block of the node carries it"
            );
        }
    }
}

#[test]
fn only_pools_that_allow_the_tunnel_use_give_tunnel_blocks() {
    use gingham_crds::api::ippool::AllowedUse;
    let mut workloads_only = pool("p", "10.0.0.0/24").vxlan();
    workloads_only.spec.allowed_uses = vec![AllowedUse::Workload];
    let assignment = run(&Case { pools: vec![workloads_only], statuses: reporting("10.0.0.3"), ..base() });
    assert!(assignment.tunnels["a"].v4.blocks.is_empty());
    assert_eq!(assignment.blocks["10-0-0-0-26"].tunnel_address, None);
}

#[test]
fn node_addresses_come_from_annotations_then_internal_ip() {
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};
    let calico = node("c", "").annotate(crate::core::facts::CALICO_ADDRESS_ANNOTATION, "10.1.1.1/16");
    let mut internal = node("i", "");
    internal.status = Some(NodeStatus {
        addresses: Some(vec![NodeAddress { type_: "InternalIP".into(), address: "10.2.2.2".into() }]),
        ..NodeStatus::default()
    });
    let cases = [
        (node("g", "192.168.0.1/24"), Some("192.168.0.1/24")),
        (calico, Some("10.1.1.1/16")),
        (internal, Some("10.2.2.2/32")),
        (node("none", ""), None),
    ];
    for (node, expected) in cases {
        let (facts, _) = NodeFacts::from_node(&node);
        assert_eq!(facts.address.map(|a| a.to_string()).as_deref(), expected, "{}", facts.name);
    }
}

/// IPv6 pools hand out /122 blocks (Calico's default) to nodes with an IPv6 address, and every
/// block carries its owner's facts of the block's family.
#[test]
fn ipv6_blocks_go_to_nodes_with_an_ipv6_address_and_carry_ipv6_facts() {
    let v6 = pool("v6", "fd00:100::/120").vxlan();
    let assignment = run(&Case {
        pools: vec![pool("v4", "10.0.0.0/24").vxlan(), v6],
        nodes: vec![node("a", "192.168.0.1/24,fd00:10::1/64"), node("b", "192.168.0.2/24"), node("c", "fd00:10::3/64")],
        statuses: vec![(
            "a",
            NodeNetworkStatus {
                tunnel_address: Some("10.0.0.1".into()),
                tunnel_address6: Some("fd00:100::1".into()),
                ..NodeNetworkStatus::default()
            },
        )],
        ..base()
    });
    let blocks = |node: &str| assignment.node_blocks[node].iter().map(|b| b.to_string()).collect::<Vec<_>>();
    assert_eq!(blocks("a"), ["10.0.0.0/26", "fd00:100::/122"], "a dual-stack node gets a block of each family");
    assert_eq!(blocks("b"), ["10.0.0.64/26"], "no IPv6 address: no IPv6 block");
    assert_eq!(blocks("c"), ["fd00:100::40/122"], "no IPv4 address: no IPv4 block");
    let reported: Vec<(&str, &str)> =
        assignment.problems.iter().map(|p| (p.name.as_str(), p.reason.as_str())).collect();
    assert_eq!(reported, [("b", "NoAddressForPool"), ("c", "NoAddressForPool")]);
    assert!(assignment.problems[0].message.contains("gingham.dev/ipv6-address"), "{:?}", assignment.problems[0]);
    let v6_block = &assignment.blocks["fd00-100---122"];
    assert_eq!(v6_block.node_address.as_str(), "fd00:10::1/64", "the owner's IPv6 address and subnet");
    assert_eq!(v6_block.tunnel_address.as_ref().map(|a| a.as_str()), Some("fd00:100::1"));
    assert_eq!(
        v6_block.vtep_mac.as_ref().map(|m| m.to_string()),
        Some(gingham_crds::naming::vtep_mac_v6("a").to_string())
    );
    let v4_block = &assignment.blocks["10-0-0-0-26"];
    assert_eq!(
        (v4_block.node_address.as_str(), v4_block.tunnel_address.as_ref().map(|a| a.as_str())),
        ("192.168.0.1/24", Some("10.0.0.1"))
    );
    let a = &assignment.tunnels["a"];
    assert_eq!((a.v4.blocks.len(), a.v6.blocks[0].as_str()), (1, "fd00:100::/122"));
    assert_ne!(a.v4.vtep_mac, a.v6.vtep_mac, "two VTEPs, two MACs");
    assert!(assignment.tunnels["c"].v4.blocks.is_empty() && assignment.tunnels["c"].v4.vtep_mac.is_none());
    for block in assignment.blocks.values() {
        assert_eq!(gingham_crds::validate::validate_ipam_block(block), Ok(()), "{block:?}");
    }
}

/// IPIP is IPv4 only: an IPv6 pool with ipipMode is invalid and hands out nothing, and a valid
/// IPv6 pool without VXLAN gives no IPv6 tunnel blocks.
#[test]
fn ipv6_tunnels_come_from_vxlan_pools_only() {
    let assignment = run(&Case {
        pools: vec![pool("ipip6", "fd00:100::/120").ipip(), pool("plain6", "fd00:200::/120")],
        nodes: vec![node("a", "fd00:10::1/64")],
        ..base()
    });
    assert_eq!(assignment.node_blocks["a"].iter().map(|b| b.to_string()).collect::<Vec<_>>(), ["fd00:200::/122"]);
    assert!(assignment.tunnels["a"].v6.blocks.is_empty() && assignment.tunnels["a"].v6.vtep_mac.is_none());
}
