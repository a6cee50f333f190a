//! Kernel tests (root) of the nftables policy in both families, in a lab of namespaces with ULA
//! addresses: a node namespace routing between pods (veths named as the agent names them) and an
//! outside namespace. The agent's dataplane programs the IPv4 routes and the table; the IPv6 pod
//! routes are added by hand (the agent's IPv6 routes are another step), so that what is tested is
//! the ruleset: isolation in both families at once, neighbour discovery through a default deny,
//! element updates of IPv6 sets, and NAT66.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, CompiledRule, EndpointPolicy, IpSet, IpSetKind, NodeNetworkSpec, PoolRouting,
    TierPolicies,
};
use gingham_crds::api::policy::Action;
use gingham_crds::api::span::NodeSpan;
use gingham_node_agent::dataplane::kernel::NftOutcome;
use gingham_node_agent::endpoint::LocalEndpoint;
use kernel_support::{Netns, Node, assert_clean, endpoint, link, plumb_pod, require_root};
use nix::sched::{CloneFlags, setns};

/// The pods: `iso` is selected by a deny-all policy both ways, `peer` has no policy, `web` allows
/// ingress from the `peer` selector's sets only.
const PODS: [(&str, [u8; 4], &str); 3] = [
    ("iso", [10, 86, 0, 5], "fd00:86::5"),
    ("peer", [10, 86, 0, 6], "fd00:86::6"),
    ("web", [10, 86, 0, 7], "fd00:86::7"),
];
/// The IPv4 and IPv6 sets of the `peer` selector.
const PEER_SETS: [&str; 2] = ["gs_peer", "gs6_peer"];

fn v6(pod: usize) -> Ipv6Addr {
    PODS[pod].2.parse().unwrap()
}

