//! The stream's certificate: from files (`--stream-tls-cert`, `--stream-tls-key`), or generated the
//! way the webhook's is (`crate::certs`) and kept in the Secret `gingham-stream-tls`, with its CA
//! published for the agents in the ConfigMap `gingham-stream-ca` (which the agent DaemonSet mounts).

use std::collections::BTreeMap;
use std::path::Path;

use gingham_stream::ServerTls;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::StreamError;
use crate::certs::{self, Authority};
use crate::core::daemonset::{STREAM_CA_CONFIG_MAP, STREAM_CA_KEY};
use crate::datastore::objects::{MANAGER, managed_labels};

/// The Secret holding the generated CA and serving certificate.
pub const SECRET_NAME: &str = "gingham-stream-tls";

/// The certificate chain and key of these files, which must load.
pub fn read_files(cert: &Path, key: &Path) -> Result<ServerTls, StreamError> {
    let read = |flag, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| StreamError::ReadTls { flag, path: path.to_path_buf(), source })
    };
    let tls = ServerTls { cert: read("--stream-tls-cert", cert)?, key: read("--stream-tls-key", key)? };
    check(&tls)?;
    Ok(tls)
}

/// Refuses a chain without a certificate, or a key that does not parse.
fn check(tls: &ServerTls) -> Result<(), StreamError> {
    let bad = |what| move |error: &dyn std::fmt::Display| StreamError::BadTls { what, message: error.to_string() };
    let chain = CertificateDer::pem_slice_iter(tls.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad("certificate")(&error))?;
    if chain.is_empty() {
        return Err(bad("certificate")(&"no `-----BEGIN CERTIFICATE-----` block"));
    }
    PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).map_err(|error| bad("key")(&error))?;
    Ok(())
}

/// The generated certificate for the Service `service` (created on first start, shared by every
/// replica), with its CA published for the agents.
pub async fn generated(client: &Client, namespace: &str, service: &str) -> Result<ServerTls, StreamError> {
    let authority = Authority {
        namespace: namespace.to_string(),
        secret: SECRET_NAME.into(),
        name: "gingham-stream".into(),
        names: certs::dns_names(service, namespace),
    };
    let material = certs::ensure(client, &authority).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(MANAGER).force();
    api.patch(STREAM_CA_CONFIG_MAP, &params, &Patch::Apply(ca_config_map(namespace, &material.ca_cert)))
        .await
        .map_err(|source| StreamError::PublishCa { source })?;
    Ok(ServerTls { cert: material.cert, key: material.key })
}

/// The ConfigMap that hands the agents the CA.
pub fn ca_config_map(namespace: &str, ca_cert: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(STREAM_CA_CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            labels: Some(managed_labels()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(STREAM_CA_KEY.to_string(), ca_cert.to_string())])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn certificate_files_must_hold_a_certificate_and_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let material = certs::generate("gingham-stream", vec!["gingham-stream".into()]).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (cert, key) = (write("tls.crt", &material.cert), write("tls.key", &material.key));
        let garbage = write("garbage", "not PEM");
        assert_eq!(read_files(&cert, &key).unwrap().cert, material.cert);
        let cases = [
            (dir.path().join("missing.crt"), key.clone(), vec!["--stream-tls-cert", "missing.crt"]),
            (cert.clone(), garbage.clone(), vec!["key does not load", "--stream-tls-key"]),
            (garbage, key, vec!["certificate does not load", "BEGIN CERTIFICATE"]),
        ];
        for (cert, key, fragments) in cases {
            let error = read_files(&cert, &key).unwrap_err().to_string();
            for fragment in fragments {
                assert!(error.contains(fragment), "{fragment:?} in {error}");
            }
        }
    }

    #[test]
    fn the_ca_config_map_holds_the_ca_the_agents_mount() {
        let map = ca_config_map("gingham-system", "PEM");
        assert_eq!(map.metadata.name.as_deref(), Some("gingham-stream-ca"));
        assert_eq!(map.data.unwrap().get("ca.crt").map(String::as_str), Some("PEM"));
    }

    #[tokio::test]
    async fn a_first_start_keeps_the_certificate_in_a_secret_and_publishes_its_ca() {
        use http::{Method, Request, Response};
        use kube::client::Body;

        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = tokio::spawn(async move {
            // (method, path and query, status, answer); the request bodies are returned.
            let not_found = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"});
            let created = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET_NAME}});
            let expected = [
                (Method::GET, "/api/v1/namespaces/gingham-system/secrets/gingham-stream-tls".to_string(), 404, not_found),
                (Method::POST, "/api/v1/namespaces/gingham-system/secrets?".to_string(), 201, created),
                (
                    Method::PATCH,
                    "/api/v1/namespaces/gingham-system/configmaps/gingham-stream-ca?&force=true&fieldManager=gingham-operator"
                        .to_string(),
                    200,
                    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": STREAM_CA_CONFIG_MAP}}),
                ),
            ];
            let mut bodies = Vec::new();
            for (method, target, status, answer) in expected {
                let (request, reply) = handle.next_request().await.unwrap();
                let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
                assert_eq!((request.method(), format!("{}{query}", request.uri().path())), (&method, target));
                let bytes = request.into_body().collect_bytes().await.unwrap();
                bodies.push(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default());
                let body = Body::from(serde_json::to_vec(&answer).unwrap());
                reply.send_response(Response::builder().status(status).body(body).unwrap());
            }
            bodies
        });
        let tls = generated(&Client::new(service, "default"), "gingham-system", "gingham-stream").await.unwrap();
        let bodies = api.await.unwrap();
        assert_eq!(bodies[1]["metadata"]["name"], SECRET_NAME);
        let ca = bodies[2]["data"]["ca.crt"].as_str().unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        check(&tls).unwrap();
        assert_ne!(ca, tls.cert, "the agents get the CA, not the serving certificate");
    }
}
