#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use gingham_crds::api::common::{AsNumber, SecretKeySelector};
use gingham_crds::api::{BGPPeer, BGPPeerSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Node, Secret};

use super::*;
use crate::core::facts::{AS_ANNOTATION, RR_CLUSTER_ID_KEY};
use crate::core::testkit::{Meta, meta, node};

fn peer(name: &str, spec: BGPPeerSpec) -> BGPPeer {
    BGPPeer { metadata: meta(None, name), spec }
}

fn rr(name: &str, address: &str) -> Node {
    node(name, address).label(RR_CLUSTER_ID_KEY, "1.0.0.1").label("rr", "yes")
}

fn secret(name: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: meta(Some("gingham-system"), name),
        data: Some(BTreeMap::from([(key.to_string(), ByteString(value.as_bytes().to_vec()))])),
        ..Secret::default()
    }
}

fn password_ref(name: &str, key: &str) -> Option<BgpPassword> {
    Some(BgpPassword { secret_key_ref: Some(SecretKeySelector { name: name.into(), key: key.into(), optional: None }) })
}

fn run(
    config: &BGPConfigurationSpec,
    nodes: &[Node],
    peers: &[BGPPeer],
    secrets: &[Secret],
) -> (BTreeMap<String, Option<NodeBgp>>, Vec<ObjectProblem>) {
    let nodes: BTreeMap<String, NodeFacts> = nodes
        .iter()
        .map(|n| {
            let facts = NodeFacts::from_node(n).0;
            (facts.name.clone(), facts)
        })
        .collect();
    topology(&BgpInput { config, nodes: &nodes, peers, secrets, namespace: "gingham-system" })
}

/// `(session name, kind, rr client)` per node, for compact expectations.
fn summary(result: &BTreeMap<String, Option<NodeBgp>>, node: &str) -> Vec<(String, PeerKind, bool)> {
    let spec = result[node].as_ref().unwrap();
    spec.peers.iter().map(|p| (p.name.clone(), p.kind, p.route_reflector_client)).collect()
}

fn s(name: &str, kind: PeerKind, client: bool) -> (String, PeerKind, bool) {
    (name.to_string(), kind, client)
}

fn mesh_off() -> BGPConfigurationSpec {
    BGPConfigurationSpec { node_to_node_mesh_enabled: Some(false), ..BGPConfigurationSpec::default() }
}

fn to_reflectors() -> BGPPeer {
    peer(
        "to-rr",
        BGPPeerSpec {
            node_selector: Some("all()".into()),
            peer_selector: Some("has(rr)".into()),
            ..BGPPeerSpec::default()
        },
    )
}

