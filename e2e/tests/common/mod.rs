//! Shared by the lab tests: scenario text builders and assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;

use gingham_crds::api::IpFamily;
use gingham_e2e::cmd;
use gingham_e2e::family::ip_flag;
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

/// The families a lab runs: the same tests run on each (IPv4-only, IPv6-only, dual-stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// IPv4 underlay and pool.
    V4,
    /// IPv6 (ULA) underlay and pool only.
    V6,
    /// Both.
    Dual,
}

impl Stack {
    /// The families, IPv4 first.
    pub fn families(self) -> Vec<IpFamily> {
        match self {
            Self::V4 => vec![IpFamily::IPv4],
            Self::V6 => vec![IpFamily::IPv6],
            Self::Dual => vec![IpFamily::IPv4, IpFamily::IPv6],
        }
    }

    /// A subnet line of the scenario: subnet `a` is 10.231.1.0/24 and fd00:231:1::/64, `b`
    /// 10.231.2.0/24 and fd00:231:2::/64, in this stack's families.
    pub fn subnet(self, name: &str) -> String {
        let n = if name == "a" { 1 } else { 2 };
        let v4 = format!("cidr: 10.231.{n}.0/24");
        let v6 = format!("cidr6: \"fd00:231:{n}::/64\"");
        let cidrs = match self {
            Self::V4 => v4,
            Self::V6 => v6,
            Self::Dual => format!("{v4}, {v6}"),
        };
        format!("  - {{name: {name}, {cidrs}}}\n")
    }

    /// The scenario's `objects:` items for the pools: 10.232.0.0/16 (/26 blocks) and
    /// fd00:232::/48 (/122 blocks, Calico's default), in this stack's families.
    pub fn pools(self, vxlan: &str, nat: bool) -> String {
        let mut text = String::new();
        for family in self.families() {
            let (name, cidr, block) = match family {
                IpFamily::IPv4 => ("pool", "10.232.0.0/16", 26),
                IpFamily::IPv6 => ("pool6", "\"fd00:232::/48\"", 122),
            };
            text.push_str(&format!(
                "  - apiVersion: gingham.dev/v1\n    kind: IPPool\n    metadata: {{name: {name}}}\n    spec: {{cidr: {cidr}, blockSize: {block}, vxlanMode: {vxlan}, natOutgoing: {nat}}}\n"
            ));
        }
        text
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
    scenario_in(Stack::V4, nodes, vxlan)
}

/// [`scenario`] in the families of `stack`.
pub fn scenario_in(stack: Stack, nodes: &[(&str, &str)], vxlan: &str) -> String {
    let mut text = String::from("lab: {prefix: tt}\nsubnets:\n");
    text.push_str(&stack.subnet("a"));
    if nodes.iter().any(|(_, s)| *s == "b") {
        text.push_str(&stack.subnet("b"));
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
    text.push_str(&stack.pools(vxlan, true));
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

/// Every pod reaches every other pod by ICMP, in every family the lab has.
pub fn assert_full_mesh(lab: &LabGuard) {
    for family in lab.state.families() {
        let matrix = probe::matrix_in(&lab.state, Probe::Icmp, family);
        assert_eq!(
            matrix.len(),
            lab.state.pods.len() * (lab.state.pods.len() - 1),
            "{family}: every pod has an address"
        );
        let bad: Vec<_> = matrix.iter().filter(|(_, r)| **r != Reach::Ok).collect();
        let table = probe::render_families(&lab.state, &[(family, matrix.clone())]);
        assert!(bad.is_empty(), "{family}: unreachable pairs: {bad:?}\n{table}");
    }
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
    routes_in(lab, node, IpFamily::IPv4)
}

/// The routes of one family of a node's namespace.
pub fn routes_in(lab: &LabGuard, node: &str, family: IpFamily) -> String {
    cmd::ip(Some(&lab.node_netns(node)), &[ip_flag(family), "route"]).unwrap()
}

/// A pod's address of `family`, by `namespace/name`.
pub fn pod_ip(lab: &LabGuard, key: &str, family: IpFamily) -> String {
    let pod = lab.state.pods.iter().find(|p| p.key() == key).unwrap();
    pod.ip(family).unwrap_or_else(|| panic!("{key} has no {family} address: {pod:?}")).to_string()
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

/// [`POLICY_SCENARIO`] in the families of `stack`.
pub fn policy_scenario(stack: Stack) -> String {
    let start = POLICY_SCENARIO.find("nodes:").unwrap();
    let end = POLICY_SCENARIO.find("objects:").unwrap();
    format!(
        "lab: {{prefix: tt}}\nsubnets:\n{}{}objects:\n{}",
        stack.subnet("a"),
        &POLICY_SCENARIO[start..end],
        stack.pools("Never", false)
    )
}

/// The lab's pool CIDR of a family (quoted for YAML).
pub fn pool_cidr(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => "10.232.0.0/16",
        IpFamily::IPv6 => "\"fd00:232::/32\"",
    }
}

/// The host prefix length of a family: 32 or 128.
pub fn host_len(family: IpFamily) -> u8 {
    match family {
        IpFamily::IPv4 => 32,
        IpFamily::IPv6 => 128,
    }
}
