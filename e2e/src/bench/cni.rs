//! Benchmark 1: CNI ADD and DEL latency, exec to result, of `gingham-cni` (which answers ADD only
//! once the agent programmed the endpoint's routes and policy) against the reference `ptp` +
//! `host-local` plugins, in the same node namespace and the same pod namespaces.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use serde_json::json;

use super::guard::{self, BenchLab};
use super::stats::summarize;
use super::{BenchError, Goal, Options, Results, Row};
use crate::cmd;
use crate::lab::{CNI, LabError, REFERENCE_DIR, cni_socket};
use crate::{datastore, topology};

const CONCURRENT: usize = 20;
const CONCURRENT_ROUNDS: usize = 3;
const WARMUP: usize = 5;

/// The namespace of the benchmark's pods; a policy there selects each of them.
const NAMESPACE: &str = "bench";

/// Dual-stack: the IPv4 rows ask for IPv4 only (`assign_ipv6: "false"`), the dual-stack rows for
/// both.
const SCENARIO: &str = "lab: {prefix: ghb}
subnets:
  - {name: a, cidr: 10.231.1.0/24, cidr6: \"fd00:231:1::/64\"}
nodes:
  - {name: n1, subnet: a}
objects:
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool}
    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never, natOutgoing: false}
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool6}
    spec: {cidr: \"fd00:232::/48\", blockSize: 122, vxlanMode: Never, natOutgoing: false}
  - apiVersion: gingham.dev/v1
    kind: NetworkPolicy
    metadata: {name: from-clients, namespace: bench}
    spec:
      selector: app == 'bench'
      ingress:
        - {action: Allow, protocol: TCP, source: {selector: app == 'client'}, destination: {ports: [80]}}
";

/// One CNI plugin as the node would run it.
pub struct Plugin {
    name: &'static str,
    binary: PathBuf,
    path: String,
    config: String,
}

impl Plugin {
    /// `gingham-cni` talking to the agent on `socket`, assigning IPv6 too when `dual`.
    pub fn gingham(bin_dir: &Path, socket: &Path, dual: bool) -> Self {
        let ipam = json!({"assign_ipv4": "true", "assign_ipv6": if dual { "true" } else { "false" }});
        Self {
            name: "gingham",
            binary: bin_dir.join(CNI),
            path: bin_dir.display().to_string(),
            config: json!({"cniVersion": "1.0.0", "name": "gingham", "type": "gingham",
                "socketPath": socket.display().to_string(), "ipam": ipam})
            .to_string(),
        }
    }

    /// Runs ADD or DEL for `container` in the pod namespace `netns`; the elapsed seconds. The
    /// plugin is exec'd directly in the node's namespace, as a container runtime execs it in the
    /// host's (no `ip netns exec` wrapper: it costs both sides ≈3 ms of process starts). Unlike
    /// `ip netns exec`, this does not remount `/sys` for the node, so a plugin reading
    /// `/sys/class/net` would see the bench's namespace; neither plugin does (`/proc/sys/net`
    /// follows the writer's namespace).
    pub fn exec(&self, node_netns: &str, command: &str, container: &str, netns: &str) -> Result<f64, BenchError> {
        let mut cni = Command::new(&self.binary);
        cni.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", format!("/run/netns/{netns}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={container}"))
            .env("CNI_PATH", &self.path);
        let (elapsed, out) = in_netns(node_netns, || {
            let start = Instant::now();
            let out = cmd::output(&mut cni, Some(self.config.as_bytes()))?;
            Ok((start.elapsed().as_secs_f64(), out))
        })?;
        if !out.status.success() {
            return Err(BenchError::Failed(format!(
                "{} {command} {container}: {} {}",
                self.name,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(elapsed)
    }
}

/// Runs `work` on a thread of its own inside the named network namespace; the processes it
/// starts are born there.
fn in_netns<T: Send>(netns: &str, work: impl FnOnce() -> Result<T, BenchError> + Send) -> Result<T, BenchError> {
    let file = File::open(format!("/run/netns/{netns}")).map_err(BenchError::io(format!("open netns {netns}")))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| BenchError::Failed(format!("setns into {netns}: {e}")))?;
                work()
            })
            .join()
            .unwrap_or_else(|_| Err(BenchError::Failed("a CNI thread panicked".into())))
    })
}

