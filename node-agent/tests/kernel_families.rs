//! Kernel tests (root), once per address family: a node of that family only (an IPv6-only node
//! has no IPv4 address at all) goes from empty to routed through nexthop objects and through the
//! plain-route fallback, with its VXLAN device, neighbours and FDB entries; it switches VXLAN
//! Always -> Never -> CrossSubnet; and drift is repaired from the kernel's notifications. One
//! dataplane lives across syncs, as in a running agent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use std::collections::BTreeSet;
use std::time::Duration;

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::common::EncapsulationMode::{self, Always, CrossSubnet, Never};
use gingham_crds::api::nodenetwork::{NodeCapabilities, NodeNetworkSpec, PoolRouting};
use gingham_crds::naming::{vtep_mac, vtep_mac_v6};
use gingham_node_agent::dataplane::diff::Op;
use gingham_node_agent::dataplane::kernel::SyncStats;
use gingham_node_agent::dataplane::model::{AddressSpec, FdbSpec, LinkState, NeighbourSpec, RouteSpec};
use gingham_node_agent::dataplane::netlink::{Netlink, NetlinkError, Nexthops};
use gingham_node_agent::dataplane::nft::apply::NftCommand;
use gingham_node_agent::dataplane::observed::Notice;
use gingham_node_agent::dataplane::rtnl::RtNetlink;
use gingham_node_agent::dataplane::{Dataplane, KernelDataplane};
use kernel_support::{Netns, Node, require_root};

/// One family's lab: node-a (this node) and node-b share a subnet, node-c is on another.
struct Family {
    /// Short, for namespace names.
    name: &'static str,
    /// `ip`'s family flag.
    flag: &'static str,
    a: &'static str,
    b: &'static str,
    c: &'static str,
    pool: &'static str,
    /// node-a's block, node-b's two blocks, node-c's block.
    blocks: [&'static str; 4],
    device: &'static str,
}

static FAMILIES: [Family; 2] = [
    Family {
        name: "v4",
        flag: "-4",
        a: "192.168.81.1/24",
        b: "192.168.81.2/24",
        c: "192.168.82.3/24",
        pool: "10.81.0.0/16",
        blocks: ["10.81.0.0/26", "10.81.1.0/26", "10.81.1.64/26", "10.81.2.0/26"],
        device: "vxlan.gingham",
    },
    Family {
        name: "v6",
        flag: "-6",
        a: "fd00:81::1/64",
        b: "fd00:81::2/64",
        c: "fd00:82::3/64",
        pool: "fd00:181::/48",
        blocks: ["fd00:181::/122", "fd00:181:0:1::/122", "fd00:181:0:1::40/122", "fd00:181:0:2::/122"],
        device: "vxlan6.gingham",
    },
];

impl Family {
    fn v6(&self) -> bool {
        self.flag == "-6"
    }

    fn mac(&self, node: &str) -> String {
        if self.v6() { vtep_mac_v6(node).to_string() } else { vtep_mac(node).to_string() }
    }

    /// A block of `node`, whose VTEP is `tunnel`.
    fn block(&self, cidr: &str, node: &str, address: &str, tunnel: &str) -> IPAMBlockSpec {
        IPAMBlockSpec {
            cidr: cidr.into(),
            node: node.into(),
            pool: "default".into(),
            node_address: address.into(),
            tunnel_address: Some(tunnel.into()),
            vtep_mac: Some(self.mac(node).into()),
            releasing: false,
        }
    }

    /// node-a of this family only, with its pool in `mode`.
    fn node(&self, mode: EncapsulationMode) -> Node {
        self.member("node-a", mode)
    }

    /// node-a or node-b of this family only (node-b owns two blocks), with its pool in `mode`.
    fn member(&self, name: &str, mode: EncapsulationMode) -> Node {
        let [own, b1, b2, c] = self.blocks;
        // Each node's VTEP is the first address of its first block.
        let blocks = vec![
            self.block(own, "node-a", self.a, bare(own)),
            self.block(b1, "node-b", self.b, bare(b1)),
            self.block(b2, "node-b", self.b, bare(b1)),
            self.block(c, "node-c", self.c, bare(c)),
        ];
        let (address, owned) = if name == "node-a" { (self.a, vec![own]) } else { (self.b, vec![b1, b2]) };
        let mut spec = NodeNetworkSpec {
            blocks: owned.iter().map(|b| (*b).into()).collect(),
            pools: vec![PoolRouting {
                name: "default".into(),
                cidr: self.pool.into(),
                vxlan_mode: mode,
                ..Default::default()
            }],
            ..NodeNetworkSpec::default()
        };
        spec.tunnel.vxlan_vni = 4096;
        spec.tunnel.vxlan_port = 4789;
        let tunnel_blocks = vec![owned[0].into()];
        if self.v6() {
            spec.address6 = Some(address.into());
            spec.tunnel.blocks6 = tunnel_blocks;
            spec.tunnel.vtep_mac_v6 = Some(self.mac(name).into());
        } else {
            spec.address = Some(address.into());
            spec.tunnel.blocks = tunnel_blocks;
            spec.tunnel.vtep_mac = Some(self.mac(name).into());
        }
        Node { name: name.into(), spec, span: None, blocks, endpoints: vec![] }
    }