#[test]
fn topologies_come_out_as_configured() {
    type Expect = Vec<(&'static str, Vec<(String, PeerKind, bool)>)>;
    type Case = (&'static str, BGPConfigurationSpec, Vec<Node>, Vec<BGPPeer>, Expect);
    let three = vec![node("a", "10.0.0.1/24"), node("b", "10.0.0.2/24"), node("c", "10.0.0.3/24")];
    let with_rrs =
        vec![rr("r1", "10.0.0.11/24"), rr("r2", "10.0.0.12/24"), node("a", "10.0.0.1/24"), node("b", "10.0.0.2/24")];
    let external = peer(
        "tor.switch",
        BGPPeerSpec {
            peer_ip: Some("192.0.2.1:1179".into()),
            as_number: Some(AsNumber::new(65000)),
            ..BGPPeerSpec::default()
        },
    );
    let for_a = peer(
        "only-a",
        BGPPeerSpec {
            node: Some("a".into()),
            peer_ip: Some("192.0.2.9".into()),
            as_number: Some(AsNumber::new(65001)),
            ..BGPPeerSpec::default()
        },
    );
    let cases: Vec<Case> = vec![
        (
            "full mesh by default",
            BGPConfigurationSpec::default(),
            three.clone(),
            vec![],
            vec![
                ("a", vec![s("mesh_10_0_0_2", PeerKind::Mesh, false), s("mesh_10_0_0_3", PeerKind::Mesh, false)]),
                ("c", vec![s("mesh_10_0_0_1", PeerKind::Mesh, false), s("mesh_10_0_0_2", PeerKind::Mesh, false)]),
            ],
        ),
        ("mesh off, no peers: no sessions", mesh_off(), three.clone(), vec![], vec![("a", vec![])]),
        (
            "route reflectors: clients peer with reflectors, reflectors with each other and their clients",
            mesh_off(),
            with_rrs.clone(),
            vec![to_reflectors()],
            vec![
                (
                    "a",
                    vec![
                        s("rr_10_0_0_11", PeerKind::RouteReflector, false),
                        s("rr_10_0_0_12", PeerKind::RouteReflector, false),
                    ],
                ),
                (
                    "r1",
                    vec![
                        s("mesh_10_0_0_12", PeerKind::Mesh, false),
                        s("rr_10_0_0_1", PeerKind::RouteReflector, true),
                        s("rr_10_0_0_2", PeerKind::RouteReflector, true),
                    ],
                ),
            ],
        ),
        (
            "global and per-node external peers",
            BGPConfigurationSpec::default(),
            vec![node("a", "10.0.0.1/24"), node("b", "10.0.0.2/24")],
            vec![external, for_a],
            vec![
                (
                    "a",
                    vec![
                        s("mesh_10_0_0_2", PeerKind::Mesh, false),
                        s("peer_only_a", PeerKind::Explicit, false),
                        s("peer_tor_switch", PeerKind::Explicit, false),
                    ],
                ),
                ("b", vec![s("mesh_10_0_0_1", PeerKind::Mesh, false), s("peer_tor_switch", PeerKind::Explicit, false)]),
            ],
        ),
        (
            "a node without an address gets no mesh session",
            BGPConfigurationSpec::default(),
            vec![node("a", "10.0.0.1/24"), node("x", "")],
            vec![],
            vec![("a", vec![])],
        ),
    ];
    for (case, config, nodes, peers, expected) in cases {
        let (result, _) = run(&config, &nodes, &peers, &[]);
        for (node, sessions) in expected {
            assert_eq!(summary(&result, node), sessions, "{case}: node {node}");
        }
    }
}

#[test]
fn sessions_carry_as_ports_passwords_and_timers() {
    let config = BGPConfigurationSpec {
        as_number: Some(AsNumber::new(65100)),
        listen_port: Some(1179),
        ..BGPConfigurationSpec::default()
    };
    let peers = [peer(
        "ext",
        BGPPeerSpec {
            peer_ip: Some("[2001:db8::1]:2179".into()),
            as_number: Some(AsNumber::new(65000)),
            local_as_number: Some(AsNumber::new(65200)),
            password: password_ref("bgp", "pw"),
            keepalive_time: Some("20s".into()),
            max_restart_time: Some("2m".into()),
            next_hop_mode: Some(NextHopMode::SelfHop),
            ..BGPPeerSpec::default()
        },
    )];
    let nodes =
        [node("a", "10.0.0.1/24,fd00::1/64").annotate(AS_ANNOTATION, "65300"), node("b", "10.0.0.2/24,fd00::2/64")];
    let (result, problems) = run(&config, &nodes, &peers, &[secret("bgp", "pw", "s3cret")]);
    assert!(problems.is_empty(), "{problems:?}");
    let a = result["a"].as_ref().unwrap();
    assert_eq!((a.spec.router_id.as_str(), a.spec.as_number, a.spec.listen_port), ("10.0.0.1", 65300, 1179));
    let mesh = &a.peers[0];
    assert_eq!((mesh.address.as_str(), mesh.port, mesh.as_number), ("10.0.0.2", 1179, 65100));
    let ext = &a.peers[2];
    assert_eq!((ext.address.as_str(), ext.port, ext.as_number), ("2001:db8::1", 2179, 65000));
    assert_eq!(ext.local_as_number, Some(65200));
    assert_eq!(ext.password.as_deref(), Some("s3cret"));
    assert_eq!((ext.keepalive_seconds, ext.max_restart_seconds), (Some(20), Some(120)));
    assert_eq!(ext.next_hop_mode.as_deref(), Some("Self"));
    let b = result["b"].as_ref().unwrap();
    assert_eq!(b.peers[0].as_number, 65300, "b sees a's own AS");
}

#[test]
fn bad_peers_are_skipped_with_a_problem() {
    let cases = [
        ("no target", BGPPeerSpec::default(), "InvalidBGPPeer"),
        (
            "bad address",
            BGPPeerSpec {
                peer_ip: Some("300.1.1.1".into()),
                as_number: Some(AsNumber::new(1)),
                ..BGPPeerSpec::default()
            },
            "InvalidBGPPeer",
        ),
        (
            "bad keepalive",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(1)),
                keepalive_time: Some("soon".into()),
                ..BGPPeerSpec::default()
            },
            "InvalidBGPPeer",
        ),
        (
            "keepalive 0s",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(1)),
                keepalive_time: Some("0s".into()),
                ..BGPPeerSpec::default()
            },
            "InvalidBGPPeer",
        ),
        (
            "keepalive over BIRD's hold time",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(1)),
                keepalive_time: Some("21846s".into()),
                ..BGPPeerSpec::default()
            },
            "InvalidBGPPeer",
        ),
        (
            "local AS 0",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(1)),
                local_as_number: Some(AsNumber::new(0)),
                ..BGPPeerSpec::default()
            },
            "InvalidBGPPeer",
        ),
        (
            "peer AS 0",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(0)),
                ..BGPPeerSpec::default()
            },
            "InvalidBGPPeer",
        ),
        (
            "missing secret",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(1)),
                password: password_ref("nope", "pw"),
                ..BGPPeerSpec::default()
            },
            "MissingSecret",
        ),
    ];
    for (case, spec, reason) in cases {
        let (result, problems) = run(&mesh_off(), &[node("a", "10.0.0.1/24")], &[peer("p", spec)], &[]);
        assert!(result["a"].as_ref().unwrap().peers.is_empty(), "{case}");
        assert_eq!(problems.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(), [reason], "{case}");
    }
}

