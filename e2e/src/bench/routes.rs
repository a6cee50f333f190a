//! Benchmarks 5 and 6 on one node without an operator: the bench writes the node's NodeNetwork
//! (VXLAN Always) and 5,000 remote IPAMBlocks itself, then times the agent from "blocks appear"
//! to "every route on vxlan.gingham" against `ip -batch` adding the same routes to a VXLAN device
//! in a scratch namespace; measures the agent's CPU per idle sync with 10 and with 5,000 remote
//! nodes (the spec lists nftables every second, so the agent syncs every second); and reads the
//! agent's VmRSS/VmHWM idle, routed, and with 110 pods. In IPv6, the same 5,000 remote blocks of
//! an IPv6 pool in VXLAN CrossSubnet, all on the node's IPv6 subnet (so reached directly, through
//! one nexthop per remote node: the agent's IPv6 VTEP address comes from IPAM, which this
//! one-node lab does not wire), against `ip -6 -batch` adding the same routes.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gingham_datastore::layout::{IPAM_BLOCKS, NODE_NETWORKS, node_network_path, node_status_path};
use serde_json::json;

use super::cni::Plugin;
use super::guard::{self, BenchLab};
use super::stats::summarize;
use super::{BenchError, Goal, Options, Results, Row};
use crate::lab::{self, LabError, cni_socket};
use crate::state::NodeRecord;
use crate::{cmd, process, topology};

/// Remote blocks (benchmark 5).
pub const BLOCKS: u32 = 5_000;
/// Remote blocks of the small cluster whose idle sync is the baseline of the large one's.
pub const FEW_BLOCKS: u32 = 10;
/// How long idle syncs are watched.
const IDLE_WINDOW: Duration = Duration::from_secs(8);
/// Local pods for the memory figure (benchmark 6).
pub const PODS: usize = 110;
const REPS: usize = 3;
const SCENARIO: &str =
    "lab: {prefix: ghb}\nsubnets:\n  - {name: a, cidr: 10.231.1.0/24}\nnodes:\n  - {name: n1, subnet: a}\n";

fn block(i: u32) -> (String, Ipv4Addr, String, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 64, 0, 0)) + (i + 2) * 64;
    let mac = format!("02:bb:{:02x}:{:02x}:00:01", i >> 8, i & 0xff);
    let node = Ipv4Addr::new(10, 231, 100 + u8::try_from(i / 250).unwrap_or(0), u8::try_from(i % 250 + 1).unwrap_or(1));
    (format!("{}/26", Ipv4Addr::from(base)), Ipv4Addr::from(base + 1), mac, node)
}

/// The `i`th remote IPv6 block (a `/122` of `fd00:64::/48`) and its node's address, on the
/// node's IPv6 subnet.
fn block6(i: u32) -> (String, Ipv6Addr) {
    let base = u128::from(Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 0)) + u128::from(i + 2) * 64;
    let node = u128::from(NODE6) + u128::from(i) + 2;
    (format!("{}/122", Ipv6Addr::from(base)), Ipv6Addr::from(node))
}

/// The node's IPv6 underlay address (on its `eth0`, added by the bench), in a `/64`.
const NODE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x231, 0, 0, 0, 0, 0, 1);

