//! The validating admission webhook: runs the foundation's validators (schema with defaults and CEL,
//! the Rust `validate()` per kind) and, for IPPools, overlap with the existing pools; rejects with
//! field-named messages. Served over HTTPS at `POST /validate`.
//!
//! # failurePolicy: `Fail`, for the user-facing gingham kinds only
//!
//! The configuration (written in `config/`) should match IPPool, BGPConfiguration, BGPPeer,
//! FelixConfiguration, NetworkPolicy, GlobalNetworkPolicy (CREATE and UPDATE) and Tier (also
//! DELETE: the built-in tiers and a tier that still holds policies stay) with
//! `failurePolicy: Fail`, and exclude objects labelled `app.kubernetes.io/managed-by:
//! gingham-operator` with an `objectSelector`. The reasoning:
//! - What the webhook checks cannot be checked anywhere else before the object is stored: an
//!   overlapping pool or a selector that does not parse would otherwise be accepted by the API
//!   server. With `Ignore`, an outage would silently let such objects in, and an overlapping pool
//!   is exactly the mistake that hands out one address twice.
//! - These kinds are written by administrators and GitOps, rarely, and a retry after the webhook is
//!   back is cheap; the cost of `Fail` is a delayed change, never broken traffic.
//! - Nothing the cluster needs to keep running goes through it: Pods, Nodes, NodeNetwork and
//!   IPAMBlock (written by the operator and the agents) are not matched, and the operator's own
//!   `knp.*` translations are excluded by the objectSelector, so the operator never waits for its
//!   own webhook and a cluster can start with the webhook down.

pub mod review;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use gingham_crds::api::tier::{builtin_order, policy_tier};
use gingham_crds::api::{GlobalNetworkPolicy, IPPool, NetworkPolicy, Tier};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Client, ResourceExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

/// The path the webhook serves.
pub const PATH: &str = "/validate";

/// Where and as what the webhook is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The HTTPS listen address.
    pub addr: SocketAddr,
    /// The operator's namespace (the Secret and the Service live there).
    pub namespace: String,
    /// The Service's name, for the certificate.
    pub service: String,
}

/// The webhook could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A request to the API server failed.
    #[error("cannot {action}: {source} (check the operator's RBAC)")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The certificate could not be generated.
    #[error("cannot generate the webhook certificate: {0}")]
    Certificate(#[source] rcgen::Error),
    /// The Secret exists but lacks ca.crt, tls.crt or tls.key.
    #[error(
        "the Secret {} lacks ca.crt, tls.crt or tls.key: delete it and the operator recreates it",
        tls::SECRET_NAME
    )]
    IncompleteSecret,
    /// The certificate or key could not be loaded into rustls.
    #[error("cannot load the webhook certificate: {0}")]
    Tls(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source} (choose another --webhook-addr)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl WebhookError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Certificate(_) => "certificate",
            Self::IncompleteSecret => "incomplete_secret",
            Self::Tls(_) => "tls",
            Self::Bind { .. } => "bind",
        }
    }
}

/// The admission router: `POST /validate`, pools listed through `client`.
pub fn router(client: Client) -> Router {
    Router::new().route(PATH, post(admit)).with_state(client)
}

async fn admit(
    State(client): State<Client>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(error) => return Json(AdmissionResponse::invalid(error.to_string()).into_review()),
    };
    let response = AdmissionResponse::from(&request);
    let kind = request.kind.kind.as_str();
    if request.operation == Operation::Delete && kind == "Tier" {
        // A built-in tier stays whatever it holds: no need to list the policies.
        let policies = if builtin_order(&request.name).is_some() {
            Ok(Vec::new())
        } else {
            policies_in_tier(&client, &request.name).await
        };
        let problems = match policies {
            Ok(policies) => review::tier_deletion(&request.name, &policies),
            Err(error) => vec![format!("cannot list policies to check the tier is empty: {error}")],
        };
        return Json(verdict(response, problems).into_review());
    }
    let object = match (&request.operation, &request.object) {
        (Operation::Create | Operation::Update, Some(object)) => object,
        _ => return Json(response.into_review()),
    };
    let value = match serde_json::to_value(object) {
        Ok(value) => value,
        Err(error) => return Json(response.deny(format!("cannot read the object: {error}")).into_review()),
    };
    let pools = if kind == "IPPool" {
        match Api::<IPPool>::all(client.clone()).list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                return Json(response.deny(format!("cannot list IPPools to check overlap: {error}")).into_review());
            }
        }
    } else {
        Vec::new()
    };
    let mut problems = review::review(&value, &pools);
    if problems.is_empty()
        && matches!(kind, "NetworkPolicy" | "GlobalNetworkPolicy")
        && let Some(tier) = review::custom_tier(&value)
    {
        match Api::<Tier>::all(client).get_opt(tier).await {
            Ok(found) => problems.extend(review::missing_tier(tier, found.is_some())),
            Err(error) => problems.push(format!("cannot read Tier {tier} to check it exists: {error}")),
        }
    }
    Json(verdict(response, problems).into_review())
}

fn verdict(response: AdmissionResponse, problems: Vec<String>) -> AdmissionResponse {
    if problems.is_empty() { response } else { response.deny(problems.join("; ")) }
}

/// The names of every NetworkPolicy (`namespace/name`) and GlobalNetworkPolicy in `tier`.
async fn policies_in_tier(client: &Client, tier: &str) -> Result<Vec<String>, kube::Error> {
    let in_tier = |spec_tier: Option<&str>| policy_tier(spec_tier) == tier;
    let namespaced = Api::<NetworkPolicy>::all(client.clone()).list(&ListParams::default()).await?;
    let global = Api::<GlobalNetworkPolicy>::all(client.clone()).list(&ListParams::default()).await?;
    let namespaced = namespaced
        .items
        .into_iter()
        .filter(|p| in_tier(p.spec.tier.as_deref()))
        .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()));
    let global = global.items.into_iter().filter(|p| in_tier(p.spec.tier.as_deref())).map(|p| p.name_any());
    Ok(namespaced.chain(global).collect())
}

fn server_config(material: &tls::TlsMaterial) -> Result<rustls::ServerConfig, WebhookError> {
    let tls_error = |e: &dyn std::fmt::Display| WebhookError::Tls(e.to_string());
    let certs = CertificateDer::pem_slice_iter(material.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(&e))?;
    let key = PrivateKeyDer::from_pem_slice(material.key.as_bytes()).map_err(|e| tls_error(&e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&e))
}

/// Serves the webhook over TLS until `shutdown` completes.
pub async fn serve(
    client: Client,
    config: WebhookConfig,
    material: tls::TlsMaterial,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&material)?));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| WebhookError::Bind { addr: config.addr, source })?;
    tracing::info!(addr = %config.addr, path = PATH, "serving the admission webhook");
    let app = router(client);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "webhook accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                app.clone().oneshot(request.map(axum::body::Body::new))
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(error) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(%peer, %error, "webhook connection failed");
            }
        });
    }
}

#[cfg(test)]
mod tests;
