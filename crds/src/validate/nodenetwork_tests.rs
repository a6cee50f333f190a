#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::api::nodenetwork::NodeBgpSpec;

fn session() -> BgpPeerSession {
    BgpPeerSession {
        name: "peer_ext".into(),
        address: "192.0.2.1".into(),
        port: 179,
        as_number: 65000,
        use_node_source_address: true,
        ..BgpPeerSession::default()
    }
}

fn spec(bgp: NodeBgpSpec) -> NodeNetworkSpec {
    NodeNetworkSpec { address: Some("10.0.0.1/24".into()), bgp: Some(bgp), ..NodeNetworkSpec::default() }
}

fn bgp() -> NodeBgpSpec {
    NodeBgpSpec { router_id: "10.0.0.1".into(), as_number: 64512, listen_port: 179, route_reflector_cluster_id: None }
}

/// Every value of a session that reaches bird.conf, at and past BIRD's limits.
#[test]
fn sessions_are_checked_against_what_bird_accepts() {
    type Edit = fn(&mut BgpPeerSession);
    let cases: &[(&str, Edit, Option<&str>)] = &[
        ("as written", |_| {}, None),
        ("keepalive 0", |s| s.keepalive_seconds = Some(0), Some("keepaliveSeconds")),
        ("keepalive 1", |s| s.keepalive_seconds = Some(1), None),
        ("keepalive 21845", |s| s.keepalive_seconds = Some(21845), None),
        ("keepalive 21846", |s| s.keepalive_seconds = Some(21846), Some("keepaliveSeconds")),
        ("AS 0", |s| s.as_number = 0, Some("asNumber")),
        ("AS max", |s| s.as_number = u32::MAX, None),
        ("local AS 0", |s| s.local_as_number = Some(0), Some("localASNumber")),
        ("local AS 1", |s| s.local_as_number = Some(1), None),
        ("port 0", |s| s.port = 0, Some("port")),
        ("port max", |s| s.port = u16::MAX, None),
        ("restart 4095", |s| s.max_restart_seconds = Some(4095), None),
        ("restart 4096", |s| s.max_restart_seconds = Some(4096), Some("maxRestartSeconds")),
        ("ttl 0", |s| s.ttl_security = Some(0), Some("ttlSecurity")),
        ("ttl 255", |s| s.ttl_security = Some(255), None),
        ("allow local as 11", |s| s.allowed_local_as = Some(11), Some("allowedLocalAs")),
        ("next hop Keep", |s| s.next_hop_mode = Some("Keep".into()), None),
        ("next hop injected", |s| s.next_hop_mode = Some("Self;\n}".into()), Some("nextHopMode")),
        ("name with newline", |s| s.name = "x {\n}\nprotocol static evil".into(), Some("name")),
        ("name with digit first", |s| s.name = "1x".into(), Some("name")),
        ("name too long", |s| s.name = "n".repeat(65), Some("name")),
        ("address not an IP", |s| s.address = "192.0.2.1; }".into(), Some("address")),
        ("password with quote", |s| s.password = Some("a\";\n}".into()), Some("password")),
        ("password too long", |s| s.password = Some("p".repeat(81)), Some("password")),
        ("password unicode", |s| s.password = Some("pässwörd".into()), None),
    ];
    for (case, edit, field) in cases {
        let mut peer = session();
        edit(&mut peer);
        let result = validate_bgp_session("bgppeers/a[0]", &peer);
        match field {
            None => assert!(result.is_ok(), "{case}: {result:?}"),
            Some(field) => {
                let errors = result.expect_err(case);
                assert_eq!(errors.len(), 1, "{case}: {errors:?}");
                assert_eq!(errors[0].path, format!("bgppeers/a[0].{field}"), "{case}");
            }
        }
    }
}

#[test]
fn node_bgp_settings_reject_the_spec() {
    type Edit = fn(&mut NodeBgpSpec);
    let cases: &[(&str, Edit, Option<&str>)] = &[
        ("as written", |_| {}, None),
        ("cluster id", |b| b.route_reflector_cluster_id = Some("244.0.0.1".into()), None),
        (
            "cluster id injection",
            |b| b.route_reflector_cluster_id = Some("1.2.3.4;\n}\nprotocol static evil { ipv4; }".into()),
            Some("routeReflectorClusterID"),
        ),
        ("cluster id number", |b| b.route_reflector_cluster_id = Some("17".into()), Some("routeReflectorClusterID")),
        ("router id", |b| b.router_id = "10.0.0.1;\nprotocol".into(), Some("routerID")),
        ("AS 0", |b| b.as_number = 0, Some("asNumber")),
        ("listen port 0", |b| b.listen_port = 0, Some("listenPort")),
    ];
    for (case, edit, field) in cases {
        let mut node = bgp();
        edit(&mut node);
        let result = validate_node_network(&spec(node));
        match field {
            None => assert!(result.is_ok(), "{case}: {result:?}"),
            Some(field) => {
                let errors = result.expect_err(case);
                assert_eq!(errors.len(), 1, "{case}: {errors:?}");
                assert_eq!(errors[0].path, format!("spec.bgp.{field}"), "{case}");
            }
        }
    }
}

