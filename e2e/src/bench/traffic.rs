//! Benchmarks on one two-node dual-stack lab: pod-to-pod iperf3 against node-to-node (2, no
//! encapsulation and VXLAN, each over IPv4 and over IPv6), the per-packet cost of non-matching policy (3); on a lab of its own, a node joining
//! until routed (8). Encapsulation switches (9) are in [`super::switch`].

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::guard::{self, BenchLab};
use super::stats::summarize;
use super::{BenchError, Goal, Options, Results, Row};
use crate::scenario::NodeSpec;
use crate::state::{NodeRecord, PodRecord};
use crate::{cmd, datastore, lab};
use gingham_crds::api::IpFamily;

/// Dual-stack, so that group 2 measures both families on the same lab.
const SCENARIO: &str = "lab: {prefix: ghb}\nsubnets:\n  - {name: a, cidr: 10.231.1.0/24, cidr6: \"fd00:231:1::/64\"}\nnodes:\n  - {name: n1, subnet: a}\n  - {name: n2, subnet: a}\npods:\n  - {name: c, node: n1, labels: {app: c}}\n  - {name: s, node: n2, labels: {role: server}}\n  - {name: s0, node: n2, labels: {role: plain}}\n  - {name: s10, node: n2, labels: {role: server10}}\nobjects:\n  - apiVersion: gingham.dev/v1\n    kind: IPPool\n    metadata: {name: pool}\n    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never, natOutgoing: false}\n  - apiVersion: gingham.dev/v1\n    kind: IPPool\n    metadata: {name: pool6}\n    spec: {cidr: \"fd00:232::/48\", blockSize: 122, vxlanMode: Never, natOutgoing: false}\n";
/// Nodes joined, one after the other (benchmark 8).
pub const JOINS: usize = 5;
/// Non-matching set elements before the matching rule (benchmark 3).
pub const POLICY_LEVELS: [usize; 4] = [0, 1_000, 10_000, 50_000];

/// An iperf3 server that is stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One single-stream iperf3 run from `client` to `address` (served in `server`); Gbit/s received.
pub fn iperf(server: &str, client: &str, address: &str, seconds: u32) -> Result<f64, BenchError> {
    guard::check()?;
    let child = cmd::in_netns(server, "iperf3", &["-s", "-1", "-p", "5201"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(BenchError::io(format!("start iperf3 -s in {server}")))?;
    let _server = Server(child);
    let secs = seconds.to_string();
    let mut last = String::new();
    for _ in 0..50 {
        let out =
            cmd::output(&mut cmd::in_netns(client, "iperf3", &["-c", address, "-p", "5201", "-t", &secs, "-J"]), None)?;
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(bps) = report.pointer("/end/sum_received/bits_per_second").and_then(Value::as_f64) {
            return Ok(bps / 1e9);
        }
        last = report.get("error").and_then(Value::as_str).unwrap_or_default().to_string();
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(BenchError::Failed(format!("iperf3 {client} -> {address}: {last}")))
}

/// Warm-up, then `reps` runs of each side alternated A B A B; Gbit/s per side.
pub(super) fn alternate(options: &Options, sides: &[(&str, &str, &str)]) -> Result<Vec<Vec<f64>>, BenchError> {
    for (server, client, address) in sides {
        iperf(server, client, address, 1)?;
    }
    let mut out = vec![Vec::new(); sides.len()];
    for _ in 0..options.iperf_reps {
        for ((server, client, address), samples) in sides.iter().zip(out.iter_mut()) {
            samples.push(iperf(server, client, address, options.iperf_seconds)?);
        }
    }
    Ok(out)
}

fn median(samples: &[f64]) -> Option<f64> {
    summarize(samples).map(|s| s.p50)
}

/// Writes objects and waits until the operator wrote new specs and every node applied them.
pub(super) fn apply(lab: &BenchLab, objects: &[Value]) -> Result<Duration, BenchError> {
    let start = Instant::now();
    for object in objects {
        datastore::put(&lab.state.datastore(), object).map_err(lab::LabError::from)?;
    }
    guard::sleep(Duration::from_millis(1500))?;
    lab::wait_converged(&lab.state, Duration::from_secs(120))?;
    Ok(start.elapsed())
}

fn pools(mode: &str) -> [Value; 2] {
    [
        json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": "pool"},
            "spec": {"cidr": "10.232.0.0/16", "blockSize": 26, "vxlanMode": mode, "natOutgoing": false}}),
        json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": "pool6"},
            "spec": {"cidr": "fd00:232::/48", "blockSize": 122, "vxlanMode": mode, "natOutgoing": false}}),
    ]
}

