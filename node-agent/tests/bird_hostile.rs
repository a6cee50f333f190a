#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Hostile values in every field of the spec and the span's sessions that reaches `bird.conf`:
//! each is rejected (the spec, or just its session) or rendered inert. What is rendered parses with the real `bird -p`
//! and holds no injected protocol, and the node's good session is always there.

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec, PeerKind, PoolRouting};
use gingham_crds::validate::validate_node_network;
use gingham_node_agent::bird::{BirdConfig, BirdPaths, render_config, screen};

/// A payload that would add a protocol hijacking a pod's /32 if it reached the config verbatim.
const INJECTION: &str = "1.2.3.4;\n}\nprotocol static evil { ipv4; route 10.244.0.7/32 via 192.168.10.9; }\n#";

/// Hostile text: BIRD syntax, quotes, a keyword, a very long string, non-ASCII.
fn hostile_texts() -> Vec<String> {
    vec![
        INJECTION.into(),
        "x;".into(),
        "x }".into(),
        "x\" ; protocol static evil {}".into(),
        "protocol".into(),
        "a".repeat(10_000),
        "ünïcödé_\u{202e}evil".into(),
        "x\r\nprotocol static evil {}".into(),
        String::new(),
    ]
}

fn spec() -> NodeNetworkSpec {
    NodeNetworkSpec {
        address: Some("192.168.10.2/24".into()),
        blocks: vec!["10.244.0.0/26".into()],
        pools: vec![PoolRouting { name: "default".into(), cidr: "10.244.0.0/16".into(), ..Default::default() }],
        ..Default::default()
    }
}

fn session(name: &str, address: &str) -> BgpPeerSession {
    BgpPeerSession {
        name: name.into(),
        kind: PeerKind::Explicit,
        address: address.into(),
        port: 179,
        as_number: 65001,
        use_node_source_address: true,
        ..Default::default()
    }
}

fn bgp() -> NodeBgpSpec {
    NodeBgpSpec {
        router_id: "192.168.10.2".into(),
        as_number: 64512,
        listen_port: 179,
        route_reflector_cluster_id: Some("244.0.0.1".into()),
    }
}

type SessionEdit = Box<dyn Fn(&mut BgpPeerSession)>;

/// Every session field that reaches bird.conf, each set to hostile values.
fn hostile_sessions() -> Vec<(String, SessionEdit)> {
    let mut cases: Vec<(String, SessionEdit)> = Vec::new();
    for text in hostile_texts() {
        let short: String = text.chars().take(24).collect();
        let (a, b, c, d) = (text.clone(), text.clone(), text.clone(), text.clone());
        cases.push((format!("name {short:?}"), Box::new(move |s| s.name = a.clone())));
        cases.push((format!("address {short:?}"), Box::new(move |s| s.address = b.clone().into())));
        cases.push((format!("password {short:?}"), Box::new(move |s| s.password = Some(c.clone()))));
        cases.push((format!("next hop mode {short:?}"), Box::new(move |s| s.next_hop_mode = Some(d.clone()))));
    }
    let numbers: Vec<(&str, SessionEdit)> = vec![
        ("port 0", Box::new(|s| s.port = 0)),
        ("AS 0", Box::new(|s| s.as_number = 0)),
        ("local AS 0", Box::new(|s| s.local_as_number = Some(0))),
        ("keepalive 0", Box::new(|s| s.keepalive_seconds = Some(0))),
        ("keepalive 21846", Box::new(|s| s.keepalive_seconds = Some(21846))),
        ("keepalive max", Box::new(|s| s.keepalive_seconds = Some(u32::MAX))),
        ("restart max", Box::new(|s| s.max_restart_seconds = Some(u32::MAX))),
        ("ttl 0", Box::new(|s| s.ttl_security = Some(0))),
        ("allowed local AS max", Box::new(|s| s.allowed_local_as = Some(u32::MAX))),
        ("name a keyword BIRD refuses", Box::new(|s| s.name = "bgp".into())),
        ("name taken by the good session", Box::new(|s| s.name = "peer_good".into())),
        ("IPv4 local address to an IPv6 peer", Box::new(|s| s.address = "2001:db8::1".into())),
    ];
    cases.extend(numbers.into_iter().map(|(name, edit)| (name.to_string(), edit)));
    cases
}

/// The protocols a config may hold; anything else was injected.
const PROTOCOLS: [&str; 6] = [
    "protocol device {",
    "protocol direct gingham_direct {",
    "protocol kernel gingham_kernel {",
    "protocol static gingham_blocks {",
    "protocol bgp peer_good {",
    "protocol bgp peer_bad {",
];