/// Each value of the contract that does not decode is reported at its field path; only the
/// node's own address (and BGP, above) rejects the spec whole.
#[test]
fn values_that_do_not_decode_are_reported_with_their_field() {
    use crate::api::nodenetwork::PoolRouting;

    type Edit = fn(&mut NodeNetworkSpec);
    let cases: &[(&str, Edit, &[&str], bool)] = &[
        ("bad address", |s| s.address = Some("10.0.0.1".into()), &["spec.address"], true),
        ("no address at all", |s| s.address = None, &["spec.address"], true),
        ("IPv6 in address", |s| s.address = Some("fd00::2/64".into()), &["spec.address"], true),
        ("IPv4 in address6", |s| s.address6 = Some("10.0.0.2/24".into()), &["spec.address6"], true),
        ("bad address6", |s| s.address6 = Some("fd00::x/64".into()), &["spec.address6"], true),
        ("bad IPv6 vtep", |s| s.tunnel.vtep_mac_v6 = Some("ee".into()), &["spec.tunnel.vtepMACV6"], false),
        (
            "IPv6 block as the IPv4 tunnel source",
            |s| {
                s.blocks.push("fd00:100::/122".into());
                s.tunnel.blocks = vec!["fd00:100::/122".into()];
            },
            &["spec.tunnel.blocks[0]"],
            true,
        ),
        (
            "IPv4 block as the IPv6 tunnel source",
            |s| s.tunnel.blocks6 = vec!["10.0.0.0/26".into()],
            &["spec.tunnel.blocks6[0]"],
            true,
        ),
        (
            "IPv6 tunnel block that is not the node's",
            |s| s.tunnel.blocks6 = vec!["fd00:100::/122".into()],
            &["spec.tunnel.blocks6[0]"],
            true,
        ),
        ("bad block", |s| s.blocks[1] = "10.0.0.64/99".into(), &["spec.blocks[1]"], false),
        ("bad pool", |s| s.pools[0].cidr = "ten".into(), &["spec.pools[0].cidr"], false),
        ("bad vtep", |s| s.tunnel.vtep_mac = Some("ee:ee".into()), &["spec.tunnel.vtepMAC"], false),
        (
            "bad tunnel block",
            |s| {
                s.blocks[1] = "x".into();
                s.tunnel.blocks = vec!["x".into()];
            },
            &["spec.blocks[1]", "spec.tunnel.blocks[0]"],
            false,
        ),
    ];
    let good = || {
        let mut spec = spec(bgp());
        spec.blocks = vec!["10.0.0.0/26".into(), "10.0.0.64/26".into()];
        spec.pools = vec![PoolRouting { name: "p".into(), cidr: "10.0.0.0/16".into(), ..PoolRouting::default() }];
        spec
    };
    assert_eq!(validate_node_network(&good()), Ok(()));
    let ipv6_only = NodeNetworkSpec {
        address: None,
        address6: Some("fd00:10::2/64".into()),
        blocks: vec!["fd00:100::/122".into()],
        tunnel: crate::api::nodenetwork::TunnelSpec {
            blocks6: vec!["fd00:100::/122".into()],
            vtep_mac_v6: Some("ee:ee:ee:ee:ee:02".into()),
            ..Default::default()
        },
        ..good()
    };
    assert_eq!(validate_node_network(&ipv6_only), Ok(()), "an IPv6-only node");
    let dual = NodeNetworkSpec { address: Some("10.0.0.1/24".into()), ..ipv6_only };
    assert_eq!(validate_node_network(&dual), Ok(()), "a dual-stack node");
    for (case, edit, path, whole) in cases {
        let mut spec = good();
        edit(&mut spec);
        let errors = validate_node_network(&spec).expect_err(case);
        assert_eq!(errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), *path, "{case}: {errors:?}");
        assert_eq!(validate_node_network_structure(&spec).is_err(), *whole, "{case}: rejects the spec whole");
        assert_eq!(node_network_value_errors(&spec).is_empty(), *whole, "{case}: left out alone");
    }
}