/// Latencies of one plugin, in seconds.
#[derive(Default)]
struct Series {
    add: Vec<f64>,
    del: Vec<f64>,
    add_concurrent: Vec<f64>,
    del_concurrent: Vec<f64>,
}

fn cycle(plugin: &Plugin, node: &str, container: &str, netns: &str, into: &mut Series) -> Result<(), BenchError> {
    into.add.push(plugin.exec(node, "ADD", container, netns)?);
    into.del.push(plugin.exec(node, "DEL", container, netns)?);
    Ok(())
}

fn concurrent(plugin: &Plugin, node: &str, netns: &[String], into: &mut Series) -> Result<(), BenchError> {
    for (command, out) in [("ADD", &mut into.add_concurrent), ("DEL", &mut into.del_concurrent)] {
        let results: Vec<Result<f64, BenchError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = netns
                .iter()
                .map(|ns| scope.spawn(move || plugin.exec(node, command, &format!("c-{ns}"), ns)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(BenchError::Failed("a CNI thread panicked".into()))))
                .collect()
        });
        for result in results {
            out.push(result?);
        }
    }
    Ok(())
}

/// gingham and, where installed, the reference ptp + host-local, for IPv4 pods or (`dual`)
/// dual-stack pods (host-local then takes a range of each family).
fn plugins(options: &Options, lab: &BenchLab, dual: bool) -> Result<(Plugin, Option<Plugin>), BenchError> {
    let node = lab.state.node("n1").ok_or_else(|| BenchError::Failed("node n1 missing".into()))?;
    let ours = Plugin::gingham(&options.bin_dir, &cni_socket(node), dual);
    let reference = Path::new(REFERENCE_DIR);
    let present = ["ptp", "host-local"].iter().all(|p| reference.join(p).is_file());
    if !present {
        eprintln!("baseline missing: {REFERENCE_DIR}/ptp and host-local (apt install containernetworking-plugins)");
        return Ok((ours, None));
    }
    let data_dir = lab.state.state_dir.join(if dual { "host-local-dual" } else { "host-local" });
    let mut ranges = vec![json!([{"subnet": "10.234.0.0/16"}])];
    if dual {
        ranges.push(json!([{"subnet": "fd00:234::/64"}]));
    }
    let config = json!({"cniVersion": "1.0.0", "name": "reference", "type": "ptp", "ipMasq": false,
        "ipam": {"type": "host-local", "ranges": ranges, "dataDir": data_dir}});
    let baseline =
        Plugin { name: "ptp", binary: reference.join("ptp"), path: REFERENCE_DIR.into(), config: config.to_string() };
    Ok((ours, Some(baseline)))
}

/// As a kubelet's node sees it, every Pod exists (scheduled to n1, selected by the policy) before
/// its CNI ADD: writes them all and waits until the operator compiles their policy into n1's
/// span. Each ADD still waits until the agent programmed the pod's routes and policy.
fn schedule(lab: &BenchLab, containers: &[String]) -> Result<(), BenchError> {
    let store = lab.state.datastore();
    for name in containers {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "gingham-bench"}]}});
        datastore::put(&store, &pod).map_err(LabError::from)?;
    }
    let wanted: BTreeSet<String> = containers.iter().map(|c| format!("{NAMESPACE}/{c}")).collect();
    guard::wait_for(
        "the operator to compile the bench pods' policy",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let operator = lab.state.bin_dir.join(crate::lab::OPERATOR);
            let compiled: BTreeSet<String> =
                datastore::compiled_endpoints(&operator, &store, "n1").into_iter().collect();
            compiled.is_superset(&wanted)
        },
    )?;
    Ok(())
}

