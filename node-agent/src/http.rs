//! `/metrics` on one address, `/healthz` and `/readyz` on another.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::agent::STALLED_AFTER;
use crate::shared::Shared;

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

/// Serves `/healthz` (the main loop finished a pass within [`STALLED_AFTER`]) and `/readyz` (a
/// spec is in force and synced).
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

async fn healthz(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    let age = shared.heartbeat_age();
    if age <= STALLED_AFTER {
        return (StatusCode::OK, "ok\n".to_string());
    }
    let reason = format!(
        "the main loop has not finished a pass for {}s (the limit is {}s): routes, policy and status are not being updated; see the agent's log for what it waits on\n",
        age.as_secs(),
        STALLED_AFTER.as_secs()
    );
    (StatusCode::SERVICE_UNAVAILABLE, reason)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    match shared.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A loop that stopped beating (blocked on a lock, a hung sync) makes `/healthz` fail with why.
    #[tokio::test]
    async fn healthz_fails_with_the_reason_when_the_loop_stalls() {
        let cases = [
            (Duration::ZERO, StatusCode::OK, "ok"),
            (STALLED_AFTER - Duration::from_secs(1), StatusCode::OK, "ok"),
            (STALLED_AFTER + Duration::from_secs(5), StatusCode::SERVICE_UNAVAILABLE, "has not finished a pass for"),
        ];
        for (age, code, body) in cases {
            let shared = Arc::new(Shared::default());
            shared.beat();
            shared.set_heartbeat_age(age);
            let (answered, text) = healthz(State(shared)).await;
            assert_eq!(answered, code, "heartbeat {age:?} old: {text}");
            assert!(text.contains(body), "heartbeat {age:?} old: {text}");
        }
    }
}
