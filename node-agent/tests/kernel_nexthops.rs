//! Kernel tests (root): remote blocks through nexthop objects, drift learned from the kernel's
//! notifications, and idle syncs that dump nothing, with one dataplane living across syncs (as in
//! a running agent).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use std::process::Command;

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::common::EncapsulationMode;
use gingham_crds::api::nodenetwork::{NodeNetworkSpec, PoolRouting};
use gingham_crds::naming::vtep_mac;
use gingham_node_agent::dataplane::kernel::SyncStats;
use gingham_node_agent::dataplane::{Dataplane, KernelDataplane, SyncReport};
use kernel_support::{Netns, Node, link, require_root};

fn block(cidr: &str, node: &str, address: &str, tunnel: &str) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: cidr.into(),
        node: node.into(),
        pool: "default".into(),
        node_address: address.into(),
        tunnel_address: Some(tunnel.into()),
        vtep_mac: Some(vtep_mac(node).into()),
        releasing: false,
    }
}

/// node-a at 192.168.71.1/24 (VXLAN CrossSubnet); node-b on its subnet with two blocks, node-c
/// on another subnet.
fn node_a() -> Node {
    let blocks = vec![
        block("10.71.0.0/26", "node-a", "192.168.71.1/24", "10.71.0.0"),
        block("10.71.1.0/26", "node-b", "192.168.71.2/24", "10.71.1.0"),
        block("10.71.1.64/26", "node-b", "192.168.71.2/24", "10.71.1.0"),
        block("10.71.2.0/26", "node-c", "192.168.72.3/24", "10.71.2.0"),
    ];
    let mut spec = NodeNetworkSpec {
        address: Some("192.168.71.1/24".into()),
        blocks: vec!["10.71.0.0/26".into()],
        pools: vec![PoolRouting {
            name: "default".into(),
            cidr: "10.71.0.0/16".into(),
            vxlan_mode: EncapsulationMode::CrossSubnet,
            ..Default::default()
        }],
        ..NodeNetworkSpec::default()
    };
    spec.tunnel.vxlan_vni = 4096;
    spec.tunnel.vxlan_port = 4789;
    spec.tunnel.blocks = vec!["10.71.0.0/26".into()];
    spec.tunnel.vtep_mac = Some(vtep_mac("node-a").into());
    Node { name: "node-a".into(), spec, span: None, blocks, endpoints: vec![] }
}

fn lab(test: &str) -> (Netns, Netns) {
    let a = Netns::new(test, "a");
    let b = Netns::new(test, "b");
    link(&a, "eth0", "192.168.71.1/24", &b, "eth0", "192.168.71.2/24");
    a.ip("route add default via 192.168.71.2");
    (a, b)
}

fn ip(netns: &str, args: &str) -> String {
    let mut full = vec!["-n", netns];
    full.extend(args.split_whitespace());
    let output = Command::new("ip").args(&full).output().unwrap();
    assert!(output.status.success(), "ip {args}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Syncs `node` and returns what the sync reported and did; routes must be programmed.
async fn sync(dataplane: &mut KernelDataplane, node: &Node) -> (SyncReport, SyncStats) {
    let plan = node.plan();
    let report = dataplane.sync(&node.view(&plan)).await;
    assert!(report.routes_programmed, "{:?}", report.errors);
    (report, dataplane.last_sync().clone())
}

/// The routes carrying protocol 249 to `prefix` blocks, as `ip route` shows them.
fn routes(netns: &str, prefix: &str) -> Vec<String> {
    ip(netns, "route show proto 249").lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

#[test]
fn a_node_whose_underlay_address_changes_rewrites_one_nexthop_and_no_route() {
    require_root();
    let (a, _b) = lab("nhmove");
    let name = a.name.clone();
    a.run(move || async move {
        let mut dataplane = KernelDataplane::connect().unwrap();
        let mut node = node_a();
        let (report, _) = sync(&mut dataplane, &node).await;
        assert!(report.capabilities.nexthops, "this kernel has nexthop objects");
        let before = routes(&name, "10.71.1.");
        assert_eq!(before.len(), 2, "{before:?}");
        assert!(before.iter().all(|r| r.contains("nhid") && r.contains("via 192.168.71.2 dev eth0")), "{before:?}");
        let nexthops = ip(&name, "nexthop show proto 249");
        assert_eq!(nexthops.lines().count(), 2, "one per remote node: {nexthops}");

        // node-b's underlay address changes within the subnet: one nexthop changes.
        for b in node.blocks.iter_mut().filter(|b| b.node == "node-b") {
            b.node_address = "192.168.71.9/24".into();
        }
        let (_, stats) = sync(&mut dataplane, &node).await;
        assert_eq!(stats.netlink_changes, 1, "one nexthop replaced, no route");
        let after = routes(&name, "10.71.1.");
        let id = |r: &String| r.split_whitespace().skip_while(|w| *w != "nhid").nth(1).map(str::to_string);
        assert_eq!(after.iter().map(id).collect::<Vec<_>>(), before.iter().map(id).collect::<Vec<_>>());
        assert!(after.iter().all(|r| r.contains("via 192.168.71.9 dev eth0")), "{after:?}");

        // node-b moves to another subnet: its nexthop now goes through the VXLAN device; its
        // neighbour and FDB entry are added, and still no route changes.
        for b in node.blocks.iter_mut().filter(|b| b.node == "node-b") {
            b.node_address = "192.168.73.9/24".into();
        }
        let (_, stats) = sync(&mut dataplane, &node).await;
        assert_eq!(stats.netlink_changes, 3, "nexthop, neighbour and FDB entry");
        let moved = routes(&name, "10.71.1.");
        assert_eq!(moved.iter().map(id).collect::<Vec<_>>(), before.iter().map(id).collect::<Vec<_>>());
        assert!(moved.iter().all(|r| r.contains("via 10.71.1.0 dev vxlan.gingham")), "{moved:?}");
    });
}

#[test]
fn a_route_removed_by_hand_is_noticed_from_a_notification_and_put_back() {
    require_root();
    let (a, _b) = lab("nhdrift");
    let name = a.name.clone();
    a.run(move || async move {
        let mut dataplane = KernelDataplane::connect().unwrap();
        let node = node_a();
        sync(&mut dataplane, &node).await;
        let before = routes(&name, "10.71.");
        ip(&name, "route del 10.71.1.64/26");
        ip(&name, "route del blackhole 10.71.0.0/26");
        // A route of another owner at one of ours is left alone.
        ip(&name, "route add 10.99.0.0/24 via 192.168.71.2 proto static");
        let (_, stats) = sync(&mut dataplane, &node).await;
        assert!(!stats.dumped, "learned from the notifications, not a dump");
        assert_eq!(stats.netlink_changes, 2);
        assert_eq!(routes(&name, "10.71."), before);
        assert!(ip(&name, "route show proto static").contains("10.99.0.0/24"));
    });
}

#[test]
fn an_idle_sync_issues_no_dump() {
    require_root();
    let (a, _b) = lab("nhidle");
    a.run(move || async move {
        let mut dataplane = KernelDataplane::connect().unwrap();
        let node = node_a();
        let (_, first) = sync(&mut dataplane, &node).await;
        assert!(first.dumped && first.netlink_changes > 0, "{first:?}");
        for _ in 0..3 {
            let (_, idle) = sync(&mut dataplane, &node).await;
            assert_eq!((idle.dumped, idle.netlink_changes), (false, 0), "the notifications of its own changes suffice");
        }
    });
}
