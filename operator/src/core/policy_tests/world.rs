//! The small cluster the policy tests run on, and the check of every (source, destination,
//! protocol, port) combination against a case's expectation.

use super::evaluator::{Packet, Pod, Side, allowed};
use crate::core::ClusterSnapshot;
use crate::core::DesiredState;
use crate::core::testkit::{Meta, namespace, node, pod, status, with_port};

/// (name, namespace, labels, node, address, named ports)
pub type PodRow = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static [(&'static str, i32, &'static str)],
);

pub const PODS: &[PodRow] = &[
    ("web", "prod", &[("app", "web"), ("role", "frontend")], "a", "10.0.1.1", &[("http", 8080, "TCP")]),
    ("db", "prod", &[("app", "db")], "b", "10.0.1.2", &[("pg", 5432, "TCP")]),
    ("api", "prod", &[("app", "api")], "a", "10.0.1.3", &[("http", 8080, "TCP")]),
    ("web", "dev", &[("app", "web"), ("role", "frontend")], "b", "10.0.2.1", &[("http", 80, "TCP")]),
    ("tool", "dev", &[("app", "tool")], "a", "10.0.2.2", &[("dns", 53, "UDP")]),
];

/// Addresses that are no pod: one among the dev pods' addresses, one far away. They send and
/// receive too; only the pod's side of such a packet has policy.
pub const OUTSIDE: &[&str] = &["10.0.2.99", "192.0.2.7"];

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const PROBES: &[(u8, u16)] = &[(TCP, 80), (TCP, 5432), (TCP, 8080), (TCP, 8081), (UDP, 53)];

/// Two nodes, two labelled namespaces and the pods above, reported by their nodes.
pub fn world() -> ClusterSnapshot {
    let mut snapshot = ClusterSnapshot {
        nodes: vec![node("a", "192.168.0.1/24"), node("b", "192.168.0.2/24")],
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

/// A pod as the expectations see it; an address outside the cluster has no namespace and its
/// address as name.
#[derive(Clone, Copy)]
pub struct P {
    /// Namespace (empty outside the cluster).
    pub ns: &'static str,
    /// Name (the address outside the cluster).
    pub name: &'static str,
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

fn ends() -> Vec<End> {
    let pods =
        PODS.iter().map(|row| (P { ns: row.1, name: row.0 }, format!("{}/{}", row.1, row.0), Some(row.3), row.4));
    let outside = OUTSIDE.iter().map(|address| (P { ns: "", name: address }, (*address).to_string(), None, *address));
    pods.chain(outside).collect()
}

/// Every combination (pod to pod, pod to outside, outside to pod) where the compiled policy
/// disagrees with `expect`, described.
pub fn mismatches(case: &str, desired: &DesiredState, expect: Expect) -> Vec<String> {
    let mut failures = Vec::new();
    let ends = ends();
    for src in &ends {
        for dst in ends.iter().filter(|d| d.1 != src.1 && (d.2.is_some() || src.2.is_some())) {
            for &(protocol, port) in PROBES {
                let got = allowed(&desired.spans, side(src), side(dst), Packet { protocol, port });
                let want = expect(src.0, dst.0, protocol, port);
                if got != want {
                    failures.push(format!("{case}: {} -> {} {protocol}/{port}: got {got}, want {want}", src.1, dst.1));
                }
            }
        }
    }
    failures
}
