//! Whole-system routing: real operator, agents, BIRD and CNI plugin in network namespaces, on an
//! IPv4, an IPv6-only and a dual-stack underlay (each test body runs per stack).
//! Runs as root; lab tests take a machine-wide lock and run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Stack, assert_full_mesh, counter, ping, pod_ip, routes_in, scenario_in, up};
use gingham_crds::api::IpFamily;

/// The VXLAN device of a family.
fn vxlan(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => "vxlan.gingham",
        IpFamily::IPv6 => "vxlan6.gingham",
    }
}

fn bgp_full_mesh(stack: Stack, prefix: &str) {
    let lab = up(&scenario_in(stack, &[("n1", "a"), ("n2", "a"), ("n3", "a")], "Never"), prefix);
    assert_full_mesh(&lab);
    for family in stack.families() {
        for node in &lab.state.nodes {
            let table = routes_in(&lab, &node.name, family);
            let bird: Vec<&str> = table.lines().filter(|l| l.contains("proto bird")).collect();
            assert_eq!(bird.len(), 2, "{} {family}: one BIRD route per remote block\n{table}", node.name);
            for other in lab.state.nodes.iter().filter(|o| o.name != node.name) {
                let via = format!("via {} dev eth0", other.ip(family).unwrap());
                assert!(bird.iter().any(|l| l.contains(&via)), "{} {family}: no route {via}\n{table}", node.name);
            }
            assert!(!table.contains("vxlan"), "{} {family}: no encapsulation expected\n{table}", node.name);
        }
    }
}

#[test]
fn bgp_full_mesh_without_encapsulation_routes_every_block_by_bird() {
    bgp_full_mesh(Stack::V4, "ghbgp");
}

#[test]
fn bgp_full_mesh_routes_every_block_by_bird_on_ipv6_only() {
    bgp_full_mesh(Stack::V6, "ghbgp6");
}

#[test]
fn bgp_full_mesh_routes_every_block_by_bird_in_both_families_on_dual_stack() {
    bgp_full_mesh(Stack::Dual, "ghbgpd");
}

fn vxlan_always(stack: Stack, prefix: &str) {
    let lab = up(&scenario_in(stack, &[("n1", "a"), ("n2", "a")], "Always"), prefix);
    assert_full_mesh(&lab);
    let n1 = lab.node_netns("n1");
    for family in stack.families() {
        let (from, _) = lab.pod("default/p-n1");
        let to = pod_ip(&lab, "default/p-n2", family);
        let device = vxlan(family);
        let before = counter(&n1, device, "tx_packets");
        assert_eq!(ping(&from, &to, 50), 50, "{family}");
        let sent = counter(&n1, device, "tx_packets") - before;
        assert!(sent >= 50, "{family}: 50 pings must leave n1 through {device}, its tx_packets grew by {sent}");
        let table = routes_in(&lab, "n1", family);
        assert!(table.contains(&format!("dev {device}")), "{family}: {table}");
    }
}

#[test]
fn vxlan_always_encapsulates_traffic_between_nodes() {
    vxlan_always(Stack::V4, "ghvxa");
}

#[test]
fn vxlan_always_encapsulates_over_an_ipv6_underlay_on_ipv6_only() {
    vxlan_always(Stack::V6, "ghvxa6");
}

#[test]
fn vxlan_always_encapsulates_each_family_on_its_own_device_on_dual_stack() {
    vxlan_always(Stack::Dual, "ghvxad");
}

fn vxlan_cross_subnet(stack: Stack, prefix: &str) {
    let lab = up(&scenario_in(stack, &[("n1", "a"), ("n2", "a"), ("n3", "b")], "CrossSubnet"), prefix);
    assert_full_mesh(&lab);
    let (from, _) = lab.pod("default/p-n1");
    let n1 = lab.node_netns("n1");
    for family in stack.families() {
        let device = vxlan(family);
        for (target, encapsulated) in [("default/p-n2", false), ("default/p-n3", true)] {
            let to = pod_ip(&lab, target, family);
            let before = counter(&n1, device, "tx_packets");
            assert_eq!(ping(&from, &to, 30), 30, "{family}: to {target}");
            let sent = counter(&n1, device, "tx_packets") - before;
            if encapsulated {
                assert!(
                    sent >= 30,
                    "{family}: to {target} (other subnet) must be encapsulated; {device} tx grew by {sent}"
                );
            } else {
                assert!(sent < 5, "{family}: to {target} (same subnet) must go direct; {device} tx grew by {sent}");
            }
        }
    }
}

#[test]
fn vxlan_cross_subnet_encapsulates_only_across_subnets() {
    vxlan_cross_subnet(Stack::V4, "ghvxc");
}

#[test]
fn vxlan_cross_subnet_encapsulates_only_across_ipv6_subnets_on_ipv6_only() {
    vxlan_cross_subnet(Stack::V6, "ghvxc6");
}

#[test]
fn vxlan_cross_subnet_decides_per_family_on_dual_stack() {
    vxlan_cross_subnet(Stack::Dual, "ghvxcd");
}
