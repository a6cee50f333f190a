//! TLS for the stream over TCP: the stream carries BGP passwords and the agents' tokens, so a TCP
//! server serves it with a certificate ([`ServerTls`]) and followers of `https://` servers check that
//! certificate against a CA file ([`ClientTls`]). Unix sockets (the lab) stay plaintext: only
//! processes with access to the file reach them.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// How long a TLS handshake may take, on either side: a peer that opens a connection and says
/// nothing does not hold it longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP server's certificate chain and private key, as PEM.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain, the serving certificate first.
    pub cert: String,
    /// The private key.
    pub key: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cert", &self.cert).finish_non_exhaustive()
    }
}

impl ServerTls {
    pub(crate) fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key)).timeout(HANDSHAKE_TIMEOUT)
    }
}

/// How a follower checks an `https://` server: against the CA in `ca_file`, read at every
/// connection (so a CA that is mounted late or rotated is picked up), for the name `server_name`
/// (or the URL's host when not given; a server dialled by IP address needs the name its
/// certificate carries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// The CA certificate(s), PEM.
    pub ca_file: PathBuf,
    /// The name the server's certificate must carry.
    pub server_name: Option<String>,
}

/// A follower's TLS could not be set up or the handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error(
        "cannot read the stream CA file {path}: {source}; mount the CA that signed the operator's stream certificate there (--stream-ca-file)"
    )]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no PEM certificate.
    #[error(
        "the stream CA file {path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); check --stream-ca-file"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// An `https://` server was given no CA to check it against.
    #[error("the stream server {server} is https:// but no CA was given to check it: give --stream-ca-file")]
    NoCa {
        /// The server.
        server: String,
    },
}

impl ClientTls {
    /// The client configuration, with the CA read now.
    pub(crate) fn config(&self) -> Result<ClientTlsConfig, TlsError> {
        let pem =
            std::fs::read(&self.ca_file).map_err(|source| TlsError::ReadCa { path: self.ca_file.clone(), source })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(TlsError::NoCertificate { path: self.ca_file.clone() });
        }
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)).timeout(HANDSHAKE_TIMEOUT);
        Ok(match &self.server_name {
            Some(name) => config.domain_name(name.clone()),
            None => config,
        })
    }
}

/// A connection error with every cause and, when the certificate of a server `checked` (how, and
/// the URL's host) was refused, what to check.
pub(crate) fn explain(error: &tonic::transport::Error, checked: Option<(&ClientTls, &str)>) -> String {
    let mut text = error.to_string();
    let mut refused_certificate = false;
    let mut cause = error.source();
    while let Some(current) = cause {
        let message = current.to_string();
        if !text.ends_with(&message) {
            text = format!("{text}: {message}");
        }
        let rustls_error = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| current.downcast_ref::<rustls::Error>());
        refused_certificate |= matches!(rustls_error, Some(rustls::Error::InvalidCertificate(_)));
        cause = current.source();
    }
    match checked {
        Some((tls, host)) if refused_certificate => format!(
            "{text} (the server's certificate is not valid for {} under the CA in {}: check --stream-ca-file and --stream-tls-server-name)",
            tls.server_name.as_deref().unwrap_or(host),
            tls.ca_file.display()
        ),
        _ => text,
    }
}
