//! The small cluster the policy tests run on, and the check of every (source, destination,
//! protocol, port) combination against a case's expectation.

use super::evaluator::{Packet, Pod, Side, allowed};
use crate::core::ClusterSnapshot;
use crate::core::DesiredState;
use crate::core::testkit::{Meta, namespace, node, pod, status, with_port};

/// (name, namespace, labels, node, addresses (a dual-stack pod's separated by a comma), named ports)
pub type PodRow = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static [(&'static str, i32, &'static str)],
);

/// Dual-stack pods, one IPv4-only (prod/api) and one IPv6-only (dev/tool): every pair is probed
/// in each family both ends have.
pub const PODS: &[PodRow] = &[
    ("web", "prod", &[("app", "web"), ("role", "frontend")], "a", "10.0.1.1,fd00:1::1", &[("http", 8080, "TCP")]),
    ("db", "prod", &[("app", "db")], "b", "10.0.1.2,fd00:1::2", &[("pg", 5432, "TCP")]),
    ("api", "prod", &[("app", "api")], "a", "10.0.1.3", &[("http", 8080, "TCP")]),
    ("web", "dev", &[("app", "web"), ("role", "frontend")], "b", "10.0.2.1,fd00:2::1", &[("http", 80, "TCP")]),
    ("tool", "dev", &[("app", "tool")], "a", "fd00:2::2", &[("dns", 53, "UDP")]),
];

/// Addresses that are no pod: of each family one among the dev pods' addresses, one far away.
/// They send and receive too; only the pod's side of such a packet has policy.
pub const OUTSIDE: &[&str] = &["10.0.2.99", "192.0.2.7", "fd00:2::99", "2001:db8::7"];

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
/// ICMP, probed with type 8 (echo request) over IPv4.
pub const ICMP: u8 = 1;
/// ICMPv6, probed with type 128 (echo request) over IPv6.
pub const ICMPV6: u8 = 58;
pub const PROBES: &[(u8, u16)] =
    &[(TCP, 80), (TCP, 5432), (TCP, 8080), (TCP, 8081), (UDP, 53), (ICMP, 8), (ICMPV6, 128)];

/// Two nodes, two labelled namespaces and the pods above, reported by their nodes.
pub fn world() -> ClusterSnapshot {
    let mut snapshot = ClusterSnapshot {
        nodes: vec![node("a", "192.168.0.1/24,fd00:ff::1/64"), node("b", "192.168.0.2/24,fd00:ff::2/64")],
        namespaces: vec![namespace("prod").label("env", "prod"), namespace("dev").label("env", "dev")],
        ..ClusterSnapshot::default()
    };
    for (name, ns, labels, _, _, ports) in PODS {
        let mut built = labels.iter().fold(pod(ns, name), |p, (k, v)| p.label(k, v));
        for (port_name, number, protocol) in ports.iter() {
            built = with_port(built, port_name, *number, protocol);
        }
        snapshot.pods.push(built);
    }
    for node_name in ["a", "b"] {
        let endpoints: Vec<(String, &str)> =
            PODS.iter().filter(|p| p.3 == node_name).map(|p| (format!("{}/{}", p.1, p.0), p.4)).collect();
        let refs: Vec<(&str, &str)> = endpoints.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        snapshot.node_statuses.insert(node_name.into(), status(&refs));
    }
    snapshot
}

/// A pod as the expectations see it, in the family of the probe; an address outside the cluster
/// has no namespace and its address as name.
#[derive(Clone, Copy)]
pub struct P {
    /// Namespace (empty outside the cluster).
    pub ns: &'static str,
    /// Name (the address outside the cluster).
    pub name: &'static str,
    /// The probe is IPv6.
    pub v6: bool,
}

/// Which packets a case allows.
pub type Expect = fn(P, P, u8, u16) -> bool;

/// Whether `p` is that pod.
pub fn is(p: P, ns: &str, name: &str) -> bool {
    p.ns == ns && p.name == name
}

/// Whether `p` is outside the cluster.
pub fn outside(p: P) -> bool {
    p.ns.is_empty()
}

/// Whether `p` is a pod with a container port named `name` on that protocol and port.
pub fn serves(p: P, name: &str, protocol: u8, port: u16) -> bool {
    let by_number = |text: &str| if text == "UDP" { UDP } else { TCP };
    PODS.iter()
        .filter(|row| (row.1, row.0) == (p.ns, p.name))
        .flat_map(|row| row.5.iter())
        .any(|(n, number, proto)| *n == name && i32::from(port) == *number && by_number(proto) == protocol)
}

/// One end of a probe: the expectation's view, the `namespace/pod` label, the pod's node, the address.
type End = (P, String, Option<&'static str>, &'static str);

fn side(end: &End) -> Side<'_> {
    Side { pod: end.2.map(|node| Pod { endpoint: &end.1, node }), address: end.3 }
}

/// Every end of a probe, once per address: a dual-stack pod is an end in each family.
fn ends() -> Vec<End> {
    let pods = PODS.iter().flat_map(|row| {
        row.4.split(',').map(|address| {
            let p = P { ns: row.1, name: row.0, v6: address.contains(':') };
            (p, format!("{}/{}", row.1, row.0), Some(row.3), address)
        })
    });
    let outside = OUTSIDE.iter().map(|address| {
        (P { ns: "", name: address, v6: address.contains(':') }, (*address).to_string(), None, *address)
    });
    pods.chain(outside).collect()
}

/// Every combination (pod to pod, pod to outside, outside to pod) where the compiled policy
/// disagrees with `expect`, described.
pub fn mismatches(case: &str, desired: &DesiredState, expect: Expect) -> Vec<String> {
    let mut failures = Vec::new();
    let ends = ends();
    for src in &ends {
        let probed = |d: &&End| d.1 != src.1 && (d.2.is_some() || src.2.is_some()) && d.0.v6 == src.0.v6;
        for dst in ends.iter().filter(probed) {
            let icmp_of_other_family =
                |protocol: u8| (protocol == ICMP && src.0.v6) || (protocol == ICMPV6 && !src.0.v6);
            for &(protocol, port) in PROBES.iter().filter(|(protocol, _)| !icmp_of_other_family(*protocol)) {
                let got = allowed(&desired.spans, side(src), side(dst), Packet { protocol, port });
                let want = expect(src.0, dst.0, protocol, port);
                if got != want {
                    let (from, to) = (src.3, dst.3);
                    failures.push(format!(
                        "{case}: {} ({from}) -> {} ({to}) {protocol}/{port}: got {got}, want {want}",
                        src.1, dst.1
                    ));
                }
            }
        }
    }
    failures
}

/// A gingham policy as the cases write it: namespace (`None`: a GlobalNetworkPolicy), name, spec.
pub type Policy = (Option<&'static str>, &'static str, serde_json::Value);

/// Adds the cases' policies to a snapshot: NetworkPolicies and GlobalNetworkPolicies.
pub fn add_policies(snapshot: &mut ClusterSnapshot, policies: Vec<Policy>) {
    use gingham_crds::api::{GlobalNetworkPolicy, NetworkPolicy};
    for (namespace, name, spec) in policies {
        match namespace {
            Some(ns) => snapshot.network_policies.push(NetworkPolicy {
                metadata: crate::core::testkit::meta(Some(ns), name),
                spec: serde_json::from_value(spec).expect("a NetworkPolicy spec"),
            }),
            None => snapshot.global_network_policies.push(GlobalNetworkPolicy {
                metadata: crate::core::testkit::meta(None, name),
                spec: serde_json::from_value(spec).expect("a GlobalNetworkPolicy spec"),
            }),
        }
    }
}
