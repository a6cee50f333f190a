//! Self-signed certificate authorities kept in Secrets, for what the operator serves over TLS (the
//! admission webhook, the agents' stream): a CA and a serving certificate made with rcgen, kept in
//! a Secret of the operator's namespace and reused when present, so that every replica serves the
//! same certificate.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::datastore::objects::managed_labels;

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

/// A new CA (common name `<name>-ca`) and a serving certificate (common name `name`) for `names`,
/// signed by it.
pub fn generate(name: &str, names: Vec<String>) -> Result<TlsMaterial, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name}-ca"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(TlsMaterial { ca_cert: ca_cert.pem(), cert: cert.pem(), key: key.serialize_pem() })
}

/// Which Secret holds an authority, and what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// The Secret's namespace (the operator's).
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The serving certificate's common name (the CA's is `<name>-ca`).
    pub name: String,
    /// The DNS names the serving certificate is for.
    pub names: Vec<String>,
}

/// The certificate could not be read, made or kept.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A request to the API server failed.
    #[error("cannot {action} {secret}: {source} (check the operator's RBAC)")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The Secret.
        secret: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The certificate could not be generated.
    #[error("cannot generate the certificate for {secret}: {source}")]
    Generate {
        /// The Secret.
        secret: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// The Secret exists but lacks ca.crt, tls.crt or tls.key.
    #[error("the Secret {secret} lacks ca.crt, tls.crt or tls.key: delete it and the operator recreates it")]
    Incomplete {
        /// The Secret.
        secret: String,
    },
}

fn from_secret(secret: &Secret) -> Option<TlsMaterial> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok());
    Some(TlsMaterial { ca_cert: text("ca.crt")?, cert: text("tls.crt")?, key: text("tls.key")? })
}

fn to_secret(authority: &Authority, tls: &TlsMaterial) -> Secret {
    let bytes = |text: &str| ByteString(text.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(authority.secret.clone()),
            namespace: Some(authority.namespace.clone()),
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

/// Reads the authority's Secret, creating it when missing or incomplete (a replica that loses the
/// race to create it reads the winner's).
pub async fn ensure(client: &Client, authority: &Authority) -> Result<TlsMaterial, CertError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &authority.namespace);
    let secret = || authority.secret.clone();
    let kube_error = |action: &'static str| move |source| CertError::Kube { action, secret: secret(), source };
    let existing = secrets.get_opt(&authority.secret).await.map_err(kube_error("read the TLS Secret"))?;
    if let Some(tls) = existing.as_ref().and_then(from_secret) {
        return Ok(tls);
    }
    let tls = generate(&authority.name, authority.names.clone())
        .map_err(|source| CertError::Generate { secret: secret(), source })?;
    let created = match existing {
        Some(_) => secrets.replace(&authority.secret, &PostParams::default(), &to_secret(authority, &tls)).await,
        None => secrets.create(&PostParams::default(), &to_secret(authority, &tls)).await,
    };
    match created {
        Ok(_) => Ok(tls),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let winner = secrets.get(&authority.secret).await.map_err(kube_error("read the TLS Secret"))?;
            from_secret(&winner).ok_or(CertError::Incomplete { secret: secret() })
        }
        Err(source) => Err(CertError::Kube { action: "create the TLS Secret", secret: secret(), source }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_round_trips_through_the_secret() {
        let authority = Authority {
            namespace: "gingham-system".into(),
            secret: "gingham-stream-tls".into(),
            name: "gingham-stream".into(),
            names: dns_names("gingham-stream", "gingham-system"),
        };
        let tls = generate(&authority.name, authority.names.clone()).unwrap();
        assert!(tls.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.key.contains("PRIVATE KEY"));
        let secret = to_secret(&authority, &tls);
        assert_eq!(secret.metadata.name.as_deref(), Some("gingham-stream-tls"));
        assert_eq!(from_secret(&secret), Some(tls));
    }
}
