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

#[test]
fn renders_match_the_golden_files() {
    for (name, bgp, peers) in cases() {
        let text = render("node-a", &spec(), &bgp, &peers).unwrap();
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn every_render_parses_with_bird() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bgp, peers) in cases() {
        let path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&path, render("node-a", &spec(), &bgp, &peers).unwrap()).unwrap();
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