    /// node-a and node-b, linked (addresses without duplicate address detection, so they are
    /// usable at once).
    fn lab(&self, test: &str) -> (Netns, Netns) {
        let a = Netns::new(&format!("{test}{}", self.name), "a");
        let b = Netns::new(&format!("{test}{}", self.name), "b");
        a.ip(&format!("link add eth0 type veth peer name eth0 netns {}", b.name));
        for (ns, address) in [(&a, self.a), (&b, self.b)] {
            let nodad = if self.v6() { " nodad" } else { "" };
            ns.ip(&format!("addr add {address} dev eth0{nodad}"));
            ns.ip("link set eth0 up");
        }
        (a, b)
    }

    /// `ip <family> <args>` in the namespace named `ns`.
    fn ip(&self, ns: &str, args: &str) -> String {
        ip(ns, &format!("{} {args}", self.flag))
    }

    /// Our routes to the remote blocks (`ip route show proto 249` less the blackhole), sorted.
    /// The node's routes to remote blocks (not its blackholes, nor the IPv6 VTEP host routes).
    fn remote_routes(&self, ns: &str) -> Vec<String> {
        let shown = self.ip(ns, "route show proto 249");
        let mut routes: Vec<String> = shown
            .lines()
            .filter(|l| !l.starts_with("blackhole") && l.contains('/'))
            .map(|l| l.trim().to_string())
            .collect();
        routes.sort();
        routes
    }
}

/// `ip -n <ns> <args>`; panics on failure.
fn ip(ns: &str, args: &str) -> String {
    let mut full = vec!["-n", ns];
    full.extend(args.split_whitespace());
    kernel_support::run("ip", &full)
}

/// The address of a CIDR.
fn bare(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

/// The kernel without nexthop objects, as the dataplane sees an older kernel: everything else
/// is the real kernel.
struct WithoutNexthops(RtNetlink);

impl Netlink for WithoutNexthops {
    async fn links(&mut self) -> Result<Vec<LinkState>, NetlinkError> {
        self.0.links().await
    }
    async fn addresses(&mut self) -> Result<BTreeSet<AddressSpec>, NetlinkError> {
        self.0.addresses().await
    }
    async fn routes(&mut self) -> Result<BTreeSet<RouteSpec>, NetlinkError> {
        self.0.routes().await
    }
    async fn neighbours(&mut self) -> Result<BTreeSet<NeighbourSpec>, NetlinkError> {
        self.0.neighbours().await
    }
    async fn fdb(&mut self) -> Result<BTreeSet<FdbSpec>, NetlinkError> {
        self.0.fdb().await
    }
    async fn nexthops(&mut self) -> Result<Nexthops, NetlinkError> {
        unreachable!("a kernel without nexthop objects is never asked for them")
    }
    async fn notices(&mut self) -> Vec<Notice> {
        self.0.notices().await
    }
    fn sysctl(&mut self, path: &str) -> Option<String> {
        self.0.sysctl(path)
    }
    async fn capabilities(&mut self) -> NodeCapabilities {
        NodeCapabilities { nexthops: false, ..self.0.capabilities().await }
    }
    async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), NetlinkError>> {
        self.0.apply(ops).await
    }
}

/// Syncs `node`; routes must be programmed (nftables waits for a span these nodes do not have).
async fn sync<N: Netlink>(dataplane: &mut KernelDataplane<N, NftCommand>, node: &Node) -> SyncStats {
    let plan = node.plan();
    let report = dataplane.sync(&node.view(&plan)).await;
    assert!(report.routes_programmed, "{:?}", report.errors);
    dataplane.last_sync().clone()
}

/// Syncs until nothing changes: the first sync programs, the second must find it all in place
/// (reading the notifications of the first's changes), and once the kernel is quiet a sync has
/// nothing to look at.
async fn settle<N: Netlink>(dataplane: &mut KernelDataplane<N, NftCommand>, node: &Node) -> SyncStats {
    let first = sync(dataplane, node).await;
    let again = sync(dataplane, node).await;
    assert_eq!(again.netlink_changes, 0, "a second sync changes nothing");
    // IPv6 announces some things late (a device's link-local address, DAD): those notifications
    // are read, change nothing, and then a sync has nothing to look at.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let idle = sync(dataplane, node).await;
        assert_eq!(idle.netlink_changes, 0, "{idle:?}");
        if idle.unchanged {
            return first;
        }
    }
    panic!("an idle sync still computes after the kernel went quiet");
}