#[test]
fn names_stay_unique_and_bird_safe() {
    let peers = [
        peer(
            "x-1",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.1".into()),
                as_number: Some(AsNumber::new(1)),
                ..BGPPeerSpec::default()
            },
        ),
        peer(
            "x.1",
            BGPPeerSpec {
                peer_ip: Some("192.0.2.2".into()),
                as_number: Some(AsNumber::new(1)),
                ..BGPPeerSpec::default()
            },
        ),
    ];
    let (result, _) = run(&mesh_off(), &[node("a", "10.0.0.1/24")], &peers, &[]);
    let names: Vec<String> = result["a"].as_ref().unwrap().peers.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["peer_x_1", "peer_x_1_2"]);
}

#[test]
fn a_mesh_restart_time_bird_refuses_is_reported_and_the_mesh_stays() {
    let config =
        BGPConfigurationSpec { node_mesh_max_restart_time: Some("5000s".into()), ..BGPConfigurationSpec::default() };
    let (result, problems) = run(&config, &[node("a", "10.0.0.1/24"), node("b", "10.0.0.2/24")], &[], &[]);
    assert_eq!(problems.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(), ["InvalidBGPConfiguration"]);
    assert_eq!(summary(&result, "a"), [s("mesh_10_0_0_2", PeerKind::Mesh, false)]);
}

#[test]
fn a_long_bgppeer_name_still_makes_a_bird_name() {
    let long = "p".repeat(200);
    let spec =
        BGPPeerSpec { peer_ip: Some("192.0.2.1".into()), as_number: Some(AsNumber::new(1)), ..BGPPeerSpec::default() };
    let (result, problems) = run(&mesh_off(), &[node("a", "10.0.0.1/24")], &[peer(&long, spec)], &[]);
    assert!(problems.is_empty(), "{problems:?}");
    let name = &result["a"].as_ref().unwrap().peers[0].name;
    assert!(name.starts_with("peer_ppp") && name.len() <= 64, "{name}");
}

#[test]
fn a_hostile_cluster_id_never_reaches_the_node_network() {
    let hostile = "1.2.3.4;\n}\nprotocol static evil { ipv4; route 10.244.1.7/32 via 10.0.0.9; }";
    let nodes = [node("a", "10.0.0.1/24").annotate(RR_CLUSTER_ID_KEY, hostile), node("b", "10.0.0.2/24")];
    let nodes: BTreeMap<String, NodeFacts> = nodes
        .iter()
        .map(|n| {
            let (facts, problems) = NodeFacts::from_node(n);
            assert_eq!(problems.is_empty(), facts.name == "b", "{problems:?}");
            (facts.name.clone(), facts)
        })
        .collect();
    let config = BGPConfigurationSpec::default();
    let (result, _) = topology(&BgpInput { config: &config, nodes: &nodes, peers: &[], secrets: &[], namespace: "x" });
    assert_eq!(result["a"].as_ref().unwrap().spec.route_reflector_cluster_id, None);
}

