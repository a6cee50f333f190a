//! Whole-system routing: real operator, agents, BIRD and CNI plugin in network namespaces.
//! Runs as root; lab tests take a machine-wide lock and run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_full_mesh, counter, ping, routes, scenario, up};

const VXLAN: &str = "vxlan.gingham";

#[test]
fn bgp_full_mesh_without_encapsulation_routes_every_block_by_bird() {
    let lab = up(&scenario(&[("n1", "a"), ("n2", "a"), ("n3", "a")], "Never"), "ghbgp");
    assert_full_mesh(&lab);
    for node in &lab.state.nodes {
        let table = routes(&lab, &node.name);
        let bird: Vec<&str> = table.lines().filter(|l| l.contains("proto bird")).collect();
        assert_eq!(bird.len(), 2, "{}: one BIRD route per remote block\n{table}", node.name);
        for other in lab.state.nodes.iter().filter(|o| o.name != node.name) {
            let via = format!("via {} dev eth0", other.address.split('/').next().unwrap());
            assert!(bird.iter().any(|l| l.contains(&via)), "{}: no route {via}\n{table}", node.name);
        }
        assert!(!table.contains(VXLAN), "{}: no encapsulation expected\n{table}", node.name);
    }
}

#[test]
fn vxlan_always_encapsulates_traffic_between_nodes() {
    let lab = up(&scenario(&[("n1", "a"), ("n2", "a")], "Always"), "ghvxa");
    assert_full_mesh(&lab);
    let (from, _) = lab.pod("default/p-n1");
    let (_, to) = lab.pod("default/p-n2");
    let n1 = lab.node_netns("n1");
    let before = counter(&n1, VXLAN, "tx_packets");
    assert_eq!(ping(&from, &to, 50), 50);
    let sent = counter(&n1, VXLAN, "tx_packets") - before;
    assert!(sent >= 50, "50 pings must leave n1 through {VXLAN}, its tx_packets grew by {sent}");
    assert!(routes(&lab, "n1").contains(&format!("dev {VXLAN}")), "{}", routes(&lab, "n1"));
}

#[test]
fn vxlan_cross_subnet_encapsulates_only_across_subnets() {
    let lab = up(&scenario(&[("n1", "a"), ("n2", "a"), ("n3", "b")], "CrossSubnet"), "ghvxc");
    assert_full_mesh(&lab);
    let (from, _) = lab.pod("default/p-n1");
    let n1 = lab.node_netns("n1");
    for (target, encapsulated) in [("default/p-n2", false), ("default/p-n3", true)] {
        let (_, to) = lab.pod(target);
        let before = counter(&n1, VXLAN, "tx_packets");
        assert_eq!(ping(&from, &to, 30), 30, "to {target}");
        let sent = counter(&n1, VXLAN, "tx_packets") - before;
        if encapsulated {
            assert!(sent >= 30, "to {target} (other subnet) must be encapsulated; {VXLAN} tx grew by {sent}");
        } else {
            assert!(sent < 5, "to {target} (same subnet) must go direct; {VXLAN} tx grew by {sent}");
        }
    }
}
