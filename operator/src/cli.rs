//! Command-line interface: `validate`, `render` (aliases of `gingham`'s), `run` and `webhook`,
//! parsed with clap derive.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::OperatorSettings;

/// gingham's operator: the cluster-wide brain of gingham networking.
#[derive(Debug, Parser)]
#[command(name = "gingham-operator", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "GINGHAM_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate manifests the way the cluster would: schema, defaults, CEL, Rust validators, pool
    /// overlap (an alias of `gingham validate`).
    Validate(ValidateArgs),
    /// Print what the operator would derive from a file datastore directory, as YAML, and exit
    /// (an alias of `gingham render`).
    Render(RenderArgs),
    /// Run the operator until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
}

/// Arguments of `validate` (here and in `gingham`).
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories (recursing into *.yaml and *.yml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Arguments of `render` (here and in `gingham`).
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The file datastore directory.
    pub dir: PathBuf,
    /// Only print the objects of this node (its NodeNetwork, span and IPAMBlocks).
    #[arg(long)]
    pub node: Option<String>,
    /// Print only the node's span, as the bare document `gingham-node-agent --span-file` reads.
    #[arg(long, requires = "node")]
    pub span: bool,
    /// Operator settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// Which datastore `run` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatastoreKind {
    /// The Kubernetes API server.
    Kubernetes,
    /// A directory of YAML files (see docs/file-datastore.md).
    File,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where objects are read from and written to.
    #[arg(long, value_enum, default_value_t = DatastoreKind::Kubernetes)]
    pub datastore: DatastoreKind,
    /// The directory of the file datastore (required with `--datastore file`).
    #[arg(long, required_if_eq("datastore", "file"))]
    pub dir: Option<PathBuf>,
    /// Serve `/metrics` here.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Serve `/healthz` and `/readyz` here.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub health_addr: SocketAddr,
    /// Serve the validating admission webhook (HTTPS, path `/validate`) here; Kubernetes datastore only.
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,
    /// Do not serve the admission webhook.
    #[arg(long)]
    pub no_webhook: bool,
    /// The Service that fronts the webhook, for the certificate's DNS names.
    #[arg(long, default_value = "gingham-operator-webhook")]
    pub webhook_service: String,
    /// This replica's identity for leader election (defaults to the pod name from $POD_NAME or the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// The agents' stream.
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Operator settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The agents' stream (docs/stream.md): where it is served, who authenticates the agents, and with
/// which certificate.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Serve the agents' stream (gRPC) here: `HOST:PORT` (TLS) or `unix:/path` (plaintext, the lab);
    /// off when not given.
    #[arg(long)]
    pub stream_addr: Option<crate::stream::Listen>,
    /// Authenticate agents with fixed tokens, a YAML map from each agent's token to its node's name,
    /// instead of TokenReview of their ServiceAccount tokens (needed on the file datastore).
    #[arg(long, requires = "stream_addr")]
    pub stream_tokens: Option<PathBuf>,
    /// The audience the agents' projected ServiceAccount tokens are made for (TokenReview).
    #[arg(long, default_value = "gingham-stream")]
    pub stream_audience: String,
    /// The Service in front of the stream, in the operator's namespace: the names of the generated
    /// certificate, and what the agent DaemonSet dials.
    #[arg(long, default_value = "gingham-stream")]
    pub stream_service: String,
    /// Serve TLS with this certificate chain (PEM) instead of a generated one; the agents need its CA
    /// in the ConfigMap gingham-stream-ca (key ca.crt).
    #[arg(long, requires_all = ["stream_addr", "stream_tls_key"])]
    pub stream_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --stream-tls-cert.
    #[arg(long, requires = "stream_tls_cert")]
    pub stream_tls_key: Option<PathBuf>,
    /// Serve `HOST:PORT` in plaintext. For tests on the loopback only: the stream carries BGP
    /// passwords and the agents' tokens.
    #[arg(long, requires = "stream_addr", conflicts_with = "stream_tls_cert")]
    pub stream_plaintext: bool,
    /// Send each agent a message at least this often, in seconds (an empty one when nothing
    /// changed); an agent that hears nothing for three of them reconnects.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_heartbeat: u64,
}

/// Settings shared by `render` and `run`.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// The namespace of the operator, its Lease, its Secrets and the agent DaemonSet.
    #[arg(long, env = "POD_NAMESPACE", default_value = "gingham-system")]
    pub namespace: String,
    /// The node agent's container image.
    #[arg(long, default_value = "ghcr.io/gingham/node-agent:latest")]
    pub agent_image: String,
    /// At most this many blocks per node.
    #[arg(long, default_value_t = 20)]
    pub max_blocks_per_node: usize,
}

impl SettingsArgs {
    /// The core's settings.
    pub fn to_settings(&self) -> OperatorSettings {
        OperatorSettings {
            namespace: self.namespace.clone(),
            agent_image: self.agent_image.clone(),
            max_blocks_per_node: self.max_blocks_per_node,
            agent_stream: None,
        }
    }
}