fn node() -> Node {
    let endpoints: Vec<LocalEndpoint> = PODS.iter().map(|(pod, v4, _)| endpoint(pod, *v4)).collect();
    let pool =
        |cidr: &str| PoolRouting { name: cidr.into(), cidr: cidr.into(), nat_outgoing: true, ..Default::default() };
    let spec = NodeNetworkSpec {
        address: Some("192.168.86.1/24".into()),
        address6: Some("fd00:99::1/64".into()),
        blocks: vec!["10.86.0.0/26".into(), "fd00:86::/122".into()],
        pools: vec![pool("10.86.0.0/16"), pool("fd00:86::/48")],
        ..NodeNetworkSpec::default()
    };
    let set = |name: &str, family, member: &str| {
        IpSet { name: name.into(), family, kind: IpSetKind::Addresses, members: vec![member.into()] }.into()
    };
    let allow_peer = CompiledRule {
        action: Action::Allow,
        source: CompiledMatch { sets: PEER_SETS.map(String::from).to_vec(), ..Default::default() },
        ..Default::default()
    };
    let named_ports = |name: &str, family, member: &str| {
        IpSet { name: name.into(), family, kind: IpSetKind::AddressPorts, members: vec![member.into()] }.into()
    };
    // TCP to web's named port `http`, from anywhere (pings are not concerned).
    let allow_http = CompiledRule {
        action: Action::Allow,
        protocol: Some(6),
        destination: CompiledMatch {
            named_port_set: Some("gp_web".into()),
            named_port_set6: Some("gp6_web".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let span = NodeSpan {
        ip_sets: vec![
            set(PEER_SETS[0], IpFamily::IPv4, "10.86.0.6"),
            set(PEER_SETS[1], IpFamily::IPv6, PODS[1].2),
            named_ports("gp_web", IpFamily::IPv4, "10.86.0.7,TCP,8080"),
            named_ports("gp6_web", IpFamily::IPv6, "fd00:86::7,TCP,8080"),
        ],
        policies: vec![
            CompiledPolicy { name: "default/deny-all".into(), ingress: vec![], egress: vec![] }.into(),
            CompiledPolicy { name: "default/allow-peer".into(), ingress: vec![allow_peer, allow_http], egress: vec![] }
                .into(),
        ],
        endpoints: vec![
            EndpointPolicy {
                name: "default/iso".into(),
                ingress: vec![TierPolicies::default_tier(["default/deny-all"])],
                egress: vec![TierPolicies::default_tier(["default/deny-all"])],
                ..Default::default()
            },
            EndpointPolicy { name: "default/peer".into(), ..Default::default() },
            EndpointPolicy {
                name: "default/web".into(),
                ingress: vec![TierPolicies::default_tier(["default/allow-peer"])],
                ..Default::default()
            },
        ],
        ..NodeSpan::default()
    };
    Node { name: "node-a".into(), spec, span: Some(span), blocks: vec![], endpoints }
}

struct Lab {
    host: Netns,
    outside: Netns,
    pods: Vec<Netns>,
}

/// No duplicate address detection in the lab's namespaces: addresses are usable at once.
fn without_dad(ns: &Netns) {
    let (ok, text) =
        ns.sh("echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad");
    assert!(ok, "{text}");
}

fn lab(test: &str, node: &Node) -> Lab {
    let host = Netns::new(test, "node");
    let outside = Netns::new(test, "out");
    let pods: Vec<Netns> = node.endpoints.iter().map(|e| Netns::new(test, &e.pod)).collect();
    for ns in pods.iter().chain([&host, &outside]) {
        without_dad(ns);
    }
    let (ok, text) = host.sh("echo 1 > /proc/sys/net/ipv6/conf/all/forwarding");
    assert!(ok, "{text}");
    link(&host, "eth0", "192.168.86.1/24", &outside, "eth0", "192.168.86.2/24");
    host.ip("-6 addr add fd00:99::1/64 dev eth0 nodad");
    outside.ip("-6 addr add fd00:99::2/64 dev eth0 nodad");
    // Proxy ARP answers for 169.254.1.1 only when the node has a route to it.
    host.ip("route add default via 192.168.86.2");
    // Without masquerade the outside would answer the pods directly.
    outside.ip("route add 10.86.0.0/16 via 192.168.86.1");
    outside.ip("-6 route add fd00:86::/48 via fd00:99::1");
    for ((endpoint, ns), (_, _, address6)) in node.endpoints.iter().zip(&pods).zip(PODS) {
        plumb_pod(&host, ns, endpoint);
        // What the CNI plugin does for IPv6: the pod's /128 and a default route via the host
        // veth's link-local address (from its MAC ee:ee:ee:ee:ee:ee).
        ns.ip(&format!("-6 addr add {address6}/128 dev eth0 nodad"));
        ns.ip("-6 route add default via fe80::ecee:eeff:feee:eeee dev eth0");
        host.ip(&format!("link set {} up", endpoint.interface));
        host.ip(&format!("-6 route add {address6}/128 dev {}", endpoint.interface));
    }
    Lab { host, outside, pods }
}

/// One ping in either family; whether it was answered.
fn ping(from: &Netns, to: IpAddr) -> bool {
    from.sh(&format!("ping -c 1 -W 1 {to}")).0
}

/// Forgets every neighbour in the namespaces, so the next packets need neighbour discovery.
fn flush_neighbours(namespaces: &[&Netns]) {
    for ns in namespaces {
        let (ok, text) = ns.sh("ip -6 neigh flush all && ip -4 neigh flush all");
        assert!(ok, "{text}");
    }
}

/// The state of the pod's neighbour entry for its IPv6 gateway (`REACHABLE`, `STALE`, `FAILED`...).
fn gateway_neighbour(pod: &Netns) -> String {
    pod.sh("ip -6 neigh show fe80::ecee:eeff:feee:eeee dev eth0").1.trim().to_string()
}

#[test]
fn a_deny_all_policy_isolates_a_pod_in_both_families_while_neighbour_discovery_works() {
    require_root();
    let mut node = node();
    let lab = lab("pol6", &node);
    let (iso, peer, web) = (&lab.pods[0], &lab.pods[1], &lab.pods[2]);
    let (report, _) = lab.host.sync(&node);
    assert_clean(&report);
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::UpToDate, "IPv6 elements compare equal to what nft lists");

    let v4 = |pod: usize| IpAddr::from(PODS[pod].1);
    let v6 = |pod: usize| IpAddr::from(v6(pod));
    let matrix = || {
        [(peer, v4(2)), (peer, v6(2)), (peer, v4(0)), (peer, v6(0)), (iso, v4(2)), (iso, v6(2))]
            .map(|(from, to)| ping(from, to))
    };
    assert_eq!(
        matrix(),
        [true, true, false, false, false, false],
        "peer reaches web in both families; iso is isolated both ways in both families"
    );

    flush_neighbours(&[&lab.host, iso, peer, web]);
    assert!(ping(peer, v6(2)), "after the neighbours are flushed, NDP through the default deny works again");
    assert!(!ping(iso, v6(2)), "iso stays isolated");
    let neighbour = gateway_neighbour(iso);
    assert!(
        neighbour.contains("lladdr ee:ee:ee:ee:ee:ee"),
        "the isolated pod still resolves its gateway (its NS reached the node, the NA came back): {neighbour}"
    );

    // An IPv6 set is changed by element updates, as an IPv4 one.
    let peer6 = (*node.span_mut().ip_sets[1]).clone();
    node.span_mut().ip_sets[1] = IpSet { members: vec![], ..peer6.clone() }.into();
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Elements, "an IPv6 member removed is an element update");
    assert_eq!((ping(peer, v4(2)), ping(peer, v6(2))), (true, false), "peer left the IPv6 set only");
    node.span_mut().ip_sets[1] = peer6.into();
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Elements, "an IPv6 member added is an element update");
    assert!(ping(peer, v6(2)), "peer is back in the IPv6 set");

    // Without the rule that lets NDP through, the default deny breaks IPv6: the rule is what the
    // passes above stood on.
    let (ok, text) = lab.host.sh("nft delete rule inet gingham endpoint_to_host handle \
         $(nft -a list chain inet gingham endpoint_to_host | awk '/icmpv6 type/ {print $NF}')");
    assert!(ok, "{text}");
    flush_neighbours(&[&lab.host, iso, peer, web]);
    assert!(!ping(peer, v6(2)), "NS from the pod to its gateway is dropped by the default endpoint-to-host deny");
    assert!(ping(peer, v4(2)), "IPv4 does not need it");
}

