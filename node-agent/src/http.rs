//! `/metrics` on one address, `/healthz` and `/readyz` on another.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::shared::Shared;

/// The main loop counts as alive when it beat within this many seconds.
const ALIVE_SECONDS: u64 = 120;

/// A listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} for {what}: {source}; pick a free address with --{what}-addr")]
pub struct HttpError {
    /// The address.
    pub address: SocketAddr,
    /// `metrics` or `health`.
    pub what: &'static str,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Serves `/metrics` from `registry` on `address`.
pub async fn serve_metrics(address: SocketAddr, registry: Arc<Registry>) -> Result<(), HttpError> {
    let router = Router::new().route("/metrics", get(metrics)).with_state(registry);
    serve(address, "metrics", router).await
}

/// Serves `/healthz` (the main loop is alive) and `/readyz` (a spec is in force and synced).
pub async fn serve_health(address: SocketAddr, shared: Arc<Shared>) -> Result<(), HttpError> {
    let router = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(shared);
    serve(address, "health", router).await
}

async fn serve(address: SocketAddr, what: &'static str, router: Router) -> Result<(), HttpError> {
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|source| HttpError { address, what, source })?;
    axum::serve(listener, router).await.map_err(|source| HttpError { address, what, source })
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            text,
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], e.to_string()),
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.alive_within(ALIVE_SECONDS) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the main loop is stuck\n")
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    match (shared.blocks().is_some(), shared.programmed().synced) {
        (true, true) => (StatusCode::OK, "ready\n"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "no valid NodeNetwork yet\n"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "the dataplane has not synced yet\n"),
    }
}