/// The VXLAN device of the family, its address, its neighbours and FDB entries, as `ip` and
/// `bridge` show them.
fn assert_vxlan(f: &Family, ns: &Netns) {
    let shown = ns.ip(&format!("-d link show {}", f.device));
    assert!(shown.contains(&format!("local {}", bare(f.a))), "{shown}");
    assert!(shown.contains(&f.mac("node-a")), "{shown}");
    let addresses = f.ip(&ns.name, &format!("addr show dev {}", f.device));
    let prefix = if f.v6() { 128 } else { 32 };
    assert!(addresses.contains(&format!("{}/{prefix}", bare(f.blocks[0]))), "{addresses}");
    let neighbours = f.ip(&ns.name, &format!("neigh show dev {}", f.device));
    let c = format!("{} lladdr {} PERMANENT", bare(f.blocks[3]), f.mac("node-c"));
    assert!(neighbours.contains(&c), "{neighbours}");
    let (_, fdb) = ns.sh(&format!("bridge fdb show dev {}", f.device));
    assert!(fdb.contains(&format!("{} dst {} self permanent", f.mac("node-c"), bare(f.c))), "{fdb}");
}

#[test]
fn an_empty_node_of_each_family_is_routed_through_nexthops_and_through_the_fallback() {
    require_root();
    for f in &FAMILIES {
        for nexthops in [true, false] {
            let (a, _b) = f.lab(if nexthops { "nh" } else { "plain" });
            let node = f.node(Always);
            let name = a.name.clone();
            let stats = a.run(move || {
                let node = node.clone();
                async move {
                    let netlink = RtNetlink::connect().unwrap();
                    if nexthops {
                        settle(&mut KernelDataplane::new(netlink, NftCommand::default()), &node).await
                    } else {
                        settle(&mut KernelDataplane::new(WithoutNexthops(netlink), NftCommand::default()), &node).await
                    }
                }
            });
            assert!(stats.dumped && stats.netlink_changes > 0, "{name}: {stats:?}");
            let blackhole = f.ip(&name, "route show proto 249 type blackhole");
            assert!(blackhole.contains(f.blocks[0]), "{name}: {blackhole}");
            let routes = f.remote_routes(&name);
            assert_eq!(routes.len(), 3, "{name}: {routes:?}");
            let vteps = [f.blocks[1], f.blocks[1], f.blocks[3]];
            for ((route, block), vtep) in routes.iter().zip(&f.blocks[1..]).zip(vteps) {
                assert!(route.starts_with(block), "{name}: {routes:?}");
                let via = format!("via {} dev {}", bare(vtep), f.device);
                if nexthops {
                    assert!(route.contains(" nhid "), "{name}: {route}");
                } else {
                    assert!(route.contains(&via), "{name}: {route} lacks {via}");
                }
            }
            let hops = f.ip(&name, "nexthop show proto 249");
            assert_eq!(hops.lines().count(), if nexthops { 2 } else { 0 }, "{name}: one per remote node: {hops}");
            assert!(hops.lines().all(|h| h.contains(&format!("dev {}", f.device))), "{name}: {hops}");
            assert_vxlan(f, &a);
            if f.v6() {
                let forwarding = a.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").1;
                assert_eq!(forwarding.trim(), "1", "{name}");
                assert!(!a.ip("link show").contains("vxlan.gingham"), "{name}: an IPv6-only node has no IPv4 device");
            }

            // A restarted agent finds everything as it left it (every object decodes as encoded).
            let node = f.node(Always);
            let restarted = a.run(move || async move {
                let netlink = RtNetlink::connect().unwrap();
                if nexthops {
                    sync(&mut KernelDataplane::new(netlink, NftCommand::default()), &node).await
                } else {
                    sync(&mut KernelDataplane::new(WithoutNexthops(netlink), NftCommand::default()), &node).await
                }
            });
            assert_eq!(restarted.netlink_changes, 0, "{name}: a restart changes nothing");
        }
    }
}

