//! `gingham-node-agent`: see `gingham_node_agent::cli::Cli` for the flags.

use std::process::ExitCode;

use clap::Parser;
use gingham_node_agent::cli::{self, Cli, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).init(),
        LogFormat::Json => tracing_subscriber::fmt().with_env_filter(filter).json().init(),
    }
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "gingham-node-agent failed");
            ExitCode::FAILURE
        }
    }
}
