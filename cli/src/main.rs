//! `gingham` (also `kubectl-gingham`): parse the command line, run, exit 0 (ok), 1 (problems
//! found) or 2 (usage error; clap exits 2 on its own).

use std::process::ExitCode;

use clap::Parser;
use gingham_cli::args::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    gingham_cli::run(Cli::parse()).await
}