#[test]
fn each_family_switches_vxlan_always_never_cross_subnet() {
    require_root();
    for f in &FAMILIES {
        let (a, _b) = f.lab("switch");
        let name = a.name.clone();
        let shown = a.run(move || async move {
            let mut dataplane = KernelDataplane::connect().unwrap().with_vxlan_drain(Duration::ZERO);
            let mut shown = Vec::new();
            for mode in [Always, Never, CrossSubnet] {
                settle(&mut dataplane, &f.node(mode)).await;
                shown.push((
                    mode,
                    f.remote_routes(&name),
                    f.ip(&name, "nexthop show proto 249"),
                    ip(&name, "link show"),
                ));
            }
            shown
        });
        for (mode, routes, hops, links) in shown {
            let name = format!("{} {mode:?}", a.name);
            match mode {
                Always => {
                    assert_eq!(routes.len(), 3, "{name}: {routes:?}");
                    assert!(hops.lines().all(|h| h.contains(f.device)) && hops.lines().count() == 2, "{name}: {hops}");
                }
                Never => {
                    assert!(routes.is_empty() && hops.is_empty(), "{name}: BIRD's job: {routes:?} {hops}");
                    assert!(!links.contains(f.device), "{name}: the device is gone (no drain in this test)");
                }
                _ => {
                    assert_eq!(routes.len(), 3, "{name}: {routes:?}");
                    let direct = format!("via {} dev eth0", bare(f.b));
                    assert!(hops.lines().any(|h| h.contains(&direct)), "{name}: node-b is on this subnet: {hops}");
                    let tunnel = format!("via {} dev {}", bare(f.blocks[3]), f.device);
                    assert!(hops.lines().any(|h| h.contains(&tunnel)), "{name}: node-c is not: {hops}");
                    assert!(links.contains(f.device), "{name}");
                }
            }
        }
        assert_vxlan(f, &a);
    }
}

#[test]
fn drift_in_each_family_is_repaired_from_notifications() {
    require_root();
    for f in &FAMILIES {
        let (a, _b) = f.lab("drift");
        let name = a.name.clone();
        let stats = a.run(move || async move {
            let mut dataplane = KernelDataplane::connect().unwrap();
            let node = f.node(Always);
            settle(&mut dataplane, &node).await;
            let before = (f.remote_routes(&name), f.ip(&name, "route show proto 249 type blackhole"));
            f.ip(&name, &format!("route del {}", f.blocks[2]));
            f.ip(&name, &format!("route del blackhole {}", f.blocks[0]));
            f.ip(&name, &format!("neigh del {} dev {}", bare(f.blocks[3]), f.device));
            // Another owner's route next to ours is left alone.
            let foreign = if f.v6() { "fd00:99::/64 via fd00:81::2" } else { "10.99.0.0/24 via 192.168.81.2" };
            f.ip(&name, &format!("route add {foreign} proto static"));
            let stats = sync(&mut dataplane, &node).await;
            let after = (f.remote_routes(&name), f.ip(&name, "route show proto 249 type blackhole"));
            assert_eq!(after, before, "{name}");
            let kept = f.ip(&name, "route show proto static");
            assert!(kept.contains(foreign.split(' ').next().unwrap()), "{name}: {kept}");
            stats
        });
        assert!(!stats.dumped, "{}: learned from the notifications, not a dump", a.name);
        assert_eq!(stats.netlink_changes, 3, "{}: the route, the blackhole and the neighbour", a.name);
        assert_vxlan(f, &a);
    }
}

#[test]
fn vxlan_of_each_family_carries_traffic_between_two_nodes_vteps() {
    require_root();
    for f in &FAMILIES {
        let (a, b) = f.lab("carry");
        for (ns, name) in [(&a, "node-a"), (&b, "node-b")] {
            let (report, _) = ns.sync(&f.member(name, Always));
            assert!(report.routes_programmed, "{}: {:?}", ns.name, report.errors);
        }
        // From node-a's VTEP to node-b's: over the tunnel both ways (each VTEP address is only
        // on its VXLAN device, so the reply is encapsulated too).
        let (from, to) = (bare(f.blocks[0]), bare(f.blocks[1]));
        let (reached, output) = a.sh(&format!("ping {} -c1 -W2 -I {from} {to}", f.flag));
        assert!(reached, "{}: {output}", a.name);
        let (_, received) = b.sh(&format!("cat /sys/class/net/{}/statistics/rx_packets", f.device));
        assert!(received.trim().parse::<u64>().unwrap() > 0, "{}: node-b's {} received it", b.name, f.device);
    }
}