/// Each value of a span that does not decode is reported under its item's key and field.
#[test]
fn span_values_that_do_not_decode_are_reported_with_their_item() {
    use crate::api::nodenetwork::{CompiledPolicy, CompiledRule, IpSet, IpSetKind};
    use crate::api::policy::Action;

    type Edit = fn(&mut NodeSpan);
    let cases: &[(&str, Edit, &[&str])] = &[
        (
            "bad net",
            |s| s.policies[0].ingress[0].source.not_nets = vec!["10.0.0.0/8".into(), "10.1/16".into()],
            &["policy/ns/p.ingress[0].source.notNets[1]"],
        ),
        ("bad member", |s| s.ip_sets[0].members.push("10.0.0.x".into()), &["ipset/gs_a.members[1]"]),
        (
            "member of the other kind",
            |s| s.ip_sets[0].members.push("10.0.0.2,tcp,80".into()),
            &["ipset/gs_a.members[1]"],
        ),
        (
            "named-port member with ICMP",
            |s| s.ip_sets[1].members = vec!["10.0.0.2,icmp,80".into()],
            &["ipset/gp_a.members[0]"],
        ),
        ("bad set name", |s| s.ip_sets[0].name = "a-b".into(), &["ipset/a-b.name"]),
        ("IPv6 member in an IPv4 set", |s| s.ip_sets[0].members.push("fd00::1".into()), &["ipset/gs_a.members[1]"]),
        (
            "IPv4 named-port member in an IPv6 set",
            |s| s.ip_sets[2].members.push("10.0.0.1,tcp,80".into()),
            &["ipset/gp6_a.members[1]"],
        ),
    ];
    let good = || NodeSpan {
        policies: vec![
            CompiledPolicy {
                name: "ns/p".into(),
                ingress: vec![CompiledRule { action: Action::Allow, ..CompiledRule::default() }],
                egress: Vec::new(),
            }
            .into(),
        ],
        ip_sets: vec![
            IpSet {
                name: "gs_a".into(),
                kind: IpSetKind::Addresses,
                members: vec!["10.0.0.1".into()],
                ..IpSet::default()
            }
            .into(),
            IpSet {
                name: "gp_a".into(),
                kind: IpSetKind::AddressPorts,
                members: vec!["10.0.0.1,tcp,80".into()],
                ..IpSet::default()
            }
            .into(),
            IpSet {
                name: "gp6_a".into(),
                family: crate::api::IpFamily::IPv6,
                kind: IpSetKind::AddressPorts,
                members: vec!["fd00::1,tcp,80".into()],
            }
            .into(),
        ],
        ..NodeSpan::default()
    };
    assert_eq!(span_value_errors(&good()), Vec::new());
    for (case, edit, path) in cases {
        let mut span = good();
        edit(&mut span);
        let errors = span_value_errors(&span);
        assert_eq!(errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), *path, "{case}: {errors:?}");
    }
}

#[test]
fn ipam_blocks_report_each_value() {
    let block = crate::api::IPAMBlockSpec {
        cidr: "10.0.1.0/26".into(),
        node: "b".into(),
        pool: "p".into(),
        node_address: "192.168.1.3/24".into(),
        tunnel_address: Some("10.0.1.0".into()),
        vtep_mac: Some("ee:ee:ee:ee:ee:02".into()),
        releasing: false,
    };
    assert_eq!(validate_ipam_block(&block), Ok(()));
    let bad = crate::api::IPAMBlockSpec {
        tunnel_address: Some("10.0.1".into()),
        vtep_mac: Some("ee".into()),
        ..block.clone()
    };
    let paths: Vec<String> = validate_ipam_block(&bad).unwrap_err().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["spec.tunnelAddress", "spec.vtepMAC"]);
    let ipv6 = crate::api::IPAMBlockSpec {
        cidr: "fd00:100::/122".into(),
        node_address: "fd00:10::3/64".into(),
        tunnel_address: Some("fd00:100::".into()),
        ..block.clone()
    };
    assert_eq!(validate_ipam_block(&ipv6), Ok(()), "an IPv6 block carries its node's IPv6 facts");
    let mixed = crate::api::IPAMBlockSpec { tunnel_address: Some("10.0.1.0".into()), ..ipv6 };
    let paths: Vec<String> = validate_ipam_block(&mixed).unwrap_err().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["spec.tunnelAddress"], "an IPv4 VTEP on an IPv6 block");
}