/// A TCP listener on `[::]:port` inside the namespace, answering each client with its address.
fn serve_peer_address6(ns: &Netns, port: u16) {
    let path = format!("/run/netns/{}", ns.name);
    let (ready, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        setns(std::fs::File::open(&path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind(("::", port)).unwrap();
        ready.send(()).unwrap();
        for mut stream in listener.incoming().flatten() {
            let peer = stream.peer_addr().map(|p| p.ip().to_canonical().to_string()).unwrap_or_default();
            let _ = stream.write_all(peer.as_bytes());
        }
    });
    wait.recv().unwrap();
}

/// Connects from inside the namespace; what the server answered, or `None`.
fn connect(ns: &Netns, address: IpAddr, port: u16) -> Option<String> {
    ns.run(move || async move {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::from((address, port)), Duration::from_millis(1500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_millis(1500))).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    })
}

#[test]
fn nat66_rewrites_the_source_of_traffic_leaving_the_pools() {
    require_root();
    let mut node = node();
    let lab = lab("nat6", &node);
    let peer = &lab.pods[1];
    serve_peer_address6(&lab.outside, 7070);
    serve_peer_address6(&lab.pods[2], 8080);
    assert_clean(&lab.host.sync(&node).0);
    let (outside4, outside6) =
        (IpAddr::from([192, 168, 86, 2]), IpAddr::from("fd00:99::2".parse::<Ipv6Addr>().unwrap()));
    assert_eq!(connect(peer, outside6, 7070).as_deref(), Some("fd00:99::1"), "the far side sees the node's IPv6");
    assert_eq!(connect(peer, outside4, 7070).as_deref(), Some("192.168.86.1"), "and its IPv4");
    assert_eq!(connect(peer, v6(2).into(), 8080).as_deref(), Some(PODS[1].2), "inside the pools: not masqueraded");
    assert_eq!(connect(&lab.pods[0], v6(2).into(), 8080), None, "web's named port is open, but iso's egress is denied");

    node.spec.pools[1].nat_outgoing = false;
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Elements, "natOutgoing of a pool is an element of nat_pools6");
    assert_eq!(connect(peer, outside6, 7070).as_deref(), Some(PODS[1].2), "natOutgoing off: the pod itself");
    assert_eq!(connect(peer, outside4, 7070).as_deref(), Some("192.168.86.1"), "the IPv4 pool still masquerades");
}

/// The ruleset of an IPv6-only node (no IPv4 address, IPv6 pools and sets, an IPv6 failsafe) loads
/// into the kernel, and nft lists exactly the elements and chains the agent expects.
#[test]
fn an_ipv6_only_node_ruleset_loads_and_lists_as_expected() {
    use gingham_node_agent::dataplane::NodeView;
    use gingham_node_agent::dataplane::nft::apply::{Nft, NftChange, NftCommand};
    use gingham_node_agent::dataplane::nft::build::ruleset;
    use gingham_node_agent::dataplane::nft::observe::Observed;
    use gingham_node_agent::dataplane::plan::NodePlan;

    require_root();
    let mut node = node();
    node.spec.address = None;
    node.spec.blocks.retain(|b| b.as_str().contains(':'));
    node.spec.pools.retain(|p| p.cidr.as_str().contains(':'));
    node.spec.policy.failsafe_inbound = vec![gingham_crds::api::felix::ProtoPort {
        protocol: "TCP".into(),
        port: 22,
        net: Some("fd00:99::/64".into()),
    }];
    // The operator's IPv4 sets are empty on an IPv6-only cluster.
    for set in &mut node.span_mut().ip_sets {
        if set.family == IpFamily::IPv4 {
            *set = IpSet { members: vec![], ..(**set).clone() }.into();
        }
    }
    let host = Netns::new("v6only", "node");
    let plan = NodePlan::build(&node.name, &node.spec, node.span.as_ref(), &[]);
    let view = NodeView { plan: &plan, endpoints: &node.endpoints, tunnel_address: None, tunnel_address6: None };
    let rules = ruleset(&view, plan.policy.as_ref().unwrap());
    let names: Vec<&str> = rules.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s_gs6_peer", "s_gp6_web", "all_pools", "nat_pools", "all_pools6", "nat_pools6"]);
    let applied = rules.clone();
    let listed = host.run(move || async move {
        let mut nft = NftCommand::default();
        nft.apply(NftChange::Rewrite(&applied)).await.unwrap();
        nft.list().await.unwrap().unwrap()
    });
    let expected = Observed::expected(&rules);
    assert_eq!(listed.elements, expected.elements);
    assert_eq!(listed.chains, expected.chains);
    assert_eq!(listed.fingerprint, expected.fingerprint);
    let (ok, text) = host.sh("nft list chain inet gingham endpoint_to_host");
    assert!(ok && text.contains("ip6 saddr fd00:99::/64 tcp dport 22 accept"), "{text}");
}
