//! How the stream is served, decided once from the command line: who authenticates the agents
//! (fixed tokens, or TokenReview on the Kubernetes datastore) and with which certificate TCP is
//! served. Flags that do not fit together are refused with the flag to change.

use std::path::PathBuf;
use std::time::Duration;

use super::Listen;
use crate::cli::{DatastoreKind, StreamArgs};
use crate::core::daemonset::AgentStream;

/// Who authenticates the agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The fixed tokens of this file (`--stream-tokens`).
    Tokens(PathBuf),
    /// TokenReview of the agents' projected ServiceAccount tokens, made for `audience`.
    TokenReview {
        /// The tokens' audience.
        audience: String,
    },
}

/// How the stream is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// In plaintext: a unix socket, or `--stream-plaintext`.
    Plaintext,
    /// With the certificate and key of these files.
    Files {
        /// The certificate chain (`--stream-tls-cert`).
        cert: PathBuf,
        /// The private key (`--stream-tls-key`).
        key: PathBuf,
    },
    /// With a certificate the operator generates and keeps in a Secret, its CA published to the
    /// agents in a ConfigMap (the Kubernetes datastore).
    Generated,
}

/// How the stream is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    /// Where.
    pub listen: Listen,
    /// Who authenticates the agents.
    pub auth: Auth,
    /// With which certificate.
    pub tls: Tls,
    /// The Service in front of the stream.
    pub service: String,
    /// How often a quiet subscriber hears from the server.
    pub heartbeat: Duration,
}

/// The stream's flags do not fit together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// The file datastore has no TokenReview.
    #[error(
        "--stream-addr on the file datastore needs --stream-tokens FILE (a map from each agent's token to its node): TokenReview needs --datastore kubernetes"
    )]
    TokensNeeded,
    /// TCP on the file datastore has no generated certificate.
    #[error(
        "--stream-addr {listen} on the file datastore needs --stream-tls-cert and --stream-tls-key (the stream carries BGP passwords), or --stream-plaintext for a test on the loopback"
    )]
    TlsNeeded {
        /// The address.
        listen: Listen,
    },
    /// TLS flags for a unix socket.
    #[error(
        "{flag} does not apply to --stream-addr {listen}: a unix socket is served in plaintext; drop {flag} or listen on HOST:PORT"
    )]
    NotForUnix {
        /// The flag.
        flag: &'static str,
        /// The socket.
        listen: Listen,
    },
}

/// How the stream is served, or `None` without `--stream-addr`.
pub fn plan(args: &StreamArgs, datastore: DatastoreKind) -> Result<Option<StreamOptions>, FlagError> {
    let Some(listen) = args.stream_addr.clone() else { return Ok(None) };
    let kubernetes = datastore == DatastoreKind::Kubernetes;
    let auth = match (&args.stream_tokens, kubernetes) {
        (Some(path), _) => Auth::Tokens(path.clone()),
        (None, true) => Auth::TokenReview { audience: args.stream_audience.clone() },
        (None, false) => return Err(FlagError::TokensNeeded),
    };
    let tls = match (&listen, &args.stream_tls_cert, &args.stream_tls_key) {
        (Listen::Unix(_), Some(_), _) => return Err(FlagError::NotForUnix { flag: "--stream-tls-cert", listen }),
        (Listen::Unix(_), _, _) if args.stream_plaintext => {
            return Err(FlagError::NotForUnix { flag: "--stream-plaintext", listen });
        }
        (Listen::Unix(_), None, _) => Tls::Plaintext,
        (Listen::Tcp(_), Some(cert), Some(key)) => Tls::Files { cert: cert.clone(), key: key.clone() },
        (Listen::Tcp(_), _, _) if args.stream_plaintext => Tls::Plaintext,
        (Listen::Tcp(_), _, _) if kubernetes => Tls::Generated,
        (Listen::Tcp(_), _, _) => return Err(FlagError::TlsNeeded { listen }),
    };
    let heartbeat = Duration::from_secs(args.stream_heartbeat);
    Ok(Some(StreamOptions { listen, auth, tls, service: args.stream_service.clone(), heartbeat }))
}

