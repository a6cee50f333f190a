#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// Decodes every text as `T`: `Some(shown)` is the value written back by `Display`, `None` an error.
fn table<T: Decode>(cases: &[(&str, Option<&str>)]) {
    for (text, shown) in cases {
        let wire: Wire<T> = Wire::new(*text);
        assert_eq!(wire.value().map(ToString::to_string).as_deref(), *shown, "{text:?}");
        if let Some(shown) = shown {
            let again = Wire::<T>::from(T::decode(shown).unwrap());
            assert_eq!(again.as_str(), *shown, "{text:?} written back must decode to the same");
        }
    }
}

#[test]
fn cidrs_need_a_prefix_and_keep_host_bits() {
    table::<Cidr>(&[
        ("10.0.0.0/26", Some("10.0.0.0/26")),
        ("192.168.10.2/24", Some("192.168.10.2/24")),
        ("fd00::/64", Some("fd00::/64")),
        ("10.0.0.1", None),
        ("10.0.0.0/33", None),
        ("10.0.0/24", None),
        ("", None),
        (" 10.0.0.0/26", None),
    ]);
    assert_eq!(Cidr::decode("fd00::/64").and_then(Cidr::v4), None, "an IPv6 CIDR is no IPv4 one");
}

#[test]
fn nets_take_bare_addresses_and_write_them_bare() {
    table::<Net>(&[
        ("10.0.0.1", Some("10.0.0.1")),
        ("10.0.0.1/32", Some("10.0.0.1")),
        ("10.1.0.0/16", Some("10.1.0.0/16")),
        ("fd00::1", Some("fd00::1")),
        ("garbage", None),
        ("10.0.0.1/40", None),
    ]);
}

#[test]
fn macs_are_six_pairs_of_hex_digits() {
    table::<Mac>(&[
        ("ee:ee:ee:ee:ee:0a", Some("ee:ee:ee:ee:ee:0a")),
        ("EE:EE:EE:EE:EE:0A", Some("ee:ee:ee:ee:ee:0a")),
        ("", None),
        ("ee:ee", None),
        ("ee:ee:ee:ee:ee:ee:ee", None),
        ("zz:ee:ee:ee:ee:ee", None),
        ("e:ee:ee:ee:ee:ee", None),
        ("eee:ee:ee:ee:ee:ee", None),
    ]);
}

#[test]
fn set_members_are_address_protocol_port() {
    table::<SetMember>(&[
        ("10.0.0.1,tcp,8080", Some("10.0.0.1,tcp,8080")),
        ("10.0.0.1,TCP,8080", Some("10.0.0.1,tcp,8080")),
        ("10.0.0.2,17,53", Some("10.0.0.2,udp,53")),
        ("10.0.0.3, sctp ,9", Some("10.0.0.3,sctp,9")),
        ("fd00::1,tcp,80", Some("fd00::1,tcp,80")),
        ("10.0.0.3,icmp,1", None),
        ("10.0.0.4,tcp", None),
        ("10.0.0.4,tcp,80,1", None),
        ("x,tcp,1", None),
        ("10.0.0.4,tcp,65536", None),
    ]);
    table::<IpSetMember>(&[
        ("10.0.0.1", Some("10.0.0.1")),
        ("10.0.0.0/24", Some("10.0.0.0/24")),
        ("10.0.0.1,tcp,8080", Some("10.0.0.1,tcp,8080")),
        ("10.0.0.1,tcp", None),
        ("garbage", None),
    ]);
}

#[test]
fn a_value_that_does_not_decode_names_its_field_and_the_fix() {
    let wire: Wire<Cidr> = "10.0.0.0/99".into();
    let error = wire.decoded("spec.blocks[2]").unwrap_err();
    assert_eq!(error.path, "spec.blocks[2]");
    assert_eq!(
        error.to_string(),
        "spec.blocks[2]: \"10.0.0.0/99\" is not a CIDR with its prefix length, such as 10.0.0.0/26 or fd00::/64 \
         (fix: write a CIDR with its prefix length, such as 10.0.0.0/26 or fd00::/64)"
    );
    let good: Wire<Cidr> = "10.0.0.0/26".into();
    assert_eq!(good.decoded("spec.blocks[0]").unwrap().to_string(), "10.0.0.0/26");
}

#[test]
fn fields_serialise_to_exactly_the_text_they_were_read_from() {
    // Valid, non-canonical and invalid texts all survive a round trip unchanged.
    for text in ["10.0.0.0/26", "10.0.0.1/32", "192.168.10.2/24", "not a cidr", ""] {
        let json = serde_json::to_string(text).unwrap();
        let wire: Wire<Cidr> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&wire).unwrap(), json, "{text:?}");
    }
    let member: Wire<IpSetMember> =
        IpSetMember::Port(SetMember { addr: [10, 0, 0, 1].into(), proto: IpProtocol::TCP, port: 80 }).into();
    assert_eq!(serde_json::to_string(&member).unwrap(), "\"10.0.0.1,tcp,80\"");
}

#[test]
fn the_schema_of_a_field_is_a_plain_string() {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<Wire<Mac>>();
    let value = serde_json::to_value(&schema).unwrap();
    assert_eq!(value.get("type").and_then(|t| t.as_str()), Some("string"), "{value}");
}