/// Runs benchmark 1.
pub fn run(options: &Options, results: &mut Results) -> Result<(), BenchError> {
    let mut lab = BenchLab::up(SCENARIO, &guard::prefix('c'), &options.bin_dir, false)?;
    let node = lab.state.node("n1").map(|n| n.netns.clone()).unwrap_or_default();
    let (ours, baseline) = plugins(options, &lab, false)?;
    let (ours_dual, baseline_dual) = plugins(options, &lab, true)?;
    let pods: Vec<String> = (0..CONCURRENT).map(|i| lab.scratch(&format!("p{i}"))).collect();
    for ns in &pods {
        topology::add_netns(&mut lab.state, ns).map_err(crate::lab::LabError::from)?;
    }
    let containers: Vec<String> = (0..WARMUP)
        .map(|i| format!("warm-{i}"))
        .chain((0..options.cni_cycles).map(|i| format!("seq-{i}")))
        .chain((0..options.cni_cycles).map(|i| format!("dual-{i}")))
        .chain(pods.iter().map(|ns| format!("c-{ns}")))
        .collect();
    schedule(&lab, &containers)?;
    let sides: Vec<&Plugin> = std::iter::once(&ours).chain(baseline.as_ref()).collect();
    let mut series: Vec<Series> = sides.iter().map(|_| Series::default()).collect();
    for plugin in &sides {
        for i in 0..WARMUP {
            cycle(plugin, &node, &format!("warm-{i}"), &pods[0], &mut Series::default())?;
        }
    }
    for i in 0..options.cni_cycles {
        guard::check()?;
        for (plugin, out) in sides.iter().zip(series.iter_mut()) {
            cycle(plugin, &node, &format!("seq-{i}"), &pods[0], out)?;
        }
    }
    for _ in 0..CONCURRENT_ROUNDS {
        guard::check()?;
        for (plugin, out) in sides.iter().zip(series.iter_mut()) {
            concurrent(plugin, &node, &pods, out)?;
        }
    }
    report(results, &series, options.cni_cycles, baseline.is_some());
    let dual_sides: Vec<&Plugin> = std::iter::once(&ours_dual).chain(baseline_dual.as_ref()).collect();
    let mut dual: Vec<Series> = dual_sides.iter().map(|_| Series::default()).collect();
    for i in 0..options.cni_cycles {
        guard::check()?;
        for (plugin, out) in dual_sides.iter().zip(dual.iter_mut()) {
            cycle(plugin, &node, &format!("dual-{i}"), &pods[0], out)?;
        }
    }
    let label = format!("ADD sequential, dual-stack pod ({} cycles)", options.cni_cycles);
    rows(results, &label, &dual, |s| &s.add, baseline_dual.is_some());
    Ok(())
}

fn report(results: &mut Results, series: &[Series], cycles: usize, has_baseline: bool) {
    let names = ["gingham", "ptp"];
    for (name, s) in names.iter().zip(series) {
        for (label, values) in [
            ("add", &s.add),
            ("del", &s.del),
            ("add_concurrent", &s.add_concurrent),
            ("del_concurrent", &s.del_concurrent),
        ] {
            let ms: Vec<f64> = values.iter().map(|v| v * 1000.0).collect();
            results.samples("cni.csv", &format!("{name}_{label}_ms"), &ms);
        }
    }
    let labels = [
        format!("ADD sequential ({cycles} cycles)"),
        format!("DEL sequential ({cycles} cycles)"),
        format!("ADD {CONCURRENT} concurrent (x{CONCURRENT_ROUNDS})"),
        format!("DEL {CONCURRENT} concurrent (x{CONCURRENT_ROUNDS})"),
    ];
    let accessors: [fn(&Series) -> &Vec<f64>; 4] =
        [|s| &s.add, |s| &s.del, |s| &s.add_concurrent, |s| &s.del_concurrent];
    for (label, accessor) in labels.iter().zip(accessors) {
        rows(results, label, series, accessor, has_baseline);
    }
}

/// The p50 and p99 rows of one measure: gingham's series first, the baseline's second if any; ADD
/// rows carry the goals (p50 at most half the baseline's, p99 at most the baseline's).
fn rows(results: &mut Results, label: &str, series: &[Series], of: fn(&Series) -> &Vec<f64>, has_baseline: bool) {
    let ms = |s: &Series| -> Vec<f64> { of(s).iter().map(|v| v * 1000.0).collect() };
    let mine = series.first().and_then(|s| summarize(&ms(s)));
    let theirs = series.get(1).and_then(|b| summarize(&ms(b)));
    let is_add = label.starts_with("ADD");
    for (stat, goal) in [("p50", Goal::RatioAtMost(0.5)), ("p99", Goal::RatioAtMost(1.0))] {
        let get = |s: super::stats::Summary| if stat == "p50" { s.p50 } else { s.p99 };
        let mut row = Row::value(1, format!("{label} {stat}"), mine.map(get), "ms", Goal::None);
        row.baseline = theirs.map(get);
        if is_add {
            row.goal = goal;
        }
        if !has_baseline {
            row.note = format!("baseline missing: {REFERENCE_DIR}/ptp + host-local; no ratio");
        }
        results.rows.push(row);
    }
}