impl StreamOptions {
    /// What the agent DaemonSet tells the agents: only TokenReview over TLS on TCP, where each agent
    /// presents its projected token and checks the certificate against the CA ConfigMap. Otherwise
    /// the agents are not pointed at the stream (they use the NodeNetwork's copy).
    pub fn agent_stream(&self) -> Option<AgentStream> {
        match (&self.listen, &self.auth, &self.tls) {
            (Listen::Tcp(_), Auth::TokenReview { audience }, Tls::Files { .. } | Tls::Generated) => {
                Some(AgentStream { service: self.service.clone(), audience: audience.clone() })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn plan_of(flags: &str) -> Result<Option<StreamOptions>, String> {
        let line = format!("gingham-operator run {flags}");
        let cli = Cli::try_parse_from(line.split_whitespace()).map_err(|error| error.to_string())?;
        let Command::Run(args) = cli.command else { panic!("run") };
        plan(&args.stream, args.datastore).map_err(|error| error.to_string())
    }

    /// The options planned, or fragments of the error.
    type Expected = Result<Option<StreamOptions>, Vec<String>>;

    #[test]
    fn the_stream_flags_decide_auth_and_tls_or_name_the_flag_to_fix() {
        let tcp = Listen::Tcp("0.0.0.0:5473".parse().unwrap());
        let review = Auth::TokenReview { audience: "gingham-stream".into() };
        let options = |listen: &Listen, auth: &Auth, tls| {
            Ok(Some(StreamOptions {
                listen: listen.clone(),
                auth: auth.clone(),
                tls,
                service: "gingham-stream".into(),
                heartbeat: Duration::from_secs(10),
            }))
        };
        let tokens = Auth::Tokens("t.yaml".into());
        let unix = Listen::Unix("/run/s.sock".into());
        let files = Tls::Files { cert: "c.pem".into(), key: "k.pem".into() };
        let refused = |fragments: &[&str]| Err(fragments.iter().map(|f| f.to_string()).collect::<Vec<_>>());
        let cases: Vec<(&str, Expected)> = vec![
            ("", Ok(None)),
            ("--stream-addr 0.0.0.0:5473", options(&tcp, &review, Tls::Generated)),
            (
                "--stream-addr 0.0.0.0:5473 --stream-tls-cert c.pem --stream-tls-key k.pem",
                options(&tcp, &review, files.clone()),
            ),
            ("--stream-addr 0.0.0.0:5473 --stream-plaintext", options(&tcp, &review, Tls::Plaintext)),
            ("--stream-addr unix:/run/s.sock", options(&unix, &review, Tls::Plaintext)),
            (
                "--datastore file --dir d --stream-addr unix:/run/s.sock --stream-tokens t.yaml",
                options(&unix, &tokens, Tls::Plaintext),
            ),
            (
                "--datastore file --dir d --stream-addr 0.0.0.0:5473 --stream-tokens t.yaml --stream-tls-cert c.pem --stream-tls-key k.pem",
                options(&tcp, &tokens, files),
            ),
            (
                "--datastore file --dir d --stream-addr unix:/run/s.sock",
                refused(&["--stream-tokens FILE", "--datastore kubernetes"]),
            ),
            (
                "--datastore file --dir d --stream-addr 0.0.0.0:5473 --stream-tokens t.yaml",
                refused(&["--stream-tls-cert", "--stream-tls-key", "--stream-plaintext"]),
            ),
            (
                "--stream-addr unix:/run/s.sock --stream-tls-cert c.pem --stream-tls-key k.pem",
                refused(&["--stream-tls-cert does not apply", "HOST:PORT"]),
            ),
            ("--stream-addr unix:/run/s.sock --stream-plaintext", refused(&["--stream-plaintext does not apply"])),
            ("--stream-addr 0.0.0.0:5473 --stream-tls-cert c.pem", refused(&["--stream-tls-key"])),
            ("--stream-addr 0.0.0.0:5473 --stream-tls-key k.pem", refused(&["--stream-tls-cert"])),
            (
                "--stream-addr 0.0.0.0:5473 --stream-plaintext --stream-tls-cert c.pem --stream-tls-key k.pem",
                refused(&["--stream-plaintext", "cannot be used with"]),
            ),
            ("--stream-tokens t.yaml", refused(&["--stream-addr"])),
        ];
        for (flags, expected) in cases {
            match (plan_of(flags), expected) {
                (Ok(planned), Ok(expected)) => assert_eq!(planned, expected, "{flags}"),
                (Err(error), Err(fragments)) => {
                    for fragment in fragments {
                        assert!(error.contains(&fragment), "{flags}: {fragment:?} in {error}");
                    }
                }
                (outcome, expected) => panic!("{flags}: {outcome:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn agents_are_pointed_at_the_stream_only_for_token_review_over_tls() {
        let agent_stream = |flags: &str| plan_of(flags).unwrap().and_then(|options| options.agent_stream());
        let expected = AgentStream { service: "gingham-stream".into(), audience: "gingham-stream".into() };
        assert_eq!(agent_stream("--stream-addr 0.0.0.0:5473"), Some(expected));
        for flags in [
            "",
            "--stream-addr 0.0.0.0:5473 --stream-plaintext",
            "--stream-addr unix:/run/s.sock",
            "--stream-addr 0.0.0.0:5473 --stream-tokens t.yaml",
        ] {
            assert_eq!(agent_stream(flags), None, "{flags}");
        }
    }
}
