//! The webhook's TLS: a self-signed CA and a serving certificate kept in the Secret
//! `gingham-webhook-tls` (`crate::certs`), and the CA patched into the
//! ValidatingWebhookConfiguration's caBundle.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use super::{WebhookConfig, WebhookError};
use crate::certs::{self, Authority, CertError};
pub use crate::certs::{TlsMaterial, dns_names};

/// The Secret holding the CA and the serving certificate.
pub const SECRET_NAME: &str = "gingham-webhook-tls";
/// The webhook configuration whose caBundle the operator keeps.
pub const WEBHOOK_CONFIGURATION: &str = "gingham-validating-webhook";

impl From<CertError> for WebhookError {
    fn from(error: CertError) -> Self {
        match error {
            CertError::Kube { action, source, .. } => WebhookError::Kube { action, source },
            CertError::Generate { source, .. } => WebhookError::Certificate(source),
            CertError::Incomplete { .. } => WebhookError::IncompleteSecret,
        }
    }
}

/// Reads the certificate from the Secret, creating both when missing (a replica that loses the
/// race to create it reads the winner's), then patches the caBundle into the webhook configuration.
pub async fn ensure_certificate(client: &Client, config: &WebhookConfig) -> Result<TlsMaterial, WebhookError> {
    let authority = Authority {
        namespace: config.namespace.clone(),
        secret: SECRET_NAME.into(),
        name: "gingham-webhook".into(),
        names: dns_names(&config.service, &config.namespace),
    };
    let tls = certs::ensure(client, &authority).await?;
    patch_ca_bundle(client, &tls.ca_cert).await?;
    Ok(tls)
}

/// Sets every webhook's caBundle in the configuration; a missing configuration is only logged.
async fn patch_ca_bundle(client: &Client, ca_cert: &str) -> Result<(), WebhookError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let kube_error = |source| WebhookError::Kube { action: "update the webhook configuration", source };
    let Some(mut configuration) = api.get_opt(WEBHOOK_CONFIGURATION).await.map_err(kube_error)? else {
        tracing::warn!(name = WEBHOOK_CONFIGURATION, "no webhook configuration to patch the caBundle into");
        return Ok(());
    };
    let bundle = ByteString(ca_cert.as_bytes().to_vec());
    let webhooks = configuration.webhooks.take().unwrap_or_default();
    if webhooks.iter().all(|w| w.client_config.ca_bundle.as_ref() == Some(&bundle)) {
        return Ok(());
    }
    let names: Vec<String> = webhooks.iter().map(|w| w.name.clone()).collect();
    api.patch(WEBHOOK_CONFIGURATION, &PatchParams::default(), &Patch::Strategic(ca_bundle_patch(&names, &bundle)))
        .await
        .map_err(kube_error)?;
    tracing::info!(name = WEBHOOK_CONFIGURATION, "patched the caBundle");
    Ok(())
}

/// A strategic merge patch setting every webhook's caBundle (webhooks merge by name), so that only
/// `patch` is needed in RBAC and nothing else in the configuration is touched.
fn ca_bundle_patch(names: &[String], bundle: &ByteString) -> serde_json::Value {
    let webhooks: Vec<serde_json::Value> =
        names.iter().map(|name| serde_json::json!({"name": name, "clientConfig": {"caBundle": bundle}})).collect();
    serde_json::json!({ "webhooks": webhooks })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_bundle_patch_merges_by_webhook_name() {
        let patch = ca_bundle_patch(&["validate.gingham.dev".into()], &ByteString(b"PEM".to_vec()));
        assert_eq!(
            patch,
            serde_json::json!({"webhooks": [{"name": "validate.gingham.dev", "clientConfig": {"caBundle": "UEVN"}}]})
        );
    }
}