fn assert_inert(case: &str, text: &str) {
    for line in text.lines() {
        let code = line.trim_start();
        let injected = (code.starts_with("protocol ") && !PROTOCOLS.contains(&line))
            || (code.starts_with("route ") && code != "route 10.244.0.0/26 blackhole;");
        assert!(!injected, "{case}: injected {line:?} into the config:\n{text}");
    }
    assert!(text.contains("protocol bgp peer_good {"), "{case}: the good session is missing:\n{text}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bird.conf");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new("/usr/sbin/bird").arg("-p").arg("-c").arg(&path).output().unwrap();
    assert!(output.status.success(), "{case}: {}\n{text}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn hostile_session_values_are_left_out_or_inert() {
    let dir = tempfile::tempdir().unwrap();
    let paths = BirdPaths::debian(dir.path());
    for (case, edit) in hostile_sessions() {
        // An internal route-reflector client, so that every line a session can have is rendered.
        let mut bad = session("peer_bad", "10.0.0.2");
        bad.as_number = 64512;
        bad.route_reflector_client = true;
        edit(&mut bad);
        let peers = vec![session("peer_good", "10.0.0.1"), bad];
        let (mut config, mut left_out) = BirdConfig::decode("node-a", &spec(), &bgp(), &peers).unwrap();
        let (text, rejected) = screen(&paths, &mut config).await.unwrap();
        left_out.extend(rejected);
        assert_inert(&case, &text);
        let sessions = text.matches("protocol bgp ").count();
        assert_eq!(sessions + left_out.len(), 2, "{case}: every session is programmed or reported: {left_out:?}");
    }
}

#[test]
fn hostile_node_values_reject_the_spec() {
    type NodeEdit = Box<dyn Fn(&mut NodeNetworkSpec, &mut NodeBgpSpec, &str)>;
    // (field, edit, whether BIRD's config cannot even be decoded: the node's own BGP settings)
    let fields: Vec<(&str, NodeEdit, bool)> = vec![
        ("router id", Box::new(|_, b, t| b.router_id = t.into()), true),
        ("cluster id", Box::new(|_, b, t| b.route_reflector_cluster_id = Some(t.into())), true),
        ("node address", Box::new(|s, _, t| s.address = Some(t.into())), false),
        ("block", Box::new(|s, _, t| s.blocks = vec![t.into()]), false),
        ("pool", Box::new(|s, _, t| s.pools[0].cidr = t.into()), false),
    ];
    for (field, edit, undecodable) in &fields {
        for text in hostile_texts() {
            let (mut node, mut node_bgp) = (spec(), bgp());
            edit(&mut node, &mut node_bgp, &text);
            let decoded = BirdConfig::decode("node-a", &node, &node_bgp, &[session("peer_good", "10.0.0.1")]);
            assert_eq!(decoded.is_err(), *undecodable, "{field} {text:?}");
            if let Ok((config, _)) = decoded {
                assert_inert(&format!("{field} {text:?}"), &render_config(&config).text);
            }
            let whole = NodeNetworkSpec { bgp: Some(node_bgp), ..node };
            assert!(validate_node_network(&whole).is_err(), "the agent accepted a spec with {field} {text:?}");
        }
    }
    for (field, as_zero) in [("AS 0", true), ("listen port 0", false)] {
        let mut node_bgp = bgp();
        if as_zero {
            node_bgp.as_number = 0;
        } else {
            node_bgp.listen_port = 0;
        }
        let peers = [session("peer_good", "10.0.0.1")];
        assert!(BirdConfig::decode("node-a", &spec(), &node_bgp, &peers).is_err(), "{field} was accepted");
    }
}

#[test]
fn a_hostile_node_name_is_an_inert_comment() {
    for text in hostile_texts() {
        let (config, left_out) =
            BirdConfig::decode(&text, &spec(), &bgp(), &[session("peer_good", "10.0.0.1")]).unwrap();
        assert!(left_out.is_empty());
        assert_inert(&format!("node name {text:?}"), &render_config(&config).text);
    }
}

/// The reported attack: a cluster id carrying BIRD syntax. The spec is refused, and the renderer
/// cannot write it either.
#[test]
fn a_hostile_cluster_id_is_refused_by_the_agent_and_the_renderer() {
    let mut peer = session("peer_good", "10.0.0.1");
    peer.as_number = 64512;
    peer.route_reflector_client = true;
    let node_bgp = NodeBgpSpec { route_reflector_cluster_id: Some(INJECTION.into()), ..bgp() };
    let whole = NodeNetworkSpec { bgp: Some(node_bgp.clone()), ..spec() };
    assert!(validate_node_network(&whole).is_err(), "the agent accepted the spec");
    assert!(gingham_node_agent::bird::render("node-a", &spec(), &node_bgp, &[peer]).is_err(), "the renderer wrote it");
}
