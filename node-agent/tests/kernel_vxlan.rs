//! Kernel tests (root): VXLAN between two node namespaces with a pod each, mode changes, the
//! detection of IP-in-IP, and IP-in-IP routes (ignored on this machine's kernel, which lacks it;
//! run in a VM by `ipip_routes_in_a_stock_kernel_vm`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::common::EncapsulationMode;
use gingham_crds::api::nodenetwork::{NodeNetworkSpec, PoolRouting};
use gingham_crds::naming::vtep_mac;
use gingham_node_agent::dataplane::netlink::Netlink;
use gingham_node_agent::dataplane::rtnl::RtNetlink;
use gingham_node_agent::endpoint::LocalEndpoint;
use kernel_support::{Netns, Node, assert_clean, endpoint, link, plumb_pod, require_root};

struct Cluster {
    nodes: Vec<Node>,
}

/// Node `i` has underlay `192.168.70.<i+1>/24`, block `10.70.<i>.0/26` and one pod `.5` in it.
fn cluster(vxlan: EncapsulationMode, ipip: EncapsulationMode) -> Cluster {
    let names = ["node-a", "node-b"];
    let blocks: Vec<IPAMBlockSpec> = names
        .iter()
        .enumerate()
        .map(|(i, name)| IPAMBlockSpec {
            cidr: format!("10.70.{i}.0/26").into(),
            node: (*name).into(),
            pool: "default".into(),
            node_address: format!("192.168.70.{}/24", i + 1).into(),
            tunnel_address: Some(format!("10.70.{i}.0").into()),
            vtep_mac: Some(vtep_mac(name).into()),
            releasing: false,
        })
        .collect();
    let nodes = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut spec = NodeNetworkSpec {
                address: Some(format!("192.168.70.{}/24", i + 1).into()),
                blocks: vec![blocks[i].cidr.clone()],
                pools: vec![PoolRouting {
                    name: "default".into(),
                    cidr: "10.70.0.0/16".into(),
                    vxlan_mode: vxlan,
                    ipip_mode: ipip,
                    ..Default::default()
                }],
                ..NodeNetworkSpec::default()
            };
            // TunnelSpec's derived Default leaves VNI and port at 0 (only serde applies 4096/4789).
            spec.tunnel.vxlan_vni = 4096;
            spec.tunnel.vxlan_port = 4789;
            spec.tunnel.blocks = vec![blocks[i].cidr.clone()];
            spec.tunnel.vtep_mac = blocks[i].vtep_mac.clone();
            let pod: LocalEndpoint = endpoint(&format!("pod-{i}"), [10, 70, i as u8, 5]);
            Node { name: (*name).into(), spec, span: None, blocks: blocks.clone(), endpoints: vec![pod] }.allow_all()
        })
        .collect();
    Cluster { nodes }
}