/// A whole NodeNetwork, span and IPAMBlock, with valid, non-canonical and invalid values, read
/// and written back: the same document, so the agent never rewrites what the operator wrote.
#[test]
fn objects_round_trip_to_the_same_document() {
    use crate::api::span::NodeSpan;
    use crate::api::{IPAMBlockSpec, NodeNetworkSpec};
    let spec = serde_json::json!({
        "address": "192.168.10.2/24",
        "address6": "FD00:10::2/64",
        "blocks": ["10.0.0.0/26", "10.0.0.64/99"],
        "pools": [{"name": "p", "cidr": "10.0.0.0/16", "ipipMode": "Never", "vxlanMode": "Always",
                   "natOutgoing": true, "disableBGPExport": false}],
        "tunnel": {"vxlanVNI": 4096, "vxlanPort": 4789, "blocks": ["10.0.0.0/26"], "vtepMAC": "EE:ee:ee:ee:ee:01",
                   "blocks6": ["fd00:100::/122"], "vtepMACV6": "ee:ee:ee:ee:ee:02", "vxlanMTUV6": 1430},
        "bgp": {"routerID": "192.168.10.2", "asNumber": 64512, "listenPort": 179},
        "policy": {"defaultEndpointToHostAction": "Drop", "failsafeInbound": [], "failsafeOutbound": []},
        "agent": {"routeRefreshSeconds": 90, "nftablesRefreshSeconds": 90, "logLevel": "Info"}
    });
    let decoded: NodeNetworkSpec = serde_json::from_value(spec.clone()).unwrap();
    assert_eq!(serde_json::to_value(&decoded).unwrap(), spec);
    let span = serde_json::json!({
        "endpoints": [],
        "policies": [{"name": "ns/p", "ingress": [{"action": "Allow",
                      "source": {"nets": ["10.0.0.1/32", "fd00::/64"], "notNets": ["garbage"]},
                      "destination": {}},
                     {"action": "Deny", "ipVersion": 6, "protocol": 58,
                      "icmp": {"protocol": "ICMPv6", "type": 128, "code": 0},
                      "source": {"sets": ["gs_a", "gs6_a"], "namedPortSet": "gp_a", "namedPortSet6": "gp6_a"},
                      "destination": {}}], "egress": []}],
        "ipSets": [{"name": "gs_a", "family": "IPv4", "kind": "Addresses", "members": ["10.0.0.1", "10.0.0.0/24", "x"]},
                   {"name": "gp_a", "family": "IPv4", "kind": "AddressPorts",
                    "members": ["10.0.0.1,TCP,80", "10.0.0.2,17,53"]},
                   {"name": "gs6_a", "family": "IPv6", "kind": "Addresses", "members": ["fd00::1", "FD00::/120"]}],
        "bgpPeers": [{"name": "mesh_192_168_10_3", "kind": "Mesh", "address": "192.168.10.3", "port": 179,
                      "asNumber": 64512, "routeReflectorClient": false, "useNodeSourceAddress": true}],
        "hostEndpoints": [{"name": "a-auto-hep", "interfaceName": "*", "expectedIPs": ["10.0.0.9", "not-an-ip"],
                           "defaultAllow": true,
                           "preDNATIngress": [{"tier": "default", "defaultAction": "Pass", "policies": ["global/p"]}]}]
    });
    let decoded: NodeSpan = serde_json::from_value(span.clone()).unwrap();
    assert_eq!(serde_json::to_value(&decoded).unwrap(), span);
    let block = serde_json::json!({"cidr": "10.0.1.0/26", "node": "b", "pool": "p", "nodeAddress": "192.168.1.3",
                                   "tunnelAddress": "10.0.1.0", "vtepMAC": "nope", "releasing": false});
    let decoded: IPAMBlockSpec = serde_json::from_value(block.clone()).unwrap();
    assert_eq!(serde_json::to_value(&decoded).unwrap(), block);
}

#[test]
fn families_follow_the_address_and_ip_version() {
    assert_eq!(Cidr::decode("fd00::/64").map(Cidr::family), Some(IpFamily::IPv6));
    assert_eq!(Cidr::decode("10.0.0.0/8").map(Cidr::family), Some(IpFamily::IPv4));
    assert_eq!(Cidr::decode("fd00::/64").and_then(Cidr::v6).map(|n| n.prefix_len()), Some(64));
    assert_eq!(Net::decode("fd00::1").map(Net::family), Some(IpFamily::IPv6));
    let members = [("10.0.0.1", IpFamily::IPv4), ("fd00::1,tcp,80", IpFamily::IPv6), ("fd00::/120", IpFamily::IPv6)];
    for (text, family) in members {
        assert_eq!(IpSetMember::decode(text).map(|m| m.family()), Some(family), "{text}");
    }
    for family in IpFamily::BOTH {
        assert_eq!(IpFamily::from_version(family.version()), Some(family));
    }
    assert_eq!(IpFamily::from_version(5), None);
    assert_eq!(serde_json::to_string(&IpFamily::IPv6).unwrap(), r#""IPv6""#);
}
