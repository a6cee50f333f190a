//! `gingham-node-agent`: see `gingham_node_agent::cli::Cli` for the flags.

use std::process::ExitCode;

use clap::Parser;
use gingham_node_agent::cli::{self, Cli, LogFormat};
use gingham_node_agent::logging;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = logging::init(cli.log_format == LogFormat::Json);
    match cli::run(cli, logs).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "gingham-node-agent failed");
            ExitCode::FAILURE
        }
    }
}
