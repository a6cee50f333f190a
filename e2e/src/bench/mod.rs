//! `gingham-bench`: gingham measured against its baselines in the same run, on the lab
//! (issue 6). Every benchmark warms up, alternates ours and the baseline (A B A B), keeps its raw
//! samples and reports; a benchmark that cannot run says why and the others go on.
//!
//! [`cni`] (1), [`traffic`] (2, 3, and 8 on its own lab), [`policy`] (4), [`routes`] (5, 6), [`operator`] and [`fanout`] (7),
//! [`switch`] (9);
//! [`guard`] owns cleanup and Ctrl-C, [`report`] writes `BENCHMARKS.md` and `bench-results/`.

pub mod cni;
pub mod fanout;
pub mod guard;
pub mod netsets;
pub mod operator;
pub mod policy;
pub mod report;
pub mod routes;
pub mod stats;
pub mod switch;
pub mod traffic;

use std::path::PathBuf;
use std::time::Instant;

use crate::cmd::CmdError;
use crate::harness::HarnessError;
use crate::lab::LabError;

/// A benchmark could not run (it is reported, never fatal for the others).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Ctrl-C or SIGTERM: stop, clean up, write what was measured.
    #[error("interrupted (Ctrl-C or SIGTERM); everything created was removed")]
    Interrupted,
    /// The lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// The lab harness failed.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// A command failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// A live change (an encapsulation switch) failed.
    #[error(transparent)]
    Live(#[from] crate::live::LiveError),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Something the benchmark waits for did not happen.
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// What a row's ratio or value must satisfy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// ours / baseline at most this.
    RatioAtMost(f64),
    /// ours / baseline at least this.
    RatioAtLeast(f64),
    /// ours at most this (in the row's unit).
    AtMost(f64),
    /// ours at least this.
    AtLeast(f64),
    /// Reported only.
    None,
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The benchmark number.
    pub id: u8,
    /// What was measured, e.g. `ADD sequential p50`.
    pub what: String,
    /// Our value.
    pub ours: Option<f64>,
    /// The baseline's value, when there is one and it ran.
    pub baseline: Option<f64>,
    /// The unit of both values.
    pub unit: &'static str,
    /// The goal.
    pub goal: Goal,
    /// Why it misses, what was scaled down, or why it did not run.
    pub note: String,
}

impl Row {
    /// A row without a baseline.
    pub fn value(id: u8, what: impl Into<String>, ours: Option<f64>, unit: &'static str, goal: Goal) -> Self {
        Self { id, what: what.into(), ours, baseline: None, unit, goal, note: String::new() }
    }

    /// ours / baseline.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours, self.baseline) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Whether the goal is met; `None` when there is no goal or nothing to judge.
    pub fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::RatioAtMost(x) => self.ratio().map(|r| r <= x),
            Goal::RatioAtLeast(x) => self.ratio().map(|r| r >= x),
            Goal::AtMost(x) => self.ours.map(|v| v <= x),
            Goal::AtLeast(x) => self.ours.map(|v| v >= x),
            Goal::None => None,
        }
    }
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the gingham binaries are.
    pub bin_dir: PathBuf,
    /// The repository root (BENCHMARKS.md, bench-results/).
    pub out_dir: PathBuf,
    /// Which benchmarks to run (1-9); empty: all.
    pub only: Vec<u8>,
    /// Sequential CNI cycles.
    pub cni_cycles: usize,
    /// iperf3 seconds per run.
    pub iperf_seconds: u32,
    /// iperf3 runs per side (after one warm-up).
    pub iperf_reps: usize,
}

/// What a run collects: table rows, raw samples per file, free-form findings.
#[derive(Debug, Default)]
pub struct Results {
    /// The table.
    pub rows: Vec<Row>,
    /// Raw samples: file name in bench-results/ and its CSV lines (`series,rep,value`).
    pub raw: std::collections::BTreeMap<String, Vec<String>>,
    /// Verbatim sections (the operator's bench output).
    pub sections: Vec<(String, String)>,
    /// Seconds each benchmark took.
    pub durations: Vec<(u8, f64)>,
}

impl Results {
    /// Keeps raw samples of one series.
    pub fn samples(&mut self, file: &str, series: &str, values: &[f64]) {
        let lines = self.raw.entry(file.to_string()).or_default();
        lines.extend(values.iter().enumerate().map(|(i, v)| format!("{series},{i},{v:.6}")));
    }
}

/// A benchmark: its number, name and entry point.
pub type Bench = (u8, &'static str, fn(&Options, &mut Results) -> Result<(), BenchError>);

/// Every benchmark, in the order they run.
pub const ALL: &[Bench] = &[
    (1, "CNI ADD/DEL latency", cni::run),
    (2, "pod-to-pod throughput, and 3 policy cost", traffic::run),
    (4, "policy programming latency", policy::run),
    (5, "route programming, and 6 agent memory", routes::run),
    (7, "operator scale", operator::run),
    (8, "BGP join", traffic::run_join),
    (9, "encapsulation switch: loss on the full pod matrix", switch::run),
];

/// Runs the selected benchmarks; a failing one becomes a row saying why.
pub fn run_all(options: &Options) -> Results {
    let mut results = Results::default();
    for (id, name, bench) in ALL {
        if !options.only.is_empty() && !options.only.contains(id) {
            continue;
        }
        if guard::interrupted() {
            break;
        }
        eprintln!("== bench {id}: {name}");
        let start = Instant::now();
        if let Err(e) = bench(options, &mut results) {
            eprintln!("bench {id} did not complete: {e}");
            let mut row = Row::value(*id, format!("{name}: did not complete"), None, "", Goal::None);
            row.note = e.to_string();
            results.rows.push(row);
        }
        results.durations.push((*id, start.elapsed().as_secs_f64()));
    }
    results
}

/// How the run was done: repetitions and scale-downs, for BENCHMARKS.md.
pub fn method(options: &Options) -> Vec<String> {
    vec![
        format!(
            "1: {} sequential ADD+DEL cycles per plugin after 5 warm-up cycles, alternating gingham / ptp each cycle; then 3 rounds of 20 concurrent ADDs and DELs per plugin, alternating; from the exec of the plugin (by a thread inside the node namespace, as a runtime execs it in the host's) to its exit; the Pods exist before ADD, as kubelet creates them first",
            options.cni_cycles
        ),
        format!(
            "2, 3: iperf3 single stream, one 1 s warm-up per side, then {} × {} s per side alternating A B A B; medians",
            options.iperf_reps, options.iperf_seconds
        ),
        "3: a GlobalNetworkPolicy on the server pod with one Deny rule whose source set has N non-matching /32s, then the matching Allow; baseline: a pod on the same node that no policy selects".into(),
        format!("3 (network sets): two server pods on one node, each under a GlobalNetworkPolicy whose TCP Deny rule's source selects a GlobalNetworkSet of non-matching /30s ({:?} CIDRs), then Allow; probed alternately with a pod no policy selects", netsets::SIZES),
        format!("4: {} timed changes per case and level after one warm-up change; levels {:?}", 5, policy::LEVELS),
        format!("5, 6: {} remote blocks (one per remote node), 1 warm-up + 3 timed runs per side, alternating agent / ip -batch", routes::BLOCKS),
        format!("8: {} joins, one after the other", traffic::JOINS),
        format!(
            "9: every VXLAN transition each way, once, on 3 nodes over 2 subnets with {} pods each; every ordered pod pair pinged every {} ms from 0.5 s before the write until 1 s after every node applied it",
            switch::PODS_PER_NODE,
            switch::INTERVAL.as_millis()
        ),
    ]
}
