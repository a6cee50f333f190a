#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! BIRD config renders: golden files, and every render parses with the real `bird -p`.

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec, PeerKind, PoolRouting};
use gingham_node_agent::bird::{BirdError, render};

fn spec() -> NodeNetworkSpec {
    NodeNetworkSpec {
        address: Some("192.168.10.2/24".into()),
        blocks: vec!["10.244.0.0/26".into(), "10.250.0.0/26".into()],
        pools: vec![
            PoolRouting { name: "default".into(), cidr: "10.244.0.0/16".into(), ..Default::default() },
            PoolRouting {
                name: "private".into(),
                cidr: "10.250.0.0/16".into(),
                disable_bgp_export: true,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn peer(name: &str, address: &str, kind: PeerKind) -> BgpPeerSession {
    BgpPeerSession {
        name: name.into(),
        kind,
        address: address.into(),
        port: 179,
        as_number: 64512,
        use_node_source_address: true,
        ..Default::default()
    }
}

fn bgp() -> NodeBgpSpec {
    NodeBgpSpec {
        router_id: "192.168.10.2".into(),
        as_number: 64512,
        listen_port: 179,
        route_reflector_cluster_id: None,
    }
}

/// A dual-stack node: an IPv6 address and an IPv6 block next to the IPv4 ones.
fn dual_stack_spec() -> NodeNetworkSpec {
    let mut spec = spec();
    spec.address6 = Some("fd00:10::2/64".into());
    spec.blocks.push("fd00:244::/122".into());
    spec.pools.push(PoolRouting { name: "v6".into(), cidr: "fd00:244::/48".into(), ..Default::default() });
    spec
}

/// An IPv6-only node: no IPv4 address, so its router id comes from the spec (a hash, as Calico).
fn ipv6_only_spec() -> NodeNetworkSpec {
    NodeNetworkSpec {
        address6: Some("fd00:10::2/64".into()),
        blocks: vec!["fd00:244::/122".into()],
        pools: vec![PoolRouting { name: "v6".into(), cidr: "fd00:244::/48".into(), ..Default::default() }],
        ..Default::default()
    }
}

/// Each case's name, the node's BGP settings and its sessions.
fn cases() -> Vec<(&'static str, NodeBgpSpec, Vec<BgpPeerSession>)> {
    let mesh = vec![
        peer("Mesh_192_168_10_3", "192.168.10.3", PeerKind::Mesh),
        peer("Mesh_192_168_20_4", "192.168.20.4", PeerKind::Mesh),
    ];
    let reflector = NodeBgpSpec { route_reflector_cluster_id: Some("244.0.0.1".into()), ..bgp() };
    let mut client = peer("Client_192_168_10_3", "192.168.10.3", PeerKind::RouteReflector);
    client.route_reflector_client = true;
    let mut explicit = peer("Peer_10_0_0_1", "10.0.0.1", PeerKind::Explicit);
    explicit.as_number = 65001;
    explicit.port = 1179;
    explicit.local_as_number = Some(64999);
    explicit.password = Some("s3cret".into());
    explicit.keepalive_seconds = Some(20);
    explicit.max_restart_seconds = Some(120);
    explicit.next_hop_mode = Some("Self".into());
    explicit.ttl_security = Some(2);
    explicit.allowed_local_as = Some(1);
    let mut keep = peer("Peer_10_0_0_2", "10.0.0.2", PeerKind::Explicit);
    keep.next_hop_mode = Some("Keep".into());
    keep.use_node_source_address = false;
    keep.ttl_security = Some(1);
    vec![
        ("mesh", bgp(), mesh),
        ("route_reflector", reflector, vec![client]),
        ("explicit_peers", bgp(), vec![explicit, keep]),
    ]
}

/// The IPv6 cases: a dual-stack mesh (one session per family), a dual-stack route reflector, and
/// an IPv6-only node with an external IPv6 peer.
fn ipv6_cases() -> Vec<(&'static str, NodeNetworkSpec, NodeBgpSpec, Vec<BgpPeerSession>)> {
    let mesh = vec![
        peer("Mesh_192_168_10_3", "192.168.10.3", PeerKind::Mesh),
        peer("Mesh_fd00_10__3", "fd00:10::3", PeerKind::Mesh),
    ];
    let reflector = NodeBgpSpec { route_reflector_cluster_id: Some("244.0.0.1".into()), ..bgp() };
    let mut client = peer("Client_fd00_10__3", "fd00:10::3", PeerKind::RouteReflector);
    client.route_reflector_client = true;
    let mut external = peer("Peer_fd00_99__1", "fd00:99::1", PeerKind::Explicit);
    external.as_number = 65001;
    external.next_hop_mode = Some("Self".into());
    let hashed = NodeBgpSpec { router_id: "39.12.200.7".into(), ..bgp() };
    vec![
        ("dual_stack_mesh", dual_stack_spec(), bgp(), mesh),
        ("dual_stack_route_reflector", dual_stack_spec(), reflector, vec![client]),
        ("ipv6_only_external_peer", ipv6_only_spec(), hashed, vec![external]),
    ]
}

/// Every case: the IPv4 ones on the IPv4 node, and the IPv6 ones.
fn all_cases() -> Vec<(&'static str, NodeNetworkSpec, NodeBgpSpec, Vec<BgpPeerSession>)> {
    let ipv4 = cases().into_iter().map(|(name, bgp, peers)| (name, spec(), bgp, peers));
    ipv4.chain(ipv6_cases()).collect()
}

#[test]
fn renders_match_the_golden_files() {
    for (name, spec, bgp, peers) in all_cases() {
        let text = render("node-a", &spec, &bgp, &peers).unwrap();
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn every_render_parses_with_bird() {
    let dir = tempfile::tempdir().unwrap();
    for (name, spec, bgp, peers) in all_cases() {
        let path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&path, render("node-a", &spec, &bgp, &peers).unwrap()).unwrap();
        let output = std::process::Command::new("/usr/sbin/bird").arg("-p").arg("-c").arg(&path).output().unwrap();
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn blocks_of_pools_without_bgp_export_are_announced_but_not_exported() {
    let (_, bgp, mesh) = cases().remove(0);
    let text = render("node-a", &spec(), &bgp, &mesh).unwrap();
    assert!(text.contains("route 10.250.0.0/26 blackhole;"));
    assert!(text.contains("if net = 10.244.0.0/26 then accept;"));
    assert!(!text.contains("if net = 10.250.0.0/26"));
}

#[test]
fn a_password_bird_cannot_read_is_a_render_error() {
    let mut bad = peer("Peer_1", "10.0.0.1", PeerKind::Explicit);
    bad.password = Some("a\"b".into());
    let error = render("node-a", &spec(), &bgp(), &[bad]).unwrap_err();
    assert!(matches!(error, BirdError::Render { .. }), "{error}");
    assert!(error.to_string().contains("Peer_1"), "{error}");
}

#[test]
fn each_session_carries_the_routes_of_its_peer_family() {
    let (_, spec, bgp, mesh) = ipv6_cases().remove(0);
    let text = render("node-a", &spec, &bgp, &mesh).unwrap();
    let session = |name: &str| -> String {
        let start = text.find(&format!("protocol bgp {name} {{")).unwrap();
        text[start..].split("\n}").next().unwrap().to_string()
    };
    let ipv4 = session("Mesh_192_168_10_3");
    assert!(
        ipv4.contains("local 192.168.10.2 port 179") && ipv4.contains("ipv4 {") && !ipv4.contains("ipv6"),
        "{ipv4}"
    );
    assert!(ipv4.contains("export filter gingham_export_blocks;"), "{ipv4}");
    let ipv6 = session("Mesh_fd00_10__3");
    assert!(ipv6.contains("local fd00:10::2 port 179") && ipv6.contains("ipv6 {") && !ipv6.contains("ipv4"), "{ipv6}");
    assert!(ipv6.contains("export filter gingham_export_blocks6;"), "{ipv6}");
    assert!(text.contains("protocol static gingham_blocks6 {\n  ipv6;\n  route fd00:244::/122 blackhole;"), "{text}");
    assert!(text.contains("filter gingham_export_blocks6 {\n  if net = fd00:244::/122 then accept;"), "{text}");
}

#[test]
fn an_ipv6_only_node_has_no_ipv4_protocols_and_an_ipv4_peer_is_refused_with_the_reason() {
    let (_, spec, bgp, peers) = ipv6_cases().remove(2);
    let text = render("node-a", &spec, &bgp, &peers).unwrap();
    assert!(!text.contains("ipv4"), "{text}");
    assert!(text.contains("router id 39.12.200.7;"));
    let error = render("node-a", &spec, &bgp, &[peer("Peer_10_0_0_1", "10.0.0.1", PeerKind::Explicit)]).unwrap_err();
    assert!(error.to_string().contains("this node has no IPv4 address (spec.address)"), "{error}");
}