/// `ip route show proto 249` in `ns`, each route through a nexthop object shown as the plain
/// route it stands for (`nhid <id>` left out); panics unless every remote block's route names one.
fn remote_routes(ns: &Netns) -> String {
    let routes = ns.ip("route show proto 249");
    let remote = routes.lines().filter(|l| l.contains(" via "));
    assert!(remote.clone().all(|l| l.contains(" nhid ")), "remote blocks route through nexthops: {routes}");
    routes
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let nhid = words.iter().position(|w| *w == "nhid");
            let kept = words.iter().enumerate().filter(|(i, _)| nhid.is_none_or(|at| *i != at && *i != at + 1));
            kept.map(|(_, w)| *w).collect::<Vec<_>>().join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Two node namespaces on one underlay link, each with one pod namespace.
fn lab(test: &str, cluster: &Cluster) -> Vec<Netns> {
    let a = Netns::new(test, "a");
    let b = Netns::new(test, "b");
    link(&a, "eth0", "192.168.70.1/24", &b, "eth0", "192.168.70.2/24");
    // Proxy ARP answers for 169.254.1.1 only when the node has a route to it, as real nodes do.
    a.ip("route add default via 192.168.70.2");
    b.ip("route add default via 192.168.70.1");
    let pa = Netns::new(test, "pa");
    let pb = Netns::new(test, "pb");
    plumb_pod(&a, &pa, &cluster.nodes[0].endpoints[0]);
    plumb_pod(&b, &pb, &cluster.nodes[1].endpoints[0]);
    vec![a, b, pa, pb]
}

#[test]
fn vxlan_carries_pod_traffic_between_two_nodes() {
    require_root();
    let mut cluster = cluster(EncapsulationMode::Always, EncapsulationMode::Never);
    let ns = lab("vxlan", &cluster);
    // The VXLAN MTU follows the underlay device's MTU (the one holding the node's address).
    ns[0].ip("link set eth0 mtu 9000");
    ns[1].ip("link set eth0 mtu 9000");
    for (host, node) in ns.iter().zip(&cluster.nodes) {
        assert_clean(&host.sync(node).0);
    }
    let device = ns[0].ip("-d link show vxlan.gingham");
    assert!(device.contains("vxlan id 4096") && device.contains("dstport 4789"), "{device}");
    assert!(device.contains("local 192.168.70.1") && device.contains("nolearning"), "{device}");
    // No outer UDP checksum (RFC 7348; the kernel's default computes one).
    assert!(device.contains("noudpcsum"), "{device}");
    assert!(device.contains("mtu 8950") && device.contains(&vtep_mac("node-a").to_string()), "{device}");
    let mac_b = vtep_mac("node-b");
    let (_, fdb) = ns[0].sh("bridge fdb show dev vxlan.gingham");
    assert!(fdb.contains(&format!("{mac_b} dst 192.168.70.2 self permanent")), "{fdb}");
    let neigh = ns[0].ip("neigh show dev vxlan.gingham");
    assert!(neigh.contains(&format!("10.70.1.0 lladdr {mac_b} PERMANENT")), "{neigh}");
    let routes = remote_routes(&ns[0]);
    assert!(routes.contains("10.70.1.0/26 via 10.70.1.0 dev vxlan.gingham onlink"), "{routes}");
    assert!(ns[0].ip("addr show dev vxlan.gingham").contains("10.70.0.0/32"));

    let (ok, output) = ns[2].sh("ping -c2 -W2 10.70.1.5");
    assert!(ok, "pod on node-a pings pod on node-b over VXLAN: {output}");

    // CrossSubnet with both nodes on one subnet: routes go direct, replaced in place, while a
    // ping runs (40 packets, 50 ms apart) to count what the switch loses.
    let pinger = std::process::Command::new("ip")
        .args(["netns", "exec", &ns[2].name, "ping", "-q", "-c", "40", "-i", "0.05", "-W", "1", "10.70.1.5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for node in &mut cluster.nodes {
        node.spec.pools[0].vxlan_mode = EncapsulationMode::CrossSubnet;
    }
    for (host, node) in ns.iter().zip(&cluster.nodes) {
        assert_clean(&host.sync(node).0);
    }
    let summary = String::from_utf8_lossy(&pinger.wait_with_output().unwrap().stdout).into_owned();
    let received: u32 = summary
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary: {summary}"));
    eprintln!("VXLAN -> CrossSubnet switch: {received}/40 pings answered");
    assert!(received >= 39, "the switch must lose at most one packet: {summary}");
    let routes = remote_routes(&ns[0]);
    assert!(routes.contains("10.70.1.0/26 via 192.168.70.2 dev eth0"), "{routes}");
    let (ok, output) = ns[2].sh("ping -c2 -W2 10.70.1.5");
    assert!(ok, "direct routing on one subnet: {output}");

    // Never: remote routes are BIRD's job, and the device goes away.
    for node in &mut cluster.nodes {
        node.spec.pools[0].vxlan_mode = EncapsulationMode::Never;
    }
    for (host, node) in ns.iter().zip(&cluster.nodes) {
        assert_clean(&host.sync(node).0);
    }
    assert!(!ns[0].ip("link show").contains("vxlan.gingham"));
    assert!(!ns[0].ip("route show proto 249").contains("10.70.1.0/26"));
}

/// IP-in-IP support is detected and reported: on a kernel without it (this machine's) an IPIP
/// pool is a sync error that says so, with it there is no such error.
#[test]
fn ipip_support_is_detected_and_reported() {
    require_root();
    let cluster = cluster(EncapsulationMode::Never, EncapsulationMode::Always);
    let ns = lab("ipipcap", &cluster);
    let capabilities = ns[0].run(|| async { RtNetlink::connect().unwrap().capabilities().await });
    let (report, _) = ns[0].sync(&cluster.nodes[0]);
    assert_eq!(report.capabilities, capabilities);
    let reported = report.errors.iter().any(|e| e.message.contains("no IP-in-IP"));
    assert_eq!(reported, !capabilities.ipip, "ipip {}: {:?}", capabilities.ipip, report.errors);
    assert_eq!(report.routes_programmed, capabilities.ipip, "{report:?}");
}

#[test]
#[ignore = "needs IP-in-IP, which this machine's kernel lacks; ipip_routes_in_a_stock_kernel_vm runs it in a VM"]
fn ipip_tunnel_routes() {
    require_root();
    let cluster = cluster(EncapsulationMode::Never, EncapsulationMode::Always);
    let ns = lab("ipip", &cluster);
    let capabilities = ns[0].run(|| async { RtNetlink::connect().unwrap().capabilities().await });
    assert!(
        capabilities.ipip,
        "this kernel has no IP-in-IP (no tunl0, no ipip module); ipip_routes_in_a_stock_kernel_vm runs this test in a VM that has it"
    );
    let (report, _) = ns[0].sync(&cluster.nodes[0]);
    let (other, _) = ns[1].sync(&cluster.nodes[1]);
    for report in [&report, &other] {
        assert!(report.routes_programmed, "{report:?}");
        if std::env::var_os(kernel_support::vm::IN_VM).is_some() {
            // The VM has no nftables tools: policy cannot be programmed there, routes can.
            assert!(report.errors.iter().all(|e| e.message.contains("nft")), "{:?}", report.errors);
        } else {
            assert_clean(report);
        }
    }
    let routes = remote_routes(&ns[0]);
    assert!(routes.contains("10.70.1.0/26 via 192.168.70.2 dev tunl0 onlink"), "{routes}");
    let tunl0 = ns[0].ip("addr show dev tunl0");
    assert!(tunl0.contains("mtu 1480") && tunl0.contains("10.70.0.0/32") && tunl0.contains(",UP"), "{tunl0}");
    let counter = |ns: &Netns, name: &str| -> u64 {
        ns.sh(&format!("cat /sys/class/net/tunl0/statistics/{name}")).1.trim().parse().unwrap()
    };
    let before = counter(&ns[0], "tx_packets");
    let (ok, output) = ns[2].sh("ping -c2 -W2 10.70.1.5");
    assert!(ok, "pod on node-a pings pod on node-b over IP-in-IP: {output}");
    assert!(counter(&ns[0], "tx_packets") >= before + 2, "the pings went through tunl0");
    println!("ipip: gingham programmed tunl0 and its routes; pods ping through it");
}

/// Runs [`ipip_tunnel_routes`] in a VM with a stock Debian kernel (DESIGN.md); fails, never
/// skips, when the VM cannot be prepared.
#[test]
fn ipip_routes_in_a_stock_kernel_vm() {
    require_root();
    let console = kernel_support::vm::run_test_in_vm("ipip_tunnel_routes").unwrap_or_else(|reason| {
        panic!("cannot boot the IP-in-IP test VM: {reason}; e2e/vm/run-ipip.sh fills its cache with apt-get download")
    });
    let relevant: Vec<&str> = console.lines().filter(|l| l.contains("ipip") || l.contains("GINGHAM")).collect();
    assert!(console.contains("GINGHAM-VM PASS"), "the IPIP test failed in the VM:\n{console}");
    assert!(console.contains("pods ping through it"), "the test must have run, not skipped: {relevant:#?}");
    eprintln!("in the VM: {relevant:#?}");
}
