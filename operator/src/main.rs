//! `gingham-operator`: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use gingham_operator::app;
use gingham_operator::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    app::init_logging(cli.log_format);
    app::run(cli).await
}
