//! Every schema rule (OpenAPI and CEL, as the API server evaluates them) with at least one accepted
//! and one rejected case, and the Rust validators agreeing on the same cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::crdgen::all_crds;
use gingham_crds::manifest::{Document, Manifest};
use gingham_crds::offline::check_object;
use serde_json::{Value, json};

/// Validates `spec` as an object of `kind` (named `name`), optionally as an update of `old_spec`.
fn schema_check(kind: &str, name: &str, spec: Value, old_spec: Option<Value>) -> Result<(), String> {
    let crd = all_crds().into_iter().map(|(_, crd)| crd).find(|crd| crd.spec.names.kind == kind).unwrap();
    let object =
        |spec: Value| json!({"apiVersion": "gingham.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    let old = old_spec.map(object);
    check_object(&crd, &object(spec), old.as_ref())
        .map(|_| ())
        .map_err(|issues| issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect::<Vec<_>>().join("; "))
}

/// Runs the Rust validator on the same object.
fn rust_check(kind: &str, name: &str, spec: Value) -> Result<(), String> {
    let value = json!({"apiVersion": "gingham.dev/v1", "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec});
    let manifest = Manifest::from_document(&Document { line: 1, value }).map_err(|e| e.to_string())?;
    manifest.validate().map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

struct Case {
    kind: &'static str,
    spec: Value,
    /// `None`: accepted. `Some(text)`: rejected with a message containing `text`.
    rejected_with: Option<&'static str>,
}

fn case(kind: &'static str, spec: Value, rejected_with: Option<&'static str>) -> Case {
    Case { kind, spec, rejected_with }
}

fn cases() -> Vec<Case> {
    vec![
        // IPPool cidr: a CIDR, strictly masked, not link-local.
        case("IPPool", json!({"cidr": "10.244.0.0/16"}), None),
        case("IPPool", json!({"cidr": "fd00:10::/64"}), None),
        case("IPPool", json!({"cidr": "10.244.0.0"}), Some("CIDR")),
        case("IPPool", json!({"cidr": "10.244.0.1/16"}), Some("masked")),
        case("IPPool", json!({"cidr": "169.254.0.0/24"}), Some("link-local")),
        case("IPPool", json!({"cidr": "169.0.0.0/8"}), Some("link-local")),
        case("IPPool", json!({"cidr": "fe80::/64"}), Some("link-local")),
        // blockSize ranges per family, and the pool must hold a block.
        case("IPPool", json!({"cidr": "10.0.0.0/16", "blockSize": 20}), None),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "blockSize": 32}), None),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "blockSize": 19}), Some("blockSize")),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "blockSize": 33}), Some("blockSize")),
        case("IPPool", json!({"cidr": "fd00::/64", "blockSize": 116}), None),
        case("IPPool", json!({"cidr": "fd00::/64", "blockSize": 115}), Some("blockSize")),
        case("IPPool", json!({"cidr": "10.0.0.0/27"}), Some("smaller than one block")),
        // Encapsulation: not both, IPIP IPv4 only, enum values are case-sensitive.
        case("IPPool", json!({"cidr": "10.0.0.0/16", "ipipMode": "Always"}), None),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "vxlanMode": "CrossSubnet"}), None),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "Always"}), Some("both")),
        case("IPPool", json!({"cidr": "fd00::/64", "ipipMode": "Always"}), Some("IPv6")),
        case("IPPool", json!({"cidr": "fd00::/64", "vxlanMode": "Always"}), None),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "ipipMode": "always"}), Some("unsupported value")),
        case("IPPool", json!({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer"]}), None),
        case(
            "IPPool",
            json!({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer", "Workload"]}),
            Some("LoadBalancer"),
        ),
        // BGPPeer exclusivity, AS numbers (plain and asdot), peerIP syntax.
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 64512, "node": "a"}), None),
        case(
            "BGPPeer",
            json!({"peerIP": "192.0.2.1", "asNumber": 64512, "node": "a", "nodeSelector": "all()"}),
            Some("node and nodeSelector"),
        ),
        case("BGPPeer", json!({"peerSelector": "has(rr)"}), None),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "peerSelector": "has(rr)"}), Some("peerIP and peerSelector")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": "1.10"}), None),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": "65536.1"}), Some("AS number")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 4_294_967_296_u64}), Some("AS number")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": "1.2.3"}), Some("AS number")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1:1179", "asNumber": 65000}), None),
        case("BGPPeer", json!({"peerIP": "[2001:db8::1]:179", "asNumber": 65000}), None),
        case("BGPPeer", json!({"peerIP": "999.1.1.1", "asNumber": 65000}), Some("peerIP")),
        // BGPPeer values BIRD refuses: AS 0, keepalive outside 1s-21845s, restart time over 12 bits.
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 0}), Some("AS number")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": "0.0"}), Some("AS number")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "localASNumber": 0}), Some("AS number")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "keepaliveTime": "0s"}), Some("keepaliveTime")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "keepaliveTime": "500ms"}), Some("keepaliveTime")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "keepaliveTime": "1s"}), None),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "keepaliveTime": "6h4m5s"}), None),
        case(
            "BGPPeer",
            json!({"peerIP": "192.0.2.1", "asNumber": 1, "keepaliveTime": "21846s"}),
            Some("keepaliveTime"),
        ),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "maxRestartTime": "4095s"}), None),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "maxRestartTime": "2h"}), Some("maxRestartTime")),
        case("BGPPeer", json!({"peerIP": "192.0.2.1", "asNumber": 1, "ttlSecurity": 0}), Some("ttlSecurity")),
        case("BGPConfiguration", json!({"asNumber": 0}), Some("AS number")),
        case("BGPConfiguration", json!({"nodeMeshMaxRestartTime": "5000s"}), Some("nodeMeshMaxRestartTime")),
        case("BGPConfiguration", json!({"listenPort": 0}), Some("listenPort")),
        // Policy: numeric ports need TCP, UDP or SCTP; named ports do not.
        case(
            "NetworkPolicy",
            json!({"ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, "8000:8080"]}}]}),
            None,
        ),
        case(
            "NetworkPolicy",
            json!({"ingress": [{"action": "Allow", "protocol": "SCTP", "destination": {"ports": [80]}}]}),
            None,
        ),
        case(
            "NetworkPolicy",
            json!({"ingress": [{"action": "Allow", "destination": {"ports": [80]}}]}),
            Some("protocol"),
        ),
        case(
            "NetworkPolicy",
            json!({"ingress": [{"action": "Allow", "protocol": "ICMP", "destination": {"ports": ["80"]}}]}),
            Some("protocol"),
        ),
        case("NetworkPolicy", json!({"ingress": [{"action": "Allow", "destination": {"ports": ["http"]}}]}), None),
        case("NetworkPolicy", json!({"egress": [{"action": "Accept"}]}), Some("unsupported value")),
        case(
            "NetworkPolicy",
            json!({"ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"code": 1}}]}),
            Some("ICMP"),
        ),
        case(
            "NetworkPolicy",
            json!({"ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 3, "code": 1}}]}),
            None,
        ),
        case("GlobalNetworkPolicy", json!({"preDNAT": true, "applyOnForward": true}), None),
        case(
            "GlobalNetworkPolicy",
            json!({"preDNAT": true, "doNotTrack": true, "applyOnForward": true}),
            Some("preDNAT"),
        ),
        case("GlobalNetworkPolicy", json!({"doNotTrack": true}), Some("applyOnForward")),
        // Network sets: Calico Enterprise's allowedEgressDomains is refused (nets are the Rust
        // validator's: see the conformance corpus).
        case("NetworkSet", json!({"nets": ["198.51.100.0/28", "2001:db8::/64", "192.0.2.1"]}), None),
        case("GlobalNetworkSet", json!({"nets": ["198.51.100.0/28"]}), None),
        case("NetworkSet", json!({"allowedEgressDomains": ["db.com"]}), Some("allowedEgressDomains")),
        case("GlobalNetworkSet", json!({"allowedEgressDomains": ["db.com"]}), Some("allowedEgressDomains")),
        // BGPConfiguration.
        case("BGPConfiguration", json!({"asNumber": 64512, "nodeToNodeMeshEnabled": false}), None),
        case(
            "BGPConfiguration",
            json!({"nodeToNodeMeshEnabled": false, "nodeMeshPassword": {"secretKeyRef": {"name": "s", "key": "k"}}}),
            Some("nodeMeshPassword"),
        ),
        case(
            "BGPConfiguration",
            json!({"communities": [{"name": "a", "value": "65536:1"}], "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["a"]}]}),
            Some("community"),
        ),
        case(
            "BGPConfiguration",
            json!({"communities": [{"name": "a", "value": "65535:1"}], "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["a"]}]}),
            None,
        ),
        case("BGPConfiguration", json!({"serviceClusterIPs": [{"cidr": "10.96.0.1"}]}), Some("CIDR")),
        case("BGPConfiguration", json!({"unknownField": 1}), Some("unknown field")),
    ]
}

#[test]
fn schema_and_rust_validators_agree_on_every_rule() {
    let mut failures = Vec::new();
    for Case { kind, spec, rejected_with } in cases() {
        let name = if kind == "FelixConfiguration" { "default" } else { "sample" };
        let schema = schema_check(kind, name, spec.clone(), None);
        // Unknown fields are the schema's job: the Rust types ignore them as pruning would.
        let rust = if rejected_with == Some("unknown field") {
            Err(String::new())
        } else {
            rust_check(kind, name, spec.clone())
        };
        let expectation_met = match rejected_with {
            None => schema.is_ok() && rust.is_ok(),
            Some(text) => schema.as_ref().is_err_and(|e| e.contains(text)) && rust.is_err(),
        };
        if !expectation_met {
            failures
                .push(format!("{kind} {spec}: expected {rejected_with:?}, schema said {schema:?}, rust said {rust:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn immutable_fields_reject_changes_on_update() {
    let old = json!({"cidr": "10.0.0.0/16", "blockSize": 26});
    assert!(schema_check("IPPool", "p", old.clone(), Some(old.clone())).is_ok());
    assert!(
        schema_check(
            "IPPool",
            "p",
            json!({"cidr": "10.0.0.0/16", "blockSize": 26, "vxlanMode": "Always"}),
            Some(old.clone())
        )
        .is_ok()
    );
    let changed_cidr = schema_check("IPPool", "p", json!({"cidr": "10.1.0.0/16", "blockSize": 26}), Some(old.clone()));
    assert!(changed_cidr.unwrap_err().contains("cidr is immutable"));
    let changed_block = schema_check("IPPool", "p", json!({"cidr": "10.0.0.0/16", "blockSize": 24}), Some(old.clone()));
    assert!(changed_block.unwrap_err().contains("blockSize is immutable"));
    let added_block = schema_check(
        "IPPool",
        "p",
        json!({"cidr": "10.0.0.0/16", "blockSize": 26}),
        Some(json!({"cidr": "10.0.0.0/16"})),
    );
    assert!(added_block.unwrap_err().contains("blockSize is immutable"));
}

#[test]
fn felix_node_selector_is_only_for_other_configurations() {
    assert!(schema_check("FelixConfiguration", "default", json!({"nodeSelector": "all()"}), None).is_err());
    assert!(schema_check("FelixConfiguration", "node.a", json!({"nodeSelector": "all()"}), None).is_err());
    assert!(schema_check("FelixConfiguration", "rack-1", json!({"nodeSelector": "all()"}), None).is_ok());
}

#[test]
fn defaults_are_applied_before_validation() {
    let crd = all_crds().into_iter().map(|(_, crd)| crd).find(|crd| crd.spec.names.kind == "IPPool").unwrap();
    let object = json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"}});
    let defaulted = check_object(&crd, &object, None).unwrap();
    assert_eq!(defaulted["spec"]["ipipMode"], "Never");
    assert_eq!(defaulted["spec"]["vxlanMode"], "Never");
    assert_eq!(defaulted["spec"]["nodeSelector"], "all()");
    assert_eq!(defaulted["spec"]["natOutgoing"], false);
}
