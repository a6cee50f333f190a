//! `gingham-lab`: a multi-node gingham cluster in network namespaces on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gingham_crds::api::IpFamily;
use gingham_crds::manifest::read_manifest_file;
use gingham_e2e::lab::{self, UpOptions};
use gingham_e2e::probe::{self, Probe};
use gingham_e2e::scenario::{self, DEFAULT_SCENARIO};
use gingham_e2e::state::LabState;
use gingham_e2e::{datastore, report, serve, services};

/// A multi-node gingham cluster in network namespaces (run as root).
#[derive(Parser)]
#[command(name = "gingham-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct Which {
    /// The lab's prefix (default: the default scenario's, `ghlab`).
    #[arg(long, default_value = "ghlab")]
    prefix: String,
    /// The lab's state directory (default /run/gingham-lab/<prefix>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

impl Which {
    fn dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| LabState::default_dir(&self.prefix))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the lab from a scenario (default: the shipped one); an existing lab is removed first.
    Up {
        /// The scenario file.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// The state directory (default /run/gingham-lab/<prefix>).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Where gingham-operator, gingham-node-agent and gingham-cni are (default: next to this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Only build namespaces and links (no operator, agents or pods).
        #[arg(long)]
        topology_only: bool,
        /// Seconds to wait for every NodeNetwork to be Ready.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Check a scenario without creating anything.
    Check {
        /// The scenario file.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Write objects into the lab's datastore, as `kubectl apply` would.
    Apply {
        /// The manifest file.
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[command(flatten)]
        which: Which,
    },
    /// Remove objects from the lab's datastore, as `kubectl delete -f` would.
    Delete {
        /// The manifest file.
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[command(flatten)]
        which: Which,
    },
    /// Print the pod-to-pod connectivity matrix (ICMP, or TCP with --port), over every family
    /// the lab has (one result per family in each cell), or one with -4 or -6.
    Probe {
        /// Probe this TCP port instead of pinging.
        #[arg(long)]
        port: Option<u16>,
        /// With --port: probe UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Probe over IPv4 only.
        #[arg(short = '4', conflicts_with = "ipv6")]
        ipv4: bool,
        /// Probe over IPv6 only.
        #[arg(short = '6')]
        ipv6: bool,
        #[command(flatten)]
        which: Which,
    },
    /// Per node: routes, BGP sessions and the nftables ruleset.
    Status {
        #[command(flatten)]
        which: Which,
    },
    /// Remove everything the lab created, and nothing else.
    Down {
        #[command(flatten)]
        which: Which,
    },
    /// (inside pods) Answer TCP connections and UDP datagrams on ports such as tcp:80,udp:53.
    #[command(hide = true)]
    Serve {
        /// The name to answer with.
        #[arg(long)]
        name: String,
        /// Comma-separated tcp:N / udp:N.
        #[arg(long)]
        ports: String,
    },
    /// (inside pods) Connect to ADDRESS:PORT and print the answer.
    #[command(hide = true)]
    Connect {
        /// The address and port.
        address: SocketAddr,
        /// UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Timeout in milliseconds.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

fn read_scenario(file: Option<&PathBuf>) -> Result<scenario::Scenario, String> {
    let text = match file {
        Some(path) => read_manifest_file(path).map_err(|e| e.to_string())?,
        None => DEFAULT_SCENARIO.to_string(),
    };
    scenario::parse(&text).map_err(|e| e.to_string())
}

fn load(which: &Which) -> Result<LabState, String> {
    let dir = which.dir();
    LabState::load(&dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| lab::LabError::NoLab(dir.display().to_string()).to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Cmd::Up { file, state_dir, bin_dir, topology_only, timeout } => {
            let scenario = read_scenario(file.as_ref())?;
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(PathBuf::from))
                    .ok_or("cannot find this binary's directory; pass --bin-dir")?,
            };
            let options = UpOptions { state_dir, bin_dir, topology_only, ready_timeout: Duration::from_secs(timeout) };
            let state = lab::up(&scenario, &options).map_err(|e| {
                format!(
                    "{e}\nthe partial lab is still there for inspection: `gingham-lab down --prefix {}`",
                    scenario.prefix
                )
            })?;
            println!("lab {} is up (state in {})\n", state.prefix, state.state_dir.display());
            println!("{}", report::readiness_table(&state));
            if !state.pods.is_empty() {
                println!("{}", probe::render_families(&state, &probe::matrices(&state, Probe::Icmp, None)));
            }
            print!("{}", report::cli_hint(&state));
            println!("tear it down with: gingham-lab down --prefix {}", state.prefix);
        }
        Cmd::Check { file } => {
            let scenario = read_scenario(file.as_ref())?;
            println!(
                "scenario ok: {} nodes, {} pods, {} objects",
                scenario.nodes.len(),
                scenario.pods.len(),
                scenario.objects.len()
            );
        }
        Cmd::Apply { file, which } => {
            let state = load(&which)?;
            for object in datastore::read_manifests(&file).map_err(|e| e.to_string())? {
                // A Service brings its EndpointSlices (the lab is the EndpointSlice controller).
                for slice in services::derived(&state, &object).map_err(|e| e.to_string())? {
                    let path = datastore::put(&state.datastore(), &slice).map_err(|e| e.to_string())?;
                    println!("applied {}", path.display());
                }
                let path = datastore::put(&state.datastore(), &object).map_err(|e| e.to_string())?;
                println!("applied {}", path.display());
            }
        }
        Cmd::Delete { file, which } => {
            let state = load(&which)?;
            for object in datastore::read_manifests(&file).map_err(|e| e.to_string())? {
                for slice in services::derived(&state, &object).map_err(|e| e.to_string())? {
                    datastore::remove(&state.datastore(), &slice).map_err(|e| e.to_string())?;
                }
                let gone = datastore::remove(&state.datastore(), &object).map_err(|e| e.to_string())?;
                println!(
                    "{} {}",
                    if gone { "deleted" } else { "not found" },
                    datastore::object_path(&state.datastore(), &object).display()
                );
            }
        }
        Cmd::Probe { port, udp, ipv4, ipv6, which } => {
            let state = load(&which)?;
            let probe = match port {
                Some(p) if udp => Probe::Udp(p),
                Some(p) => Probe::Tcp(p),
                None => Probe::Icmp,
            };
            let only = match (ipv4, ipv6) {
                (true, _) => Some(IpFamily::IPv4),
                (_, true) => Some(IpFamily::IPv6),
                _ => None,
            };
            if let Some(family) = only.filter(|family| !state.families().contains(family)) {
                return Err(format!(
                    "-{}: this lab has no {family} underlay (its families: {:?})",
                    if family == IpFamily::IPv4 { 4 } else { 6 },
                    state.families()
                ));
            }
            print!("{}", probe::render_families(&state, &probe::matrices(&state, probe, only)));
        }
        Cmd::Status { which } => print!("{}", report::status(&load(&which)?)),
        Cmd::Down { which } => {
            let report = lab::down(&which.prefix, &which.dir()).map_err(|e| e.to_string())?;
            println!(
                "lab {}: stopped {} processes, deleted {} namespaces",
                which.prefix,
                report.processes,
                report.namespaces.len()
            );
        }
        Cmd::Serve { name, ports } => serve::serve(&name, &ports).map_err(|e| e.to_string())?,
        Cmd::Connect { address, udp, timeout_ms } => {
            let reply = serve::connect(address, udp, Duration::from_millis(timeout_ms)).map_err(|e| e.to_string())?;
            println!("{reply}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gingham-lab: {message}");
            ExitCode::FAILURE
        }
    }
}
