//! The webhook's TLS: a self-signed CA and a serving certificate, made with rcgen and kept in the
//! Secret `gingham-webhook-tls` (reused when present, so every replica serves the same
//! certificate), and the CA patched into the ValidatingWebhookConfiguration's caBundle.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::{WebhookConfig, WebhookError};
use crate::datastore::objects::managed_labels;

/// The Secret holding the CA and the serving certificate.
pub const SECRET_NAME: &str = "gingham-webhook-tls";
/// The webhook configuration whose caBundle the operator keeps.
pub const WEBHOOK_CONFIGURATION: &str = "gingham-validating-webhook";

/// PEM-encoded certificate material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The CA certificate (the caBundle).
    pub ca_cert: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving certificate's private key.
    pub key: String,
}

/// The DNS names a Service `service` in `namespace` is reached by.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A new CA and a serving certificate for `names`, signed by it.
pub fn generate(names: Vec<String>) -> Result<TlsMaterial, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "gingham-webhook-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, "gingham-webhook");
    let cert = params.signed_by(&key, &issuer)?;
    Ok(TlsMaterial { ca_cert: ca_cert.pem(), cert: cert.pem(), key: key.serialize_pem() })
}

fn from_secret(secret: &Secret) -> Option<TlsMaterial> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok());
    Some(TlsMaterial { ca_cert: text("ca.crt")?, cert: text("tls.crt")?, key: text("tls.key")? })
}

fn to_secret(namespace: &str, tls: &TlsMaterial) -> Secret {
    let bytes = |text: &str| ByteString(text.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(managed_labels()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("ca.crt".to_string(), bytes(&tls.ca_cert)),
            ("tls.crt".to_string(), bytes(&tls.cert)),
            ("tls.key".to_string(), bytes(&tls.key)),
        ])),
        ..Secret::default()
    }
}

/// Reads the certificate from the Secret, creating both when missing (a replica that loses the
/// race to create it reads the winner's), then patches the caBundle into the webhook configuration.
pub async fn ensure_certificate(client: &Client, config: &WebhookConfig) -> Result<TlsMaterial, WebhookError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let kube_error = |action: &'static str| move |source| WebhookError::Kube { action, source };
    let existing = secrets.get_opt(SECRET_NAME).await.map_err(kube_error("read the TLS Secret"))?;
    let tls = match existing.as_ref().and_then(from_secret) {
        Some(tls) => tls,
        None => {
            let tls = generate(dns_names(&config.service, &config.namespace)).map_err(WebhookError::Certificate)?;
            let secret = to_secret(&config.namespace, &tls);
            let created = match existing {
                Some(_) => secrets.replace(SECRET_NAME, &PostParams::default(), &secret).await,
                None => secrets.create(&PostParams::default(), &secret).await,
            };
            match created {
                Ok(_) => tls,
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    let secret = secrets.get(SECRET_NAME).await.map_err(kube_error("read the TLS Secret"))?;
                    from_secret(&secret).ok_or(WebhookError::IncompleteSecret)?
                }
                Err(source) => return Err(WebhookError::Kube { action: "create the TLS Secret", source }),
            }
        }
    };
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
    fn generated_material_round_trips_through_the_secret() {
        let tls = generate(dns_names("gingham-webhook", "gingham-system")).unwrap();
        assert!(tls.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.key.contains("PRIVATE KEY"));
        assert_eq!(from_secret(&to_secret("gingham-system", &tls)), Some(tls));
    }

    #[test]
    fn the_ca_bundle_patch_merges_by_webhook_name() {
        let patch = ca_bundle_patch(&["validate.gingham.dev".into()], &ByteString(b"PEM".to_vec()));
        assert_eq!(
            patch,
            serde_json::json!({"webhooks": [{"name": "validate.gingham.dev", "clientConfig": {"caBundle": "UEVN"}}]})
        );
    }
}
