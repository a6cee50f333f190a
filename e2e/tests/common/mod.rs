//! Shared by the lab tests: scenario text builders and assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;

use gingham_e2e::cmd;
use gingham_e2e::harness::LabGuard;
use gingham_e2e::probe::{self, Probe, Reach};

/// Where the gingham binaries are: `GINGHAM_LAB_BIN_DIR` (set when a test binary runs inside the
/// VM), else next to gingham-lab in target/.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("GINGHAM_LAB_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_BIN_EXE_gingham-lab")).parent().unwrap().to_path_buf(),
    }
}

/// An IPPool manifest for the lab's pool range.
pub fn pool(vxlan: &str, nat: bool) -> String {
    format!(
        "apiVersion: gingham.dev/v1\nkind: IPPool\nmetadata: {{name: pool}}\nspec: {{cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: {vxlan}, natOutgoing: {nat}}}\n"
    )
}

/// A scenario: nodes `(name, subnet)` on subnets a (10.231.1.0/24) and, if used, b
/// (10.231.2.0/24); one pod `default/p-<node>` per node (label app=p, port http 80); the pool.
pub fn scenario(nodes: &[(&str, &str)], vxlan: &str) -> String {
    let mut text = String::from("lab: {prefix: tt}\nsubnets:\n  - {name: a, cidr: 10.231.1.0/24}\n");
    if nodes.iter().any(|(_, s)| *s == "b") {
        text.push_str("  - {name: b, cidr: 10.231.2.0/24}\n");
    }
    text.push_str("nodes:\n");
    for (node, subnet) in nodes {
        text.push_str(&format!("  - {{name: {node}, subnet: {subnet}}}\n"));
    }
    text.push_str("pods:\n");
    for (node, _) in nodes {
        text.push_str(&format!(
            "  - {{name: p-{node}, node: {node}, labels: {{app: p}}, ports: [{{name: http, port: 80}}]}}\n"
        ));
    }
    text.push_str("objects:\n");
    for line in pool(vxlan, true).lines() {
        text.push_str(&format!("  {}{line}\n", if line.starts_with("apiVersion") { "- " } else { "  " }));
    }
    text
}

/// Brings a lab up, failing loudly with what is missing.
pub fn up(text: &str, prefix: &str) -> LabGuard {
    match LabGuard::up(text, prefix, &bin_dir(), false) {
        Ok(guard) => guard,
        Err(e) => panic!("the lab {prefix} did not come up: {e}"),
    }
}

pub mod stream;

/// Every pod pair (probed by ICMP, the whole matrix) whose reachability is not what
/// `allowed(from, to)` says, with what was seen.
pub fn wrong_pairs(lab: &LabGuard, allowed: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let matrix = probe::matrix(&lab.state, Probe::Icmp);
    let pods = lab.state.pods.len();
    assert_eq!(matrix.len(), pods * (pods - 1), "every pair was probed");
    matrix
        .iter()
        .filter(|((from, to), seen)| (**seen == Reach::Ok) != allowed(from, to))
        .map(|((from, to), seen)| {
            format!("{from} -> {to}: {seen:?}, expected {}", if allowed(from, to) { "ok" } else { "blocked" })
        })
        .collect()
}

/// Every pod reaches every other pod by ICMP.
pub fn assert_full_mesh(lab: &LabGuard) {
    let matrix = probe::matrix(&lab.state, Probe::Icmp);
    assert_eq!(matrix.len(), lab.state.pods.len() * (lab.state.pods.len() - 1));
    let bad: Vec<_> = matrix.iter().filter(|(_, r)| **r != Reach::Ok).collect();
    assert!(bad.is_empty(), "unreachable pairs: {bad:?}\n{}", probe::render(&lab.state, &matrix));
}

/// A counter of a device in a node's namespace (`tx_packets`, ...); 0 when the device is absent.
pub fn counter(netns: &str, device: &str, name: &str) -> u64 {
    cmd::run_in(netns, "cat", &[&format!("/sys/class/net/{device}/statistics/{name}")])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Pings `count` times (10 ms apart) from a pod's namespace; returns how many came back.
pub fn ping(netns: &str, address: &str, count: u32) -> u64 {
    let out = cmd::output(
        &mut cmd::in_netns(netns, "ping", &["-c", &count.to_string(), "-i", "0.01", "-W", "1", "-q", address]),
        None,
    )
    .unwrap();
    gingham_e2e::harness::parse_ping_summary(&String::from_utf8_lossy(&out.stdout)).map_or(0, |c| c.received)
}

/// The routes of a node's namespace.
pub fn routes(lab: &LabGuard, node: &str) -> String {
    cmd::ip(Some(&lab.node_netns(node)), &["-4", "route"]).unwrap()
}

/// Three nodes, namespaces prod (env=prod) and dev (env=dev), and four pods: prod/web (app=web,
/// port http 80) on n1, prod/client on n2, prod/other on n3, dev/client on n3; the pool.
pub const POLICY_SCENARIO: &str = "lab: {prefix: tt}
subnets:
  - {name: a, cidr: 10.231.1.0/24}
nodes:
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
  - {name: n3, subnet: a}
namespaces:
  - {name: prod, labels: {env: prod}}
  - {name: dev, labels: {env: dev}}
pods:
  - {name: web, namespace: prod, node: n1, labels: {app: web}, ports: [{name: http, port: 80}]}
  - {name: client, namespace: prod, node: n2, labels: {app: client}}
  - {name: other, namespace: prod, node: n3, labels: {app: other}}
  - {name: client, namespace: dev, node: n3, labels: {app: client}}
objects:
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool}
    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never}
";
