//! `gingham-bench`: runs gingham's benchmarks against their baselines on the lab and writes
//! BENCHMARKS.md and bench-results/ (issue 6). Run as root; `make bench` builds what it needs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gingham_e2e::bench::{self, Options, guard, report};

/// Benchmarks gingham against its baselines in the same run (run as root).
#[derive(Parser, Debug)]
struct Cli {
    /// Where gingham-operator, gingham-node-agent, gingham-cni and gingham-lab are (default: next
    /// to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where BENCHMARKS.md and bench-results/ are written.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Run only these benchmark groups (1, 2, 4, 5, 7, 8, 9), comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Sequential CNI ADD/DEL cycles per plugin.
    #[arg(long, default_value_t = 200)]
    cni_cycles: usize,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 3)]
    iperf_seconds: u32,
    /// iperf3 runs per side, after one warm-up run.
    #[arg(long, default_value_t = 3)]
    iperf_reps: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let here = std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_default();
    let options = Options {
        bin_dir: cli.bin_dir.unwrap_or(here),
        out_dir: cli.out_dir,
        only: cli.only,
        cni_cycles: cli.cni_cycles,
        iperf_seconds: cli.iperf_seconds,
        iperf_reps: cli.iperf_reps,
    };
    if let Err(e) = guard::install_interrupt_handler() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let _lock = match guard::lab_lock(std::time::Duration::from_secs(120)) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let results = bench::run_all(&options);
    let mut command: Vec<String> = std::env::args().collect();
    if let (Some(first), Some(_)) = (command.first_mut(), std::env::var_os("CARGO_PKG_NAME")) {
        // Started by `cargo run`: record that command rather than the binary's path.
        *first = "cargo run --release -p gingham-e2e --bin gingham-bench --".into();
    }
    let context = report::Context::detect(command.join(" ").trim_end_matches(" --"), bench::method(&options));
    println!("{}", report::table(&results.rows));
    if let Err(e) = report::write(&options.out_dir, &context, &results) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {}/BENCHMARKS.md and bench-results/", options.out_dir.display());
    ExitCode::SUCCESS
}
