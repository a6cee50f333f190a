//! `gingham`, the command line of gingham networking (calicoctl's place; also installed as
//! `kubectl-gingham`). Each command builds one report from a [`source::ClusterView`] (or from
//! files, for `validate` and `render`) and prints it as text, JSON or YAML.
//!
//! Exit codes: 0 ok, 1 problems found (an invalid manifest, a node not ready, an address nobody
//! holds), 2 the command could not run (usage errors, an unreadable datastore or path).

pub mod args;
pub mod convert;
pub mod diags;
pub mod ipam;
pub mod ipam_check;
pub mod ipam_release;
pub mod node;
pub mod output;
pub mod policy;
pub mod source;
pub mod version;

use std::io::Write as _;
use std::process::ExitCode;

use gingham_operator::validate::validate_paths;

use crate::args::{Cli, Command, IpamCommand, NodeCommand, PolicyCommand};
use crate::output::{Format, Report};
use crate::source::SourceSpec;

/// The exit code of a command that found problems.
const PROBLEMS: u8 = 1;
/// The exit code of a command that could not run.
const CANNOT_RUN: u8 = 2;

/// Runs the command and says how the process should exit.
pub async fn run(cli: Cli) -> ExitCode {
    let format = cli.output;
    match cli.command {
        Command::Validate(args) => match validate_paths(&args.paths) {
            Ok(report) => {
                let clean = report.is_clean();
                exit(emit(&Validated(report), format) && clean)
            }
            Err(error) => cannot_run(&error),
        },
        Command::Convert { file } => match convert::convert_path(&file) {
            Ok(report) => exit(emit(&report, format) && report.is_clean()),
            Err(message) => cannot_run(&message),
        },
        Command::Render(args) => gingham_operator::render::run(&args),
        Command::Policy(PolicyCommand::Preview { file, port, settings }) => {
            let SourceSpec::File(dir) = &cli.source.datastore else {
                return cannot_run(&"policy preview needs the file datastore (--datastore file:DIR) for now");
            };
            match policy::preview::preview(dir, &file, &port, &settings.to_settings()) {
                Ok(report) => exit(emit(&report, format)),
                Err(message) => cannot_run(&message),
            }
        }
        command => {
            let view = match source::load(&cli.source).await {
                Ok(view) => view,
                Err(error) => return cannot_run(&error),
            };
            for problem in &view.problems {
                eprintln!("skipped: {problem}");
            }
            match command {
                Command::Version => match source::component_images(&cli.source).await {
                    Ok(images) => exit(emit(&version::report(&view, images), format)),
                    Err(error) => cannot_run(&error),
                },
                Command::Diags(args) => match diags::collect(&view, &args) {
                    Ok(report) => exit(emit(&report, format) && report.is_complete()),
                    Err(message) => cannot_run(&message),
                },
                Command::Node(NodeCommand::Status { node, local: true, bird_dir }) => {
                    match node::local_status(&view, &node::this_node(node), &bird_dir) {
                        Ok(report) => exit(emit(&report, format) && report.is_healthy()),
                        Err(message) => cannot_run(&message),
                    }
                }
                Command::Node(NodeCommand::Status { node, .. }) => match node::status(&view, node.as_deref()) {
                    Ok(report) => exit(emit(&report, format) && report.is_healthy()),
                    Err(message) => {
                        eprintln!("error: {message}");
                        ExitCode::from(PROBLEMS)
                    }
                },
                Command::Ipam(IpamCommand::Check { fix: false, .. }) => {
                    let report = ipam_check::check(&view);
                    exit(emit(&report, format) && report.is_clean())
                }
                Command::Ipam(IpamCommand::Check { fix: true, grace_seconds, agent }) => {
                    let check = ipam_check::check(&view);
                    match ipam_release::fix(&view, &check, &agent, std::time::Duration::from_secs(grace_seconds)) {
                        Ok(report) => exit(emit(&report, format) && report.is_complete()),
                        Err(message) => cannot_run(&message),
                    }
                }
                Command::Ipam(IpamCommand::Release { ip, force, agent }) => {
                    match ipam_release::release_ip(&view, &agent, ip, force) {
                        Ok(report) => exit(emit(&report, format) && report.is_complete()),
                        Err(message) => {
                            eprintln!("error: {message}");
                            ExitCode::from(PROBLEMS)
                        }
                    }
                }
                Command::Ipam(IpamCommand::Show(args)) => {
                    let report = ipam::show(&view, &args);
                    exit(emit(&report, format) && !report.found_problems())
                }
                Command::Policy(PolicyCommand::Explain { from, to, port }) => {
                    match policy::explain::explain(&view, &from, &to, port) {
                        Ok(report) => exit(emit(&report, format)),
                        Err(message) => {
                            eprintln!("error: {message}");
                            ExitCode::from(PROBLEMS)
                        }
                    }
                }
                Command::Policy(PolicyCommand::Log { text }) => match policy::log::explain_log(&view, &text) {
                    Ok(report) => exit(emit(&report, format)),
                    Err(message) => {
                        eprintln!("error: {message}");
                        ExitCode::from(PROBLEMS)
                    }
                },
                Command::Policy(PolicyCommand::Preview { .. })
                | Command::Validate(_)
                | Command::Convert { .. }
                | Command::Render(_) => ExitCode::from(CANNOT_RUN),
            }
        }
    }
}

/// A validation report, for `-o json|yaml`.
#[derive(serde::Serialize)]
struct Validated(gingham_operator::validate::Report);

impl Report for Validated {
    fn human(&self) -> String {
        self.0.to_string()
    }
}

/// Prints `report`; false when it could not be printed. A reader that went away (`| head`) is no
/// error.
fn emit(report: &impl Report, format: Format) -> bool {
    match output::render(report, format) {
        Ok(text) => match std::io::stdout().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("error: cannot write the report: {e}");
                false
            }
            _ => true,
        },
        Err(error) => {
            eprintln!("error: {error}");
            false
        }
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(PROBLEMS) }
}

fn cannot_run(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(CANNOT_RUN)
}
