//! The operator core on a synthetic cluster ([`cluster`]) at 500, 5,000 and 10,000 nodes: full
//! compute time and peak memory, the largest object the operator writes, and for single changes
//! on the loaded engine their time, the API writes they cost and what the stream sends.
//!
//! `cargo bench -p gingham-operator --bench compute` prints three tables (this is a benchmark,
//! not a timed test: it asserts nothing). `GINGHAM_BENCH_NODES=500` (or `500,5000`) runs those
//! sizes only. Each size runs in a child process of its own (this binary again, with
//! `GINGHAM_BENCH_SIZE`), so that its memory figures are its own.
//!
//! - **Full compute** is loading the whole snapshot into the engine in one batch (`Engine::load`,
//!   as the controller does with a snapshot), which consumes the snapshot.
//! - **Memory beyond the inputs**: the most the process held during the load, less what it held
//!   with the snapshot built just before. Counted two ways: bytes held through the allocator (a
//!   counting global allocator, [`memory`]), and the resident set (`VmHWM`, reset through
//!   `/proc/self/clear_refs` before the load, less `VmRSS` then). `VmHWM` alone includes the
//!   inputs.
//! - **API writes** are what the operator's writer (`plan`, the Kubernetes datastore's) decides
//!   to write for the objects the engine's changes name, against an API server that holds what
//!   it wrote before ([`apiserver`]): creates, updates of spec or status, and deletes.
//! - **The stream**: the batch the operator's feed publishes for the round, through a hub, and
//!   the bytes of each message the server would send to a subscriber that held the revision
//!   before ([`fanout`]).
//! - **Largest object**: the bytes of the JSON of the largest object of each kind in the first
//!   apply of everything.
//!
//! A pod add is the Pod and its node's report with the address, written and published as one
//! round; a pod delete the reverse. Above 5,000 nodes each change is made a quarter as often.
//!
//! To profile the full compute alone: `GINGHAM_BENCH_SIZE=5000 GINGHAM_BENCH_LOAD_ONLY=1 perf
//! record -g <the bench binary>` builds the cluster, loads it and stops.

mod apiserver;
mod changes;
mod cluster;
mod fanout;
mod memory;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::Instant;

use gingham_operator::core::OperatorSettings;
use gingham_operator::core::engine::Engine;

use crate::apiserver::ApiServer;
use crate::changes::Loaded;
use crate::fanout::Fanout;

#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

/// The sizes run when `GINGHAM_BENCH_NODES` names none.
const SIZES: [usize; 3] = [500, 5_000, 10_000];

/// The header of each table, by the tag its rows carry from the children.
const TABLES: [(&str, &str); 3] = [
    (
        "full",
        "| nodes | pods | policies | full compute | inputs (allocated) | allocated beyond inputs (peak) | RSS beyond inputs (peak) | VmHWM with inputs | held after load |\n|---|---|---|---|---|---|---|---|---|",
    ),
    (
        "change",
        "| nodes | pods | change on the loaded engine | rounds | mean time | API writes (median, max) | writes of the largest round | stream items | nodes sent to | bytes per event | bytes per node sent to | median message | largest message |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ),
    (
        "object",
        "| nodes | policies | kind | objects written | largest object | the largest | all of the kind |\n|---|---|---|---|---|---|---|",
    ),
];

/// One size, in this (child) process: prints its rows, each tagged with its table.
fn run_size(nodes: usize) {
    let began = Instant::now();
    let snapshot = cluster::cluster(nodes);
    let policies =
        snapshot.network_policies.len() + snapshot.kube_network_policies.len() + snapshot.global_network_policies.len();
    let pods = snapshot.pods.len();
    let reports = snapshot.node_statuses.clone();
    let pools = snapshot.pools.clone();
    let inputs = memory::held_mib();
    memory::reset_peaks();
    let rss_inputs = memory::status_mib("VmRSS");
    let start = Instant::now();
    let mut engine = Engine::load(snapshot, OperatorSettings::default());
    black_box(engine.desired());
    let full = start.elapsed();
    let (peak, hwm) = (memory::peak_mib() - inputs, memory::status_mib("VmHWM"));
    println!(
        "full| {nodes} | {pods} | {policies} | {:.2} s | {inputs:.0} MiB | {peak:.0} MiB | {:.0} MiB | {hwm:.0} MiB | {:.0} MiB |",
        full.as_secs_f64(),
        hwm - rss_inputs,
        memory::held_mib(),
    );
    if std::env::var_os("GINGHAM_BENCH_LOAD_ONLY").is_some() {
        return;
    }
    let first = engine.take_changes();
    let written = Instant::now();
    let api = ApiServer::load(engine.desired(), pools);
    for (kind, largest) in api.largest() {
        println!(
            "object| {nodes} | {policies} | {kind} | {} | {} B | {} | {} B |",
            largest.objects, largest.bytes, largest.name, largest.total
        );
    }
    let fanout = Fanout::load(engine.desired(), &first);
    eprintln!(
        "{nodes} nodes: cluster built and loaded after {:.1} s, first apply and stream snapshot in {:.1} s; the hub holds {} items",
        start.duration_since(began).as_secs_f64() + full.as_secs_f64(),
        written.elapsed().as_secs_f64(),
        fanout.items()
    );
    let mut loaded = Loaded { engine, api, fanout, nodes, reports };
    for row in loaded.rows(pods) {
        println!("change{row}");
    }
}

fn main() {
    if let Some(nodes) = std::env::var("GINGHAM_BENCH_SIZE").ok().and_then(|n| n.parse().ok()) {
        run_size(nodes);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = match std::env::var("GINGHAM_BENCH_NODES") {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => SIZES.to_vec(),
    };
    let mut lines = Vec::new();
    let exe = std::env::current_exe().unwrap_or_default();
    for nodes in sizes {
        let started = Instant::now();
        match Command::new(&exe).env("GINGHAM_BENCH_SIZE", nodes.to_string()).stderr(Stdio::inherit()).output() {
            Ok(out) if out.status.success() => {
                lines.extend(String::from_utf8_lossy(&out.stdout).lines().map(String::from))
            }
            Ok(out) => lines.push(format!("failed| {nodes} | {} |", out.status)),
            Err(error) => lines.push(format!("failed| {nodes} | {error} |")),
        }
        eprintln!("{nodes} nodes: {:.0} s", started.elapsed().as_secs_f64());
    }
    for (tag, header) in TABLES {
        println!("{header}");
        lines.iter().filter_map(|line| line.strip_prefix(tag)?.strip_prefix('|')).for_each(|row| println!("|{row}"));
        println!();
    }
    for failed in lines.iter().filter_map(|line| line.strip_prefix("failed|")) {
        println!("A size did not complete:{failed}");
    }
}