/// A session per family: dual-stack nodes peer over IPv4 and over IPv6, an IPv6-only node over
/// IPv6 with a hashed router id, and a BGPPeer with an IPv6 peerIP reaches only nodes with IPv6.
#[test]
fn sessions_are_per_family_between_the_nodes_addresses_of_that_family() {
    let config = BGPConfigurationSpec::default();
    let peers = [peer(
        "tor6",
        BGPPeerSpec {
            peer_ip: Some("fd00:10::fe".into()),
            as_number: Some(AsNumber::new(65000)),
            ..BGPPeerSpec::default()
        },
    )];
    let nodes = [
        node("a", "10.0.0.1/24,fd00:10::1/64"),
        node("b", "10.0.0.2/24,fd00:10::2/64"),
        node("c", "fd00:10::3/64"),
        node("d", "10.0.0.4/24"),
    ];
    let (result, problems) = run(&config, &nodes, &peers, &[]);
    let sessions = |name: &str| {
        result[name].as_ref().unwrap().peers.iter().map(|p| format!("{}={}", p.name, p.address)).collect::<Vec<_>>()
    };
    assert_eq!(
        sessions("a"),
        [
            "mesh_10_0_0_2=10.0.0.2",
            "mesh_10_0_0_4=10.0.0.4",
            "mesh_fd00_10__2=fd00:10::2",
            "mesh_fd00_10__3=fd00:10::3",
            "peer_tor6=fd00:10::fe"
        ]
    );
    assert_eq!(sessions("c"), ["mesh_fd00_10__1=fd00:10::1", "mesh_fd00_10__2=fd00:10::2", "peer_tor6=fd00:10::fe"]);
    assert_eq!(sessions("d"), ["mesh_10_0_0_1=10.0.0.1", "mesh_10_0_0_2=10.0.0.2"]);
    let router_id = |name: &str| result[name].as_ref().unwrap().spec.router_id.to_string();
    assert_eq!(router_id("a"), "10.0.0.1");
    assert_eq!(router_id("c"), crate::core::facts::hashed_router_id("c").to_string(), "no IPv4: Calico's hash");
    let reported: Vec<(&str, &str)> = problems.iter().map(|p| (p.name.as_str(), p.reason.as_str())).collect();
    assert_eq!(reported, [("tor6", "NoAddressForPeer")], "node d cannot reach an IPv6 peer");
    assert!(problems[0].message.contains("node d"));
}

/// Route reflectors serve both families: clients peer with them over each family both have.
#[test]
fn route_reflectors_reflect_both_families() {
    let config = BGPConfigurationSpec { node_to_node_mesh_enabled: Some(false), ..BGPConfigurationSpec::default() };
    let peers = [peer("to-rr", BGPPeerSpec { peer_selector: Some("has(rr)".into()), ..BGPPeerSpec::default() })];
    let nodes = [
        node("rr", "10.0.0.1/24,fd00:10::1/64").label("rr", "").label(RR_CLUSTER_ID_KEY, "244.0.0.1"),
        node("dual", "10.0.0.2/24,fd00:10::2/64"),
        node("six", "fd00:10::3/64"),
    ];
    let (result, problems) = run(&config, &nodes, &peers, &[]);
    assert!(problems.is_empty(), "{problems:?}");
    let sessions = |name: &str| {
        result[name]
            .as_ref()
            .unwrap()
            .peers
            .iter()
            .map(|p| (p.address.to_string(), p.kind, p.route_reflector_client))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sessions("rr"),
        [
            ("10.0.0.2".to_string(), PeerKind::RouteReflector, true),
            ("fd00:10::2".to_string(), PeerKind::RouteReflector, true),
            ("fd00:10::3".to_string(), PeerKind::RouteReflector, true),
        ]
    );
    assert_eq!(sessions("six"), [("fd00:10::1".to_string(), PeerKind::RouteReflector, false)]);
}
