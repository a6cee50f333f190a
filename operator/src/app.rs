//! What each subcommand does, given the parsed command line: the body behind a thin `main`.

use std::process::ExitCode;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::cli::{Cli, Command, DatastoreKind, LogFormat, RunArgs};
use crate::controller;
use crate::datastore::file::FileDatastore;
use crate::datastore::kubernetes::KubeDatastore;
use crate::health::{self, Readiness};
use crate::leader;
use crate::metrics::{Metrics, StreamMetrics};
use crate::render;
use crate::stream::options::{self, StreamOptions};
use crate::stream::{self, StreamFeed};
use crate::validate::validate_paths;
use crate::webhook;

/// Sets up logging to stderr, as text or JSON; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the command and says how the process should exit.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => match validate_paths(&args.paths) {
            Ok(report) => {
                print!("{report}");
                if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
        Command::Render(args) => render::run(&args),
        Command::Run(args) => match run_operator(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "the operator stopped");
                ExitCode::FAILURE
            }
        },
    }
}

/// The operator stopped for a reason other than shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No Kubernetes client could be configured.
    #[error("cannot configure a Kubernetes client: {0} (run in a pod, or set KUBECONFIG)")]
    Client(#[source] kube::Error),
    /// Leader election could not start.
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    /// The webhook could not start.
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
    /// The agents' stream could not start.
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
}

impl RunError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::Leader(e) => e.label(),
            Self::Webhook(e) => e.label(),
            Self::Stream(e) => e.label(),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// A future completing when `receiver` sees shutdown.
async fn on_shutdown(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

async fn run_operator(args: RunArgs) -> Result<(), RunError> {
    // Flags that do not fit together stop the operator before anything starts.
    let stream = options::plan(&args.stream, args.datastore).map_err(|error| RunError::Stream(error.into()))?;
    let mut settings = args.settings.to_settings();
    settings.agent_stream = stream.as_ref().and_then(StreamOptions::agent_stream);
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let on_signal = Arc::clone(&stop);
    tokio::spawn(async move {
        termination().await;
        let _ = on_signal.send(true);
    });
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    // TokenReview and the generated certificate need the client before the stream can start.
    let client = match args.datastore {
        DatastoreKind::Kubernetes => Some(kube::Client::try_default().await.map_err(RunError::Client)?),
        DatastoreKind::File => None,
    };
    let mut feed = start_stream(stream.as_ref(), client.as_ref(), &settings.namespace, &stopped).await?;
    if let Some(feed) = &feed {
        StreamMetrics::register(&mut registry, feed.stats());
    }
    let registry = Arc::new(registry);
    let readiness = Readiness::default();
    let router = health::router(Arc::clone(&registry), readiness.clone());
    let mut addrs = vec![args.health_addr];
    if args.metrics_addr != args.health_addr {
        addrs.push(args.metrics_addr);
    }
    let servers: Vec<_> = addrs
        .into_iter()
        .map(|addr| {
            // A busy port is reported at once; the operator keeps working without it.
            let server = health::serve(addr, router.clone(), on_shutdown(stopped.clone()));
            tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(%error, "HTTP server failed");
                }
            })
        })
        .collect();
    let result = match (args.datastore, &args.dir, client) {
        (DatastoreKind::File, Some(dir), _) => {
            tracing::info!(dir = %dir.display(), "running on the file datastore");
            match leader::file::contend(dir) {
                Ok(leading) => {
                    let mut datastore = FileDatastore::new(dir);
                    let shutdown = on_shutdown(stopped.clone());
                    controller::run(&mut datastore, &settings, &metrics, &readiness, feed.as_mut(), leading, shutdown)
                        .await;
                    Ok(())
                }
                Err(error) => Err(error.into()),
            }
        }
        (_, _, Some(client)) => {
            run_kubernetes(&args, client, &settings, &metrics, &readiness, feed.as_mut(), stopped.clone()).await
        }
        // `--datastore file` requires `--dir` (clap), and the Kubernetes datastore has its client.
        (_, _, None) => Ok(()),
    };
    // A failure to start stops the HTTP servers too, so that the process exits.
    let _ = stop.send(true);
    for server in servers {
        let _ = server.await;
    }
    result
}

/// Starts the agents' stream when `--stream-addr` is given.
async fn start_stream(
    options: Option<&StreamOptions>,
    client: Option<&kube::Client>,
    namespace: &str,
    stopped: &watch::Receiver<bool>,
) -> Result<Option<StreamFeed>, RunError> {
    let Some(options) = options else { return Ok(None) };
    Ok(Some(stream::start(options, client, namespace, on_shutdown(stopped.clone())).await?))
}

/// Runs on the Kubernetes datastore: the webhook, then the watches and rounds, writing while this
/// replica holds the Lease (every replica computes and serves the stream).
async fn run_kubernetes(
    args: &RunArgs,
    client: kube::Client,
    settings: &crate::core::OperatorSettings,
    metrics: &Metrics,
    readiness: &Readiness,
    stream: Option<&mut StreamFeed>,
    stopped: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let identity = args.identity.clone().unwrap_or_else(leader::default_identity);
    if !args.no_webhook {
        let config = webhook::WebhookConfig {
            addr: args.webhook_addr,
            namespace: settings.namespace.clone(),
            service: args.webhook_service.clone(),
        };
        let tls = webhook::tls::ensure_certificate(&client, &config).await?;
        let server = webhook::serve(client.clone(), config, tls, on_shutdown(stopped.clone()));
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the webhook stopped");
            }
        });
    }
    // Every replica is ready at once: it serves the webhook, and a rolling update needs the new
    // (follower) pod ready before the old leader goes.
    readiness.set(true);
    let leadership = leader::Leadership::start(client.clone(), &settings.namespace, &identity).await?;
    let mut datastore = KubeDatastore::start(client, &settings.namespace, &identity);
    let shutdown = on_shutdown(stopped);
    controller::run(&mut datastore, settings, metrics, readiness, stream, leadership.leading(), shutdown).await;
    leadership.release().await;
    Ok(())
}
