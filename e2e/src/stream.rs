//! The lab's stream wiring (`docs/stream.md`): the operator serves the agents' stream on a unix
//! socket in the lab's directory (the agents run in other network namespaces but share the file
//! system), and each agent authenticates with a token of its own, listed in the operator's tokens
//! file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gingham_datastore::atomic::{AtomicWriteError, PRIVATE_FILE, write_atomic};

use crate::state::{LabState, NodeRecord};

/// Where random tokens come from.
const TOKEN_SOURCE: &str = "/proc/sys/kernel/random/uuid";

/// The stream's wiring could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    /// A file could not be read.
    #[error("stream wiring: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("stream wiring: {0}")]
    Write(#[from] AtomicWriteError),
}

/// The socket the operator serves the stream on.
pub fn socket(state: &LabState) -> PathBuf {
    state.state_dir.join("stream.sock")
}

/// The operator's tokens file: each agent's token and its node.
pub fn tokens_file(state: &LabState) -> PathBuf {
    state.state_dir.join("stream-tokens.json")
}

/// The file holding a node agent's token.
pub fn token_file(node: &NodeRecord) -> PathBuf {
    node.dir.join("stream-token")
}

fn read_tokens(path: &Path) -> Result<BTreeMap<String, String>, StreamSetupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_default()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(StreamSetupError::Read { path: path.to_path_buf(), source }),
    }
}

fn write_tokens(path: &Path, tokens: &BTreeMap<String, String>) -> Result<(), StreamSetupError> {
    let text = serde_json::to_string_pretty(tokens).unwrap_or_else(|_| "{}".into());
    Ok(write_atomic(path, text.as_bytes(), PRIVATE_FILE)?)
}

/// Makes sure the tokens file exists (the operator refuses to start without it).
pub fn prepare(state: &LabState) -> Result<(), StreamSetupError> {
    let path = tokens_file(state);
    write_tokens(&path, &read_tokens(&path)?)
}

/// Gives `node`'s agent a fresh token: written to its token file and listed in the operator's
/// tokens file (which the operator reads again when it meets a token it does not know). Returns
/// the token file.
pub fn issue_token(state: &LabState, node: &NodeRecord) -> Result<PathBuf, StreamSetupError> {
    let token = std::fs::read_to_string(TOKEN_SOURCE)
        .map_err(|source| StreamSetupError::Read { path: TOKEN_SOURCE.into(), source })?
        .trim()
        .to_string();
    let path = tokens_file(state);
    let mut tokens = read_tokens(&path)?;
    tokens.retain(|_, owner| owner != &node.name);
    tokens.insert(token.clone(), node.name.clone());
    write_tokens(&path, &tokens)?;
    let file = token_file(node);
    write_atomic(&file, token.as_bytes(), PRIVATE_FILE)?;
    Ok(file)
}
