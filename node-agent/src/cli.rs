//! `gingham-node-agent`'s command line and its wiring: parse, build the context, run the loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use prometheus_client::registry::Registry;

use crate::agent::{Agent, AgentOptions, Services};
use crate::api::{self, ApiContext};
use crate::bird::{BirdPaths, BirdSupervisor};
use crate::dataplane::KernelDataplane;
use crate::datastore::{Snapshot, StatusSink, file, kubernetes};
use crate::ipam::IpamStore;
use crate::logging::LogControl;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::span_file;
use crate::stream_inputs::{self, StreamInputError};
use gingham_stream::{ClientTls, StreamServer};

/// Where the agent reads its NodeNetwork and IPAMBlocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatastoreKind {
    /// A directory (docs/file-datastore.md).
    File,
    /// The Kubernetes API.
    Kubernetes,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// gingham's node agent: programs this node's network from its NodeNetwork, runs BIRD, and serves
/// the CNI plugin.
#[derive(Clone, Debug, Parser)]
#[command(name = "gingham-node-agent", version)]
pub struct Cli {
    /// This node's name (the NodeNetwork's name).
    #[arg(long, env = "NODE_NAME")]
    pub node: String,
    /// Where the NodeNetwork and IPAMBlocks come from.
    #[arg(long, value_enum, default_value = "kubernetes")]
    pub datastore: DatastoreKind,
    /// The file datastore's directory (with --datastore file).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where IPAM allocations persist: the agent's own directory, made root's alone (0700, files
    /// 0600).
    #[arg(long, default_value = "/var/lib/gingham")]
    pub state_dir: PathBuf,
    /// The CNI plugin's socket (mode 0600).
    #[arg(long, default_value = "/run/gingham/cni.sock")]
    pub cni_socket: PathBuf,
    /// BIRD's config and control socket directory: the agent's own, made root's alone (0700; the
    /// config, which holds BGP passwords, 0600).
    #[arg(long, default_value = "/var/run/gingham/bird")]
    pub bird_dir: PathBuf,
    /// Do not run BIRD (no BGP on this node).
    #[arg(long)]
    pub no_bird: bool,
    /// Address of /metrics.
    #[arg(long, default_value = "0.0.0.0:9091")]
    pub metrics_addr: SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9099")]
    pub health_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Follow this node's span (its endpoints' policies, the IP sets they use, its BGP sessions)
    /// from the operator's stream (docs/stream.md): `https://HOST:PORT` (with --stream-ca-file),
    /// `unix:/path`, or `http://HOST:PORT` for tests; repeat for each operator replica. Without it
    /// or --span-file, policy and BGP sessions are not programmed (routes are).
    #[arg(long = "stream-server")]
    pub stream_servers: Vec<StreamServer>,
    /// The file holding the token that authenticates this node to the stream, read again at every
    /// connection (a projected ServiceAccount token, which the kubelet rotates).
    #[arg(long)]
    pub stream_token_file: Option<PathBuf>,
    /// Read this node's span from a file instead of the stream: one NodeSpan document, YAML or
    /// JSON, as `gingham-operator render` prints it; read again whenever it changes.
    #[arg(long, conflicts_with = "stream_servers")]
    pub span_file: Option<PathBuf>,
    /// The CA (PEM) that signed the operator's stream certificate, for `https://` servers; read again
    /// at every connection.
    #[arg(long)]
    pub stream_ca_file: Option<PathBuf>,
    /// The name the stream certificate must carry, when the server is dialled by IP address (the
    /// Service's DNS name, e.g. gingham-stream.gingham-system.svc).
    #[arg(long, requires = "stream_ca_file")]
    pub stream_tls_server_name: Option<String>,
}

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--datastore file` without `--dir`.
    #[error("--datastore file needs --dir <DIR> (the datastore directory)")]
    MissingDir,
    /// The IPAM state is unusable.
    #[error(transparent)]
    Ipam(#[from] crate::ipam::IpamError),
    /// The CNI socket could not be bound.
    #[error(transparent)]
    Socket(#[from] api::ServerError),
    /// No Kubernetes client.
    #[error("cannot create a Kubernetes client: {0}; run in a pod with a service account or set KUBECONFIG")]
    Kube(#[source] kube::Error),
    /// No netlink connection.
    #[error("cannot open netlink: {0}; the agent needs CAP_NET_ADMIN in the host network namespace")]
    Netlink(#[source] crate::dataplane::netlink::NetlinkError),
    /// The stream could not be set up.
    #[error(transparent)]
    Stream(#[from] StreamInputError),
}

/// Starts every part and runs until SIGTERM or SIGINT.
pub async fn run(cli: Cli, logs: LogControl) -> Result<(), RunError> {
    let shared = Arc::new(Shared::default());
    let ipam = IpamStore::open(&cli.state_dir)?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let listener = api::bind(&cli.cni_socket)?;
    tokio::spawn(api::serve(listener, Arc::new(ApiContext { ipam: ipam.clone(), shared: Arc::clone(&shared) })));
    let registry = Arc::new(registry);
    let (metrics_addr, health_addr) = (cli.metrics_addr, cli.health_addr);
    let health_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        if let Err(error) = crate::http::serve_metrics(metrics_addr, registry).await {
            tracing::error!(%error, "metrics endpoint down");
        }
    });
    tokio::spawn(async move {
        if let Err(error) = crate::http::serve_health(health_addr, health_shared).await {
            tracing::error!(%error, "health endpoint down");
        }
    });
    let tls = cli
        .stream_ca_file
        .clone()
        .map(|ca_file| ClientTls { ca_file, server_name: cli.stream_tls_server_name.clone() });
    let stream = stream_inputs::setup(&cli.stream_servers, cli.stream_token_file.as_deref(), tls.as_ref())?;
    if stream.is_none() && cli.span_file.is_none() {
        tracing::warn!(
            "no --stream-server or --span-file: this node's span never arrives, so policy and BGP sessions are not programmed (routes are)"
        );
    }
    let with_span = |inputs| match (&stream, &cli.span_file) {
        (Some(setup), _) => stream_inputs::follow(inputs, setup.clone(), &cli.node),
        (None, Some(path)) => span_file::follow(inputs, path),
        (None, None) => inputs,
    };
    let parts = Parts { cli: cli.clone(), services: Services { shared, ipam, metrics }, logs };
    let outcome = match cli.datastore {
        DatastoreKind::File => {
            let dir = cli.dir.clone().ok_or(RunError::MissingDir)?;
            let inputs = with_span(file::FileDatastore::new(&dir, &cli.node).spawn());
            parts.run(inputs, file::FileStatus::new(&dir, &cli.node)).await
        }
        DatastoreKind::Kubernetes => {
            let client = kube::Client::try_default().await.map_err(RunError::Kube)?;
            let inputs = with_span(kubernetes::spawn(client.clone(), &cli.node));
            parts.run(inputs, kubernetes::KubeStatus::new(client, &cli.node)).await
        }
    };
    let _ = std::fs::remove_file(&cli.cni_socket);
    outcome
}

struct Parts {
    cli: Cli,
    services: Services,
    logs: LogControl,
}

impl Parts {
    async fn run<S: StatusSink>(self, inputs: tokio::sync::watch::Receiver<Snapshot>, sink: S) -> Result<(), RunError> {
        let dataplane = KernelDataplane::connect().map_err(RunError::Netlink)?;
        let bird = (!self.cli.no_bird).then(|| BirdSupervisor::new(BirdPaths::debian(&self.cli.bird_dir)));
        let options = AgentOptions { node: self.cli.node.clone(), reap_leaked: true, logs: self.logs };
        let agent = Agent::new(options, dataplane, sink, inputs, self.services, bird);
        agent.run(shutdown()).await;
        Ok(())
    }
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the agent");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_span_comes_from_the_stream_or_a_file_not_both() {
        let args = ["gingham-node-agent", "--node", "n", "--span-file", "/etc/gingham/span.yaml"];
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string());
        assert_eq!(cli.map(|c| c.span_file), Ok(Some(PathBuf::from("/etc/gingham/span.yaml"))));
        let both = Cli::try_parse_from(args.into_iter().chain(["--stream-server", "unix:/run/stream.sock"]));
        let error = both.map(drop).unwrap_err().to_string();
        assert!(error.contains("--span-file") && error.contains("--stream-server"), "{error}");
        assert!(error.contains("cannot be used with"), "{error}");
    }
}