/// A GlobalNetworkPolicy on the server: `elements` non-matching source nets, then the client.
pub fn cost_policy(elements: usize, client: &str) -> Value {
    let nets: Vec<String> = (0..elements).map(|i| format!("10.240.{}.{}/32", i / 250, i % 250 + 1)).collect();
    let mut ingress = Vec::new();
    if !nets.is_empty() {
        ingress.push(json!({"action": "Deny", "protocol": "TCP", "source": {"nets": nets}}));
    }
    ingress.push(json!({"action": "Allow", "source": {"nets": [format!("{client}/32")]}}));
    json!({"apiVersion": "gingham.dev/v1", "kind": "GlobalNetworkPolicy", "metadata": {"name": "bench-cost"},
        "spec": {"selector": "role == 'server'", "types": ["Ingress"], "ingress": ingress}})
}

/// The two-node lab of groups 2 and 3 with its pods: the client on n1, the servers on n2.
pub(super) struct Lab2 {
    pub(super) lab: BenchLab,
    n1: String,
    pub(super) n2: NodeRecord,
    pub(super) client: String,
    pub(super) client_ip: String,
    pub(super) server: PodRecord,
    /// The pod no policy selects (namespace, address).
    pub(super) plain: (String, String),
}

fn pod(lab: &BenchLab, name: &str) -> (String, String) {
    let p = lab.state.pods.iter().find(|p| p.name == name);
    let address = p.and_then(|p| p.ip(IpFamily::IPv4)).unwrap_or_default();
    (p.map(|p| p.netns.clone()).unwrap_or_default(), address.to_string())
}

/// Group 2 in one family: pod to pod against node to node over the same family's underlay.
fn throughput(
    options: &Options,
    l: &Lab2,
    results: &mut Results,
    (mode, family): (&str, IpFamily),
    goal: f64,
) -> Result<(), BenchError> {
    let missing = |what: &str| BenchError::Failed(format!("{what} has no {family} address"));
    let n2_ip = l.n2.ip(family).ok_or_else(|| missing("node n2"))?;
    let server_ip = l.server.ip(family).ok_or_else(|| missing("pod s"))?;
    let sides = [(l.n2.netns.as_str(), l.n1.as_str(), n2_ip), (l.server.netns.as_str(), l.client.as_str(), server_ip)];
    let samples = alternate(options, &sides)?;
    // The IPv4 rows keep the names of before; IPv6's say so.
    let (key, label) = match family {
        IpFamily::IPv4 => (mode.to_string(), mode.to_string()),
        IpFamily::IPv6 => (format!("{mode}_ipv6"), format!("{mode}, IPv6")),
    };
    results.samples("iperf.csv", &format!("{key}_node_to_node_gbps"), &samples[0]);
    results.samples("iperf.csv", &format!("{key}_pod_to_pod_gbps"), &samples[1]);
    let mut row = Row::value(
        2,
        format!("pod-to-pod TCP, {label}, median"),
        median(&samples[1]),
        "Gbit/s",
        Goal::RatioAtLeast(goal),
    );
    row.baseline = median(&samples[0]);
    results.rows.push(row);
    Ok(())
}

fn policy_cost(options: &Options, l: &Lab2, results: &mut Results) -> Result<(), BenchError> {
    for elements in POLICY_LEVELS {
        let took = apply(&l.lab, &[cost_policy(elements, &l.client_ip)])?;
        let sides = [
            (l.plain.0.as_str(), l.client.as_str(), l.plain.1.as_str()),
            (l.server.netns.as_str(), l.client.as_str(), l.server.ip(IpFamily::IPv4).unwrap_or_default()),
        ];
        let samples = alternate(options, &sides)?;
        results.samples("policy-cost.csv", &format!("{elements}_no_policy_gbps"), &samples[0]);
        results.samples("policy-cost.csv", &format!("{elements}_policy_gbps"), &samples[1]);
        let goal = if elements == 50_000 { Goal::RatioAtLeast(0.95) } else { Goal::None };
        let mut row =
            Row::value(3, format!("{elements} non-matching + 1 matching, median"), median(&samples[1]), "Gbit/s", goal);
        row.baseline = median(&samples[0]);
        row.note = format!("policy written → applied on both nodes in {:.1} s", took.as_secs_f64());
        results.rows.push(row);
    }
    let object = cost_policy(0, &l.client_ip);
    datastore::remove(&l.lab.state.datastore(), &object).map_err(lab::LabError::from)?;
    apply(&l.lab, &[])?;
    Ok(())
}

