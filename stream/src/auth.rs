//! Who may follow which span. The server's [`Authenticator`] says which node a bearer token
//! authenticates, and a node may subscribe to its own span only. The follower's [`Token`] is what it
//! presents: fixed, or read from a file at every connection (a projected ServiceAccount token, which
//! the kubelet rotates).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// What [`Authenticator::node_of`] returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Denied>> + Send + 'a>>;

/// Says which node a bearer token belongs to.
pub trait Authenticator: Send + Sync + 'static {
    /// The node the token authenticates, or why it authenticates none.
    fn node_of<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// Why a token was not accepted; each answers the subscriber with its own gRPC code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The token is not valid (`Unauthenticated`).
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is valid but its holder may not follow the stream (`PermissionDenied`).
    #[error("{0}")]
    Forbidden(String),
    /// The token could not be checked now (`Unavailable`: the follower retries).
    #[error("{0}")]
    Unavailable(String),
}

impl From<Denied> for Status {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated(message) => Status::unauthenticated(message),
            Denied::Forbidden(message) => Status::permission_denied(message),
            Denied::Unavailable(message) => Status::unavailable(message),
        }
    }
}

/// Fixed tokens, one per node (the lab; tests).
#[derive(Clone, Debug, Default)]
pub struct StaticTokens(pub BTreeMap<String, String>);

impl StaticTokens {
    /// The node `token` authenticates, if any.
    pub fn get(&self, token: &str) -> Option<&str> {
        self.0.get(token).map(String::as_str)
    }
}

/// The answer for a token that no table knows.
pub fn unknown_token() -> Denied {
    Denied::Unauthenticated("the token authenticates no node".into())
}

impl Authenticator for StaticTokens {
    fn node_of<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        let node = self.get(token).map(str::to_string).ok_or_else(unknown_token);
        Box::pin(std::future::ready(node))
    }
}

/// The node the bearer token in `metadata` authenticates, which must be `wanted`, the node whose
/// span is asked for.
pub(crate) async fn authorize(
    auth: &dyn Authenticator,
    metadata: &MetadataMap,
    wanted: &str,
) -> Result<String, Status> {
    let header = metadata.get("authorization").and_then(|value| value.to_str().ok());
    let Some(token) = header.and_then(|value| value.strip_prefix("Bearer ")) else {
        return Err(Status::unauthenticated("no `authorization: Bearer <token>` metadata: present the agent's token"));
    };
    let node = auth.node_of(token).await?;
    if node != wanted {
        return Err(Status::permission_denied(format!(
            "node {node} may subscribe to its own span only, not to {wanted}'s"
        )));
    }
    Ok(node)
}

/// The token a follower presents.
#[derive(Clone)]
pub enum Token {
    /// This token.
    Fixed(String),
    /// The token in this file, read again at every connection.
    File(PathBuf),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(_) => f.write_str("Token::Fixed(..)"),
            Self::File(path) => f.debug_tuple("Token::File").field(path).finish(),
        }
    }
}

impl From<&str> for Token {
    fn from(token: &str) -> Self {
        Self::Fixed(token.to_string())
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self::Fixed(token)
    }
}

/// The token file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the stream token file {path}: {source}; give the agent's token with --stream-token-file")]
pub struct TokenError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl Token {
    /// The token now (surrounding whitespace dropped).
    pub fn read(&self) -> Result<String, TokenError> {
        match self {
            Self::Fixed(token) => Ok(token.clone()),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|token| token.trim().to_string())
                .map_err(|source| TokenError { path: path.clone(), source }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn metadata(authorization: Option<&str>) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(value) = authorization {
            metadata.insert("authorization", value.parse().unwrap());
        }
        metadata
    }

    #[tokio::test]
    async fn a_token_may_follow_its_own_node_only() {
        let tokens = StaticTokens(BTreeMap::from([("t1".to_string(), "n1".to_string())]));
        let cases = [
            (Some("Bearer t1"), "n1", Ok("n1".to_string())),
            (Some("Bearer t1"), "n2", Err(tonic::Code::PermissionDenied)),
            (Some("Bearer t9"), "n1", Err(tonic::Code::Unauthenticated)),
            (Some("Basic t1"), "n1", Err(tonic::Code::Unauthenticated)),
            (None, "n1", Err(tonic::Code::Unauthenticated)),
        ];
        for (header, wanted, expected) in cases {
            let outcome = authorize(&tokens, &metadata(header), wanted).await.map_err(|status| status.code());
            assert_eq!(outcome, expected, "{header:?} asking for {wanted}");
        }
    }

    #[test]
    fn denials_map_to_grpc_codes() {
        let codes = [
            (Denied::Unauthenticated("x".into()), tonic::Code::Unauthenticated),
            (Denied::Forbidden("x".into()), tonic::Code::PermissionDenied),
            (Denied::Unavailable("x".into()), tonic::Code::Unavailable),
        ];
        for (denied, code) in codes {
            assert_eq!(Status::from(denied).code(), code);
        }
    }

    #[test]
    fn a_token_file_is_read_again_each_time_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let token = Token::File(path.clone());
        assert_eq!(token.read().unwrap(), "first");
        std::fs::write(&path, "rotated").unwrap();
        assert_eq!(token.read().unwrap(), "rotated");
        std::fs::remove_file(&path).unwrap();
        let error = token.read().unwrap_err().to_string();
        assert!(error.contains("--stream-token-file") && error.contains("token"), "{error}");
        assert_eq!(format!("{:?}", Token::from("secret")), "Token::Fixed(..)");
    }
}
