//! The small cluster the policy tests run on, and the check of every (source, destination,
//! protocol, port) combination against a case's expectation.

use super::evaluator::{Packet, Side, allowed};
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
    ("web", "dev", &[("app", "web"), ("role", "frontend")], "b", "10.0.2.1", &[]),
    ("tool", "dev", &[("app", "tool")], "a", "10.0.2.2", &[("dns", 53, "UDP")]),
];

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

/// A pod as the expectations see it.
#[derive(Clone, Copy)]
pub struct P {
    /// Namespace.
    pub ns: &'static str,
    /// Name.
    pub name: &'static str,
}

/// Which packets a case allows.
pub type Expect = fn(P, P, u8, u16) -> bool;

/// Whether `p` is that pod.
pub fn is(p: P, ns: &str, name: &str) -> bool {
    p.ns == ns && p.name == name
}

/// Every combination where the compiled policy disagrees with `expect`, described.
pub fn mismatches(case: &str, desired: &DesiredState, expect: Expect) -> Vec<String> {
    let mut failures = Vec::new();
    for src in PODS {
        for dst in PODS.iter().filter(|d| (d.0, d.1) != (src.0, src.1)) {
            for &(protocol, port) in PROBES {
                let (src_name, dst_name) = (format!("{}/{}", src.1, src.0), format!("{}/{}", dst.1, dst.0));
                let got = allowed(
                    &desired.node_networks,
                    Side { endpoint: &src_name, address: src.4, node: src.3 },
                    Side { endpoint: &dst_name, address: dst.4, node: dst.3 },
                    Packet { protocol, port },
                );
                let want = expect(P { ns: src.1, name: src.0 }, P { ns: dst.1, name: dst.0 }, protocol, port);
                if got != want {
                    failures
                        .push(format!("{case}: {src_name} -> {dst_name} {protocol}/{port}: got {got}, want {want}"));
                }
            }
        }
    }
    failures
}
