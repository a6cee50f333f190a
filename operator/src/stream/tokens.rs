//! Fixed tokens from a file (the lab, the file datastore): a YAML map from each agent's token to
//! its node's name, read again when an unknown token is presented and the file changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use gingham_stream::{AuthFuture, Authenticator, StaticTokens, unknown_token};

use super::StreamError;

/// Reads a tokens file: a YAML map from each agent's token to its node's name.
pub fn read_tokens(path: &Path) -> Result<StaticTokens, StreamError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| StreamError::ReadTokens { path: path.to_path_buf(), source })?;
    let tokens: BTreeMap<String, String> = serde_saphyr::from_str(&text)
        .map_err(|error| StreamError::ParseTokens { path: path.to_path_buf(), message: error.to_string() })?;
    Ok(StaticTokens(tokens))
}

/// The tokens of a tokens file, read again when an unknown token is presented and the file changed
/// since it was last read (a node that joined after the operator started); a file that became
/// unreadable keeps the tokens last read. Unknown tokens against an unchanged file cost one `stat`.
pub struct TokenFile {
    path: PathBuf,
    read: RwLock<(Option<FileStamp>, StaticTokens)>,
}

/// What tells a file changed: its modification time and length.
type FileStamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

impl TokenFile {
    /// Reads the file once; it must be readable and well formed now.
    pub fn open(path: &Path) -> Result<Self, StreamError> {
        let stamped = stamp(path);
        Ok(Self { path: path.to_path_buf(), read: RwLock::new((stamped, read_tokens(path)?)) })
    }

    /// The node `token` authenticates, reading the file again if it changed and the token is new.
    pub fn lookup(&self, token: &str) -> Option<String> {
        let (last, known) = {
            let read = self.read.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            (read.0, read.1.get(token).map(str::to_string))
        };
        let current = stamp(&self.path);
        if known.is_some() || current == last {
            return known;
        }
        match read_tokens(&self.path) {
            Ok(fresh) => {
                let node = fresh.get(token).map(str::to_string);
                *self.read.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (current, fresh);
                node
            }
            Err(error) => {
                tracing::warn!(%error, "keeping the stream tokens last read");
                self.read.write().unwrap_or_else(std::sync::PoisonError::into_inner).0 = current;
                None
            }
        }
    }
}

impl Authenticator for TokenFile {
    fn node_of<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(std::future::ready(self.lookup(token).ok_or_else(unknown_token)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_maps_tokens_to_nodes_or_says_what_it_must_hold() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("tokens.yaml");
        std::fs::write(&good, "secret-1: node-1\nsecret-2: node-2\n").unwrap();
        let tokens = read_tokens(&good).unwrap();
        assert_eq!(tokens.get("secret-2"), Some("node-2"));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "- just\n- a list\n").unwrap();
        let error = read_tokens(&bad).unwrap_err().to_string();
        assert!(error.contains("bad.yaml") && error.contains("<token>: <node>"), "{error}");
        let missing = read_tokens(&dir.path().join("none.yaml")).unwrap_err();
        assert_eq!(missing.label(), "stream_tokens");
    }

    #[test]
    fn a_token_added_to_the_file_later_is_known_and_a_broken_file_keeps_the_last_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, "t1: node-1\n").unwrap();
        let tokens = TokenFile::open(&path).unwrap();
        assert_eq!(tokens.lookup("t2"), None);
        std::fs::write(&path, "t1: node-1\nt2: node-2\n").unwrap();
        assert_eq!(tokens.lookup("t2").as_deref(), Some("node-2"), "a node that joined later");
        std::fs::write(&path, "[not, a, map]").unwrap();
        assert_eq!(tokens.lookup("t1").as_deref(), Some("node-1"), "the tokens last read stay");
        assert_eq!(tokens.lookup("t3"), None);
    }
}