fn write_yaml(path: &Path, value: &serde_json::Value) -> Result<(), BenchError> {
    let text =
        serde_saphyr::to_string(value).map_err(|e| BenchError::Failed(format!("render {}: {e}", path.display())))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(BenchError::io(format!("create {}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(BenchError::io(format!("write {}", path.display())))
}

/// Where the bench writes the agent's span.
fn span_file(node: &NodeRecord) -> PathBuf {
    node.dir.join("span.yaml")
}

/// Writes the node's NodeNetwork, its span (no operator runs here) and the remote blocks into
/// `staged` (moved in to start a run).
fn prepare(
    store: &Path,
    span_file: &Path,
    staged: &Path,
    node: &NodeRecord,
    pods: &[String],
) -> Result<(), BenchError> {
    write_spec(store, node, false)?;
    let span = json!({"endpoints": pods.iter().map(|ns| json!({"name": format!("bench/m-{ns}"), "ingress": [], "egress": []})).collect::<Vec<_>>()});
    write_yaml(span_file, &span)?;
    std::fs::create_dir_all(staged).map_err(BenchError::io("create the staged blocks"))?;
    for i in 0..BLOCKS {
        let (cidr, tunnel, mac, address) = block(i);
        let object = json!({"apiVersion": "gingham.dev/v1", "kind": "IPAMBlock", "metadata": {"name": format!("r{i}")},
            "spec": {"cidr": cidr, "node": format!("r{i}"), "pool": "bench", "nodeAddress": format!("{address}/16"),
                "tunnelAddress": tunnel.to_string(), "vtepMAC": mac}});
        write_yaml(&staged.join(format!("r{i}.yaml")), &object)?;
    }
    Ok(())
}

/// Writes the node's NodeNetwork: IPv4 (VXLAN Always), and with `ipv6` also its IPv6 address and
/// an IPv6 pool in VXLAN CrossSubnet.
fn write_spec(store: &Path, node: &NodeRecord, ipv6: bool) -> Result<(), BenchError> {
    std::fs::create_dir_all(store.join(NODE_NETWORKS)).map_err(BenchError::io("create the NodeNetworks' directory"))?;
    let mut spec = json!({"apiVersion": "gingham.dev/v1", "kind": "NodeNetwork", "metadata": {"name": "n1", "generation": 1},
        "spec": {"address": node.address, "blocks": ["10.64.0.0/26", "10.64.0.64/26"],
            "pools": [{"name": "bench", "cidr": "10.64.0.0/10", "ipipMode": "Never", "vxlanMode": "Always", "natOutgoing": false}],
            "tunnel": {"vxlanVNI": 4096, "vxlanPort": 4789, "blocks": ["10.64.0.0/26"], "vtepMAC": "02:aa:00:00:00:01"},
            // A sync every second (the nftables refresh), a full netlink dump every 90 s.
            "agent": {"routeRefreshSeconds": 90, "nftablesRefreshSeconds": 1}}});
    if ipv6 {
        spec["spec"]["address6"] = json!(format!("{NODE6}/64"));
        if let Some(pools) = spec["spec"]["pools"].as_array_mut() {
            pools.push(json!({"name": "bench6", "cidr": "fd00:64::/48", "ipipMode": "Never", "vxlanMode": "CrossSubnet", "natOutgoing": false}));
        }
    }
    write_yaml(&node_network_path(store, "n1"), &spec)
}

/// Writes the remote IPv6 blocks into `staged`.
fn prepare6(staged: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(staged).map_err(BenchError::io("create the staged IPv6 blocks"))?;
    for i in 0..BLOCKS {
        let (cidr, address) = block6(i);
        let object = json!({"apiVersion": "gingham.dev/v1", "kind": "IPAMBlock", "metadata": {"name": format!("s{i}")},
            "spec": {"cidr": cidr, "node": format!("s{i}"), "pool": "bench6", "nodeAddress": format!("{address}/64")}});
        write_yaml(&staged.join(format!("s{i}.yaml")), &object)?;
    }
    Ok(())
}

/// The agent's dataplane syncs so far: seconds spent in them and how many (its
/// `sync_duration_seconds` sum and count), read from its metrics endpoint (the default
/// 0.0.0.0:9091, inside the node's namespace).
fn syncs(netns: &str) -> Option<(f64, f64)> {
    let text = cmd::run_in(netns, "curl", &["-sf", "http://127.0.0.1:9091/metrics"]).ok()?;
    let value = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(&format!("gingham_agent_sync_duration_seconds_{name} ")))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    Some((value("sum")?, value("count")?))
}

/// Seconds the agent spent in dataplane syncs so far.
fn sync_seconds(netns: &str) -> Option<f64> {
    syncs(netns).map(|(sum, _)| sum)
}

/// CPU seconds (user and system) a process used so far.
fn cpu_seconds(pid: i32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
    #[allow(clippy::cast_precision_loss)]
    Some(ticks / per_second as f64)
}

/// The agent's CPU per idle sync and the syncs' own time, in milliseconds, over [`IDLE_WINDOW`]
/// (the agent's other idle work, its status ticks, is in the CPU figure too).
fn idle_cost(netns: &str, pid: i32) -> Result<(Option<f64>, Option<f64>), BenchError> {
    guard::sleep(Duration::from_millis(1500))?;
    let before = (cpu_seconds(pid), syncs(netns));
    guard::sleep(IDLE_WINDOW)?;
    let after = (cpu_seconds(pid), syncs(netns));
    let (Some((sum0, count0)), Some((sum1, count1))) = (before.1, after.1) else { return Ok((None, None)) };
    let count = count1 - count0;
    if count < 1.0 {
        return Ok((None, None));
    }
    let cpu = before.0.zip(after.0).map(|(a, b)| (b - a) * 1000.0 / count);
    Ok((cpu, Some((sum1 - sum0) * 1000.0 / count)))
}

/// Lines of the agent's namespace's IPv4 main table (via its /proc) on the VXLAN device.
fn vxlan_routes(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/net/route"))
        .map_or(0, |t| t.lines().filter(|l| l.starts_with("vxlan.gingham")).count())
}

/// Routes to the remote IPv6 blocks (`fd00:64::/48`) in the agent's namespace (via its /proc).
fn ipv6_routes(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/net/ipv6_route"))
        .map_or(0, |t| t.lines().filter(|l| l.starts_with("fd000064")).count())
}

/// Which routes a run waits for.
#[derive(Clone, Copy)]
enum Family {
    /// [`BLOCKS`] IPv4 blocks over VXLAN.
    V4,
    /// [`BLOCKS`] IPv6 blocks, direct.
    V6,
}

impl Family {
    fn routed(self, pid: i32) -> usize {
        match self {
            Self::V4 => vxlan_routes(pid),
            Self::V6 => ipv6_routes(pid),
        }
    }
}

/// VmRSS and VmHWM, in MiB, when readable.
pub type Memory = (Option<f64>, Option<f64>);

/// VmRSS and VmHWM of a process, in MiB.
pub fn memory(pid: i32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct RouteLab {
    lab: BenchLab,
    node: NodeRecord,
    staged: PathBuf,
    live: PathBuf,
}

impl RouteLab {
    /// Starts a fresh agent with no remote blocks; its PID once it is Ready (IPv4) or has synced
    /// (IPv6: its IPv6 VTEP address is wired from IPAM at the dual-stack merge; until then it
    /// reports the IPv6 pool's VXLAN as not programmable, so it is not Ready, and syncs all the
    /// same).
    fn start_agent(&mut self, family: Family) -> Result<i32, BenchError> {
        let _ = std::fs::remove_file(node_status_path(&self.lab.state.datastore(), "n1"));
        let span = lab::SpanSource::File(span_file(&self.node));
        lab::start_agent_from(&mut self.lab.state, &self.node, &span)?;
        let pid = self.lab.state.processes.last().map_or(0, |p| p.pid);
        let state = &self.lab.state;
        match family {
            Family::V4 => {
                guard::wait_for("the agent to be Ready", Duration::from_secs(60), Duration::from_millis(50), || {
                    lab::not_ready(state, "n1").is_none()
                })?;
            }
            Family::V6 => {
                guard::wait_for("the agent's first sync", Duration::from_secs(60), Duration::from_millis(50), || {
                    syncs(&self.node.netns).is_some_and(|(_, count)| count >= 1.0)
                })?;
            }
        }
        Ok(pid)
    }

    fn stop_agent(&mut self) -> Result<(), BenchError> {
        for record in self.lab.state.processes.iter().filter(|p| p.name == "agent n1") {
            process::stop(record, Duration::from_secs(3));
        }
        self.lab.state.processes.retain(|p| p.name != "agent n1");
        if self.live.exists() {
            std::fs::rename(&self.live, &self.staged).map_err(BenchError::io("unstage the blocks"))?;
        }
        // What the agent left (it adopts what it finds): the VXLAN device takes its IPv4 routes
        // and nexthops with it; the IPv6 ones go through eth0.
        let _ = cmd::ip(Some(&self.node.netns), &["link", "del", "vxlan.gingham"]);
        let _ = cmd::ip(Some(&self.node.netns), &["nexthop", "flush"]);
        let _ = cmd::ip(Some(&self.node.netns), &["-6", "route", "flush", "proto", "249"]);
        Ok(())
    }

    /// The idle cost with [`FEW_BLOCKS`] remote blocks (written straight into the datastore,
    /// removed after); the agent is stopped after.
    fn idle_with_few(&mut self) -> Result<(Option<f64>, Option<f64>), BenchError> {
        std::fs::create_dir_all(&self.live).map_err(BenchError::io("create the blocks' directory"))?;
        for i in 0..FEW_BLOCKS {
            let name = format!("r{i}.yaml");
            std::fs::copy(self.staged.join(&name), self.live.join(&name))
                .map_err(BenchError::io(format!("copy {name}")))?;
        }
        let pid = self.start_agent(Family::V4)?;
        let wanted = FEW_BLOCKS as usize;
        guard::wait_for("10 routes on vxlan.gingham", Duration::from_secs(60), Duration::from_millis(50), || {
            vxlan_routes(pid) >= wanted
        })?;
        let cost = idle_cost(&self.node.netns, pid)?;
        std::fs::remove_dir_all(&self.live).map_err(BenchError::io("remove the few blocks"))?;
        self.stop_agent()?;
        Ok(cost)
    }

    /// One agent run: blocks appear, until every route of `family` is there; seconds, the
    /// seconds of the agent's syncs in that time (the rest is the datastore's poll and reading
    /// the blocks), and the idle memory.
    fn agent_run(&mut self, family: Family) -> Result<(f64, Option<f64>, Memory, i32), BenchError> {
        let pid = self.start_agent(family)?;
        guard::sleep(Duration::from_millis(500))?;
        let idle = memory(pid);
        let synced_before = sync_seconds(&self.node.netns);
        let start = Instant::now();
        std::fs::rename(&self.staged, &self.live).map_err(BenchError::io("move the blocks in"))?;
        let wanted = BLOCKS as usize;
        // Each look reads the whole table from /proc: every 10 ms, not to slow the agent down.
        guard::wait_for("5,000 remote block routes", Duration::from_secs(120), Duration::from_millis(10), || {
            family.routed(pid) >= wanted
        })?;
        let elapsed = start.elapsed().as_secs_f64();
        // The sync that programmed the routes ends with the nftables step, after the last route.
        guard::sleep(Duration::from_millis(500))?;
        let synced = sync_seconds(&self.node.netns).zip(synced_before).map(|(after, before)| after - before);
        Ok((elapsed, synced, idle, pid))
    }
}

/// The baseline: `ip -batch` (and `bridge -batch` for the FDB) into a fresh VXLAN device.
fn baseline_run(netns: &str, dir: &Path, with_neighbours: bool) -> Result<f64, BenchError> {
    let _ = cmd::ip(Some(netns), &["link", "del", "vxlan.b"]);
    cmd::ip(
        Some(netns),
        &[
            "link",
            "add",
            "vxlan.b",
            "type",
            "vxlan",
            "id",
            "4096",
            "local",
            "10.231.1.50",
            "dstport",
            "4789",
            "nolearning",
            "dev",
            "d0",
        ],
    )?;
    cmd::ip(Some(netns), &["link", "set", "vxlan.b", "up"])?;
    let routes = dir.join(if with_neighbours { "all.batch" } else { "routes.batch" });
    let start = Instant::now();
    cmd::ip(Some(netns), &["-batch", &routes.display().to_string()])?;
    if with_neighbours {
        cmd::run("bridge", &["-n", netns, "-batch", &dir.join("fdb.batch").display().to_string()])?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The IPv6 baseline: `ip -6 -batch` adding the same routes (after flushing the last run's).
fn baseline_run6(netns: &str, dir: &Path) -> Result<f64, BenchError> {
    cmd::ip(Some(netns), &["-6", "route", "flush", "proto", "249"])?;
    let start = Instant::now();
    cmd::ip(Some(netns), &["-6", "-batch", &dir.join("routes6.batch").display().to_string()])?;
    Ok(start.elapsed().as_secs_f64())
}

fn baseline_files(dir: &Path) -> Result<(), BenchError> {
    let mut routes6 = String::new();
    for i in 0..BLOCKS {
        let (cidr, node) = block6(i);
        let _ = writeln!(routes6, "route add {cidr} via {node} dev d0 proto 249");
    }
    std::fs::write(dir.join("routes6.batch"), routes6).map_err(BenchError::io("write routes6.batch"))?;
    let (mut routes, mut all, mut fdb) = (String::new(), String::new(), String::new());
    for i in 0..BLOCKS {
        let (cidr, tunnel, mac, node) = block(i);
        let route = format!("route add {cidr} via {tunnel} dev vxlan.b onlink proto 249\n");
        routes.push_str(&route);
        all.push_str(&route);
        let _ = writeln!(all, "neigh add {tunnel} lladdr {mac} dev vxlan.b nud permanent");
        let _ = writeln!(fdb, "fdb add {mac} dev vxlan.b dst {node} self permanent");
    }
    for (name, text) in [("routes.batch", routes), ("all.batch", all), ("fdb.batch", fdb)] {
        std::fs::write(dir.join(name), text).map_err(BenchError::io(format!("write {name}")))?;
    }
    Ok(())
}

fn add_pods(lab: &mut BenchLab, options: &Options, node: &NodeRecord) -> Result<(), BenchError> {
    let plugin = Plugin::gingham(&options.bin_dir, &cni_socket(node), false);
    let netns: Vec<String> = (0..PODS).map(|i| lab.scratch(&format!("p{i}"))).collect();
    // The node's NodeNetwork names these endpoints (no operator runs here): see `prepare`.
    for ns in &netns {
        topology::add_netns(&mut lab.state, ns).map_err(LabError::from)?;
    }
    let (plugin, node) = (&plugin, node.netns.as_str());
    for chunk in netns.chunks(10) {
        guard::check()?;
        let failed: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                chunk.iter().map(|ns| scope.spawn(move || plugin.exec(node, "ADD", &format!("m-{ns}"), ns))).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).filter_map(|r| r.err().map(|e| e.to_string())).collect()
        });
        if let Some(first) = failed.first() {
            return Err(BenchError::Failed(format!("{} pod ADDs failed, first: {first}", failed.len())));
        }
    }
    Ok(())
}

/// Runs benchmarks 5 and 6.
pub fn run(options: &Options, results: &mut Results) -> Result<(), BenchError> {
    let mut lab = BenchLab::up(SCENARIO, &guard::prefix('r'), &options.bin_dir, true)?;
    let node = lab.state.node("n1").cloned().ok_or_else(|| BenchError::Failed("node n1 missing".into()))?;
    let staged = lab.state.state_dir.join("staged-blocks");
    let staged6 = lab.state.state_dir.join("staged-blocks6");
    let live = lab.state.datastore().join(IPAM_BLOCKS);
    let pods: Vec<String> = (0..PODS).map(|i| lab.scratch(&format!("p{i}"))).collect();
    prepare(&lab.state.datastore(), &span_file(&node), &staged, &node, &pods)?;
    prepare6(&staged6)?;
    cmd::ip(Some(&node.netns), &["-6", "addr", "add", &format!("{NODE6}/64"), "dev", "eth0", "nodad"])?;
    let scratch = lab.scratch("routes");
    topology::add_netns(&mut lab.state, &scratch).map_err(LabError::from)?;
    cmd::ip(Some(&scratch), &["link", "add", "d0", "type", "veth", "peer", "name", "d1"])?;
    cmd::ip(Some(&scratch), &["link", "set", "d1", "up"])?;
    cmd::ip(Some(&scratch), &["addr", "add", "10.231.1.50/24", "dev", "d0"])?;
    cmd::ip(Some(&scratch), &["-6", "addr", "add", "fd00:231::ffff:50/64", "dev", "d0", "nodad"])?;
    cmd::ip(Some(&scratch), &["link", "set", "d0", "up"])?;
    baseline_files(&lab.state.state_dir)?;
    let dir = lab.state.state_dir.clone();
    let store = lab.state.datastore();
    write_spec(&store, &node, true)?;
    let mut rl = RouteLab { lab, node: node.clone(), staged: staged6, live };
    let (mut ours6, mut syncs6, mut batch6) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=REPS {
        guard::check()?;
        let (seconds, synced, _, _) = rl.agent_run(Family::V6)?;
        let ip = baseline_run6(&scratch, &dir)?;
        if rep > 0 {
            ours6.push(seconds);
            syncs6.extend(synced);
            batch6.push(ip);
        }
        rl.stop_agent()?;
    }
    rl.staged = staged;
    write_spec(&store, &node, false)?;
    let idle_few = rl.idle_with_few()?;
    let (mut ours, mut batch, mut batch_all, mut idle) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut syncs = Vec::new();
    let mut pid = 0;
    for rep in 0..=REPS {
        guard::check()?;
        let (seconds, synced, memory_idle, agent) = rl.agent_run(Family::V4)?;
        let ip = baseline_run(&scratch, &dir, false)?;
        let all = baseline_run(&scratch, &dir, true)?;
        if rep > 0 {
            ours.push(seconds);
            syncs.extend(synced);
            batch.push(ip);
            batch_all.push(all);
            idle.push(memory_idle);
        }
        pid = agent;
        if rep < REPS {
            rl.stop_agent()?;
        }
    }
    let routed = memory(pid);
    let idle_many = idle_cost(&node.netns, pid)?;
    results.samples("routes.csv", "agent_s", &ours);
    results.samples("routes.csv", "agent_sync_s", &syncs);
    results.samples("routes.csv", "ip_batch_routes_s", &batch);
    results.samples("routes.csv", "ip_bridge_batch_routes_neigh_fdb_s", &batch_all);
    let rate = |s: &[f64]| summarize(s).map(|s| f64::from(BLOCKS) / s.p50);
    let mut row = Row::value(
        5,
        format!("{BLOCKS} VXLAN blocks, empty → routed, median of {REPS}"),
        rate(&ours),
        "routes/s",
        Goal::AtLeast(50_000.0),
    );
    if let (Some(total), Some(sync)) = (summarize(&ours), summarize(&syncs)) {
        row.note = format!(
            "median {:.2} s, of which the agent's sync {:.2} s (sync_duration_seconds; it ends with the nft step); the rest is noticing (inotify) and reading the {BLOCKS} block files",
            total.p50, sync.p50
        );
    }
    results.rows.push(row);
    let sync_ms = summarize(&syncs).map(|s| s.p50 * 1000.0);
    let mut sync_row = Row::value(
        5,
        format!(
            "{BLOCKS} VXLAN blocks, empty → routed: the agent's sync (nexthop, route, neigh, fdb each), median of {REPS}"
        ),
        sync_ms,
        "ms",
        Goal::AtMost(150.0),
    );
    sync_row.note = "the dataplane sync that programs them (sync_duration_seconds), without the datastore's noticing and reading the files".into();
    results.rows.push(sync_row);
    let mut row = Row::value(
        5,
        "… the agent's sync vs `ip -batch`, routes only (the same 5,000 routes, one by one)".to_string(),
        rate(&syncs),
        "routes/s",
        Goal::RatioAtLeast(1.5),
    );
    row.baseline = rate(&batch);
    results.rows.push(row.clone());
    row.what =
        "… the agent's sync vs `ip -batch` routes+neigh and `bridge -batch` fdb (what the agent also programs)".into();
    row.baseline = rate(&batch_all);
    row.goal = Goal::None;
    results.rows.push(row);
    ipv6_rows(results, (&ours6, &syncs6, &batch6));
    idle_rows(results, idle_few, idle_many);
    add_pods(&mut rl.lab, options, &node)?;
    guard::sleep(Duration::from_secs(3))?;
    memory_rows(results, &idle, routed, memory(pid));
    Ok(())
}

/// The IPv6 rows: the agent's sync of the 5,000 IPv6 blocks against `ip -6 -batch`.
fn ipv6_rows(results: &mut Results, (ours, syncs, batch): (&[f64], &[f64], &[f64])) {
    results.samples("routes.csv", "agent6_s", ours);
    results.samples("routes.csv", "agent6_sync_s", syncs);
    results.samples("routes.csv", "ip6_batch_routes_s", batch);
    let rate = |s: &[f64]| summarize(s).map(|s| f64::from(BLOCKS) / s.p50);
    let sync_ms = summarize(syncs).map(|s| s.p50 * 1000.0);
    let mut sync_row = Row::value(
        5,
        format!(
            "{BLOCKS} IPv6 blocks (direct), empty → routed: the agent's sync (nexthop, route each), median of {REPS}"
        ),
        sync_ms,
        "ms",
        Goal::AtMost(150.0),
    );
    if let Some(total) = summarize(ours) {
        sync_row.note = format!(
            "IPv6 pool in VXLAN CrossSubnet, every remote node on the node's /64: one nexthop per node via its address on eth0; blocks appear → routed median {:.2} s",
            total.p50
        );
    }
    results.rows.push(sync_row);
    let mut row = Row::value(
        5,
        "… the agent's IPv6 sync vs `ip -6 -batch`, routes only (the same 5,000 routes, one by one)".to_string(),
        rate(syncs),
        "routes/s",
        Goal::RatioAtLeast(1.5),
    );
    row.baseline = rate(batch);
    results.rows.push(row);
}

/// CPU per idle sync with few and many remote nodes: the many's baseline is the few's (flat is
/// the goal; at most 1.5x).
fn idle_rows(results: &mut Results, few: (Option<f64>, Option<f64>), many: (Option<f64>, Option<f64>)) {
    let few_row = Row::value(5, format!("agent CPU per idle sync, {FEW_BLOCKS} remote nodes"), few.0, "ms", Goal::None);
    results.rows.push(few_row);
    let mut many_row = Row::value(
        5,
        format!("agent CPU per idle sync, {BLOCKS} remote nodes (vs {FEW_BLOCKS})"),
        many.0,
        "ms",
        Goal::RatioAtMost(1.5),
    );
    many_row.baseline = few.0;
    many_row.note = format!(
        "CPU of the whole agent over {}s of one sync a second, per sync; the syncs' own time {:.2} ms ({FEW_BLOCKS}) and {:.2} ms ({BLOCKS})",
        IDLE_WINDOW.as_secs(),
        few.1.unwrap_or(f64::NAN),
        many.1.unwrap_or(f64::NAN)
    );
    results.rows.push(many_row);
}

fn memory_rows(results: &mut Results, idle: &[Memory], routed: Memory, pods: Memory) {
    let idle_rss: Vec<f64> = idle.iter().filter_map(|m| m.0).collect();
    results.samples("memory.csv", "idle_rss_mib", &idle_rss);
    for (what, (rss, hwm)) in [
        (
            "idle (no remote blocks, no pods)".to_string(),
            (summarize(&idle_rss).map(|s| s.p50), idle.last().and_then(|m| m.1)),
        ),
        (format!("{BLOCKS} remote blocks"), routed),
        (format!("{BLOCKS} remote blocks + {PODS} local pods"), pods),
    ] {
        results.samples("memory.csv", &format!("{what} rss/hwm"), &[rss.unwrap_or(0.0), hwm.unwrap_or(0.0)]);
        results.rows.push(Row::value(6, format!("agent VmRSS, {what}"), rss, "MiB", Goal::AtMost(30.0)));
        results.rows.push(Row::value(6, format!("agent VmHWM, {what}"), hwm, "MiB", Goal::AtMost(30.0)));
    }
}