fn join(l: &mut Lab2, results: &mut Results, reps: usize) -> Result<(), BenchError> {
    let mut samples = Vec::new();
    for i in 0..reps {
        let name = format!("j{i}");
        let spec = NodeSpec { name: name.clone(), subnet: "a".into(), labels: Default::default() };
        let start = Instant::now();
        lab::add_node(&mut l.lab.state, &spec)?;
        let store = l.lab.state.datastore();
        let (n1, n2) = (l.n1.clone(), l.n2.netns.clone());
        guard::wait_for(
            "the new node's block on every node",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || {
                let blocks: Vec<String> =
                    datastore::ipam_blocks(&store).into_iter().filter(|(_, n)| *n == name).map(|(c, _)| c).collect();
                !blocks.is_empty()
                    && blocks.iter().all(|b| {
                        [&n1, &n2]
                            .iter()
                            .all(|ns| cmd::ip(Some(ns), &["route", "show", b]).is_ok_and(|r| !r.trim().is_empty()))
                    })
            },
        )?;
        samples.push(start.elapsed().as_secs_f64());
        lab::remove_node(&mut l.lab.state, &name)?;
    }
    results.samples("bgp-join.csv", "join_to_routed_s", &samples);
    let s = summarize(&samples);
    let mut row = Row::value(
        8,
        format!("node join → routed on every node, median of {reps}"),
        s.map(|s| s.p50),
        "s",
        Goal::AtMost(2.0),
    );
    row.note =
        format!("max {:.2} s; from namespace creation and agent start, BIRD full mesh", s.map_or(0.0, |s| s.p99));
    results.rows.push(row);
    Ok(())
}

/// The two-node lab with its pods.
fn lab2(options: &Options, letter: char) -> Result<Lab2, BenchError> {
    let lab = BenchLab::up(SCENARIO, &guard::prefix(letter), &options.bin_dir, false)?;
    let node = |n: &str| lab.state.node(n).cloned().ok_or_else(|| BenchError::Failed(format!("node {n} missing")));
    let (n1, n2) = (node("n1")?, node("n2")?);
    let (client, client_ip) = pod(&lab, "c");
    let server = lab.state.pods.iter().find(|p| p.name == "s").cloned();
    let server = server.ok_or_else(|| BenchError::Failed("pod s missing".into()))?;
    let plain = pod(&lab, "s0");
    Ok(Lab2 { n1: n1.netns, n2, client, client_ip, server, plain, lab })
}

/// Runs benchmarks 2 and 3 (rule nets, then network sets) on one lab.
pub fn run(options: &Options, results: &mut Results) -> Result<(), BenchError> {
    let l = lab2(options, 't')?;
    throughput(options, &l, results, ("no encapsulation", IpFamily::IPv4), 0.95)?;
    throughput(options, &l, results, ("no encapsulation", IpFamily::IPv6), 0.95)?;
    if let Err(e) = policy_cost(options, &l, results) {
        let mut row = Row::value(3, "policy cost: did not complete", None, "", Goal::None);
        row.note = e.to_string();
        results.rows.push(row);
    }
    if let Err(e) = super::netsets::cost(options, &l, results) {
        let mut row = Row::value(3, "network set cost: did not complete", None, "", Goal::None);
        row.note = e.to_string();
        results.rows.push(row);
    }
    apply(&l.lab, &pools("Always"))?;
    throughput(options, &l, results, ("VXLAN", IpFamily::IPv4), 0.90)?;
    throughput(options, &l, results, ("VXLAN", IpFamily::IPv6), 0.90)
}

/// Runs benchmark 8 on a lab of its own.
pub fn run_join(options: &Options, results: &mut Results) -> Result<(), BenchError> {
    join(&mut lab2(options, 'j')?, results, JOINS)
}
