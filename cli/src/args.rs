//! The command line, parsed with clap derive: global datastore and output options, then one
//! subcommand. clap reports usage errors itself, with exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use gingham_operator::cli::{RenderArgs, SettingsArgs, ValidateArgs};

use crate::output::Format;
use crate::source::SourceSpec;

/// The environment variable that selects the datastore (as `--datastore` does).
pub const DATASTORE_ENV: &str = "GINGHAM_DATASTORE";

/// gingham's command line: node status, IPAM and offline checks (calicoctl's place).
#[derive(Debug, Parser)]
#[command(name = "gingham", version, about)]
pub struct Cli {
    /// Where to read the cluster from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format: human (default), json or yaml.
    #[arg(short, long, global = true, default_value = "human")]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The datastore options (kubectl's flags for Kubernetes).
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// `kubernetes` (default) or `file:DIR`, the file datastore the lab uses.
    #[arg(long, global = true, env = DATASTORE_ENV, default_value = "kubernetes")]
    pub datastore: SourceSpec,
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace of namespaced objects (kubectl's `-n`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests the way the cluster would: schema, defaults, CEL, Rust validators, pool overlap.
    Validate(ValidateArgs),
    /// Print what the operator would derive from a file datastore directory, as YAML.
    Render(RenderArgs),
    /// Turn Calico manifests (and Kubernetes NetworkPolicies) into gingham ones, validated.
    Convert {
        /// A file, a directory (recursing into *.yaml and *.yml), or `-` for stdin.
        #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
        file: PathBuf,
    },
    /// Write a tarball for a bug report, collected on the node (secrets redacted).
    Diags(crate::diags::DiagsArgs),
    /// Print the client's version and the versions seen in the cluster.
    Version,
    /// Nodes' network state.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Address management.
    #[command(subcommand)]
    Ipam(IpamCommand),
    /// Policy as the agents enforce it.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `gingham policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Why a packet is allowed or denied: every policy and rule on both sides, in evaluation order.
    Explain {
        /// The source: NAMESPACE/POD or an address.
        #[arg(long)]
        from: String,
        /// The destination: NAMESPACE/POD or an address.
        #[arg(long)]
        to: String,
        /// The destination port, e.g. 80/TCP or 53/UDP (an ICMP echo without it).
        #[arg(long)]
        port: Option<crate::policy::explain::PortArg>,
    },
    /// Which policy and rule logged a packet: give the `gingham <hash> i<rule>:` prefix or the whole
    /// kernel log line.
    Log {
        /// The prefix, or a kernel log line holding it.
        text: String,
    },
    /// Which pod pairs and ports a change would allow or deny, before it is applied (file datastore).
    Preview {
        /// The change: manifests to apply on top of the current state.
        #[arg(short = 'f', long = "filename", value_name = "CHANGE.yaml")]
        file: PathBuf,
        /// Ports to evaluate besides ICMP, e.g. 80/TCP (default: every port a pod declares).
        #[arg(long)]
        port: Vec<crate::policy::explain::PortArg>,
        /// Operator settings.
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

/// `gingham node ...`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every node's readiness, or one node in detail (BGP sessions, endpoints, last error).
    Status {
        /// The node to show in detail (with --local: default $NODE_NAME, else the host name).
        node: Option<String>,
        /// Run on the node: BGP sessions live from the local BIRD rather than from the status.
        #[arg(long)]
        local: bool,
        /// With --local: the agent's BIRD directory (holding bird.ctl).
        #[arg(long, default_value = "/var/run/gingham/bird", requires = "local")]
        bird_dir: PathBuf,
    },
}

/// `gingham ipam ...`.
#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Per-pool utilisation; with options, blocks or one address.
    Show(IpamShowArgs),
    /// Cross-check every address held against every pod, node and block (exit 1 on findings).
    Check {
        /// On a node: release this node's leaked addresses older than the grace period.
        #[arg(long)]
        fix: bool,
        /// With --fix: leave addresses allocated less than this many seconds ago.
        #[arg(long, default_value_t = 600, requires = "fix")]
        grace_seconds: u64,
        /// With --fix: the node's agent.
        #[command(flatten)]
        agent: crate::ipam_release::AgentPaths,
    },
    /// On a node: release one address through its agent; refused while its pod runs.
    Release {
        /// The address.
        #[arg(long, value_name = "ADDR")]
        ip: std::net::IpAddr,
        /// Release it even though its pod runs.
        #[arg(long)]
        force: bool,
        /// The node's agent.
        #[command(flatten)]
        agent: crate::ipam_release::AgentPaths,
    },
}

/// Arguments of `ipam show`.
#[derive(Debug, Args)]
pub struct IpamShowArgs {
    /// List every block with its node and use.
    #[arg(long)]
    pub show_blocks: bool,
    /// Which pod, node and block hold this address.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<std::net::IpAddr>,
    /// List addresses in use outside their node's own blocks (borrowed).
    #[arg(long)]
    pub show_borrowed: bool,
}
