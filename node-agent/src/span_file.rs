//! The node's span from a file (`--span-file`), for an agent without the operator's stream: a
//! standalone node, the tests. The file holds one [`NodeSpan`] document, YAML or JSON, as
//! `gingham-operator render` prints it for each node. It is read again whenever it changes.
//!
//! Until the file has been read once the span is unknown, as before a stream's first snapshot. A
//! file that becomes unreadable, malformed or goes away later changes nothing: the last span read
//! stays in force (as a broken stream never flushes), and the agent logs why.

use std::path::{Path, PathBuf};

use gingham_crds::api::span::NodeSpan;
use gingham_crds::manifest::{read_documents, read_manifest_file};
use gingham_crds::unknown_fields::unknown_fields;
use tokio::sync::watch;

use crate::datastore::watched::{self, WatchedFiles};
use crate::datastore::{Snapshot, combine};

/// The span file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpanFileError {
    /// Reading the file failed.
    #[error(transparent)]
    Read(#[from] gingham_crds::manifest::ReadFileError),
    /// The file is not a NodeSpan document.
    #[error("span file {}: {reason}; write one NodeSpan document (endpoints, policies, ipSets, bgpPeers), as `gingham-operator render` prints it", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl SpanFileError {
    /// A stable short label for metrics and tests.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Read(error) => error.label(),
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// Reads a span file now.
pub fn read(path: &Path) -> Result<NodeSpan, SpanFileError> {
    let malformed = |reason: String| SpanFileError::Malformed { path: path.to_path_buf(), reason };
    let text = read_manifest_file(path)?;
    let mut documents = read_documents(&text).map_err(|e| malformed(e.to_string()))?;
    if documents.len() != 1 {
        return Err(malformed(format!("it holds {} documents, not one", documents.len())));
    }
    let written = documents.remove(0).value;
    let span: NodeSpan = serde_json::from_value(written.clone()).map_err(|e| malformed(e.to_string()))?;
    let typed = serde_json::to_value(&span).map_err(|e| malformed(e.to_string()))?;
    let unknown = unknown_fields(&written, &typed, "");
    if !unknown.is_empty() {
        return Err(malformed(format!("unknown field(s) {}; check the spelling", unknown.join(", "))));
    }
    Ok(span)
}

/// Returns the datastore's inputs with the span read from `path` in them, kept current as either
/// changes.
pub fn follow(inputs: watch::Receiver<Snapshot>, path: &Path) -> watch::Receiver<Snapshot> {
    let spans = watched::spawn(SpanFile { path: path.to_path_buf(), last: None, error: None });
    combine(inputs, spans, |inputs: &Snapshot, span: &Option<NodeSpan>| Snapshot {
        span: span.clone(),
        ..inputs.clone()
    })
}

/// The file and what was last read from it.
struct SpanFile {
    path: PathBuf,
    /// The last span read.
    last: Option<NodeSpan>,
    /// Why the last read failed, when it did (logged once per reason).
    error: Option<String>,
}

impl WatchedFiles for SpanFile {
    type Value = Option<NodeSpan>;

    fn watch_root(&self) -> (&Path, bool) {
        (self.path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new(".")), false)
    }

    /// Anything in the file's directory: a Kubernetes volume replaces a file by swapping a
    /// symbolic link next to it. The file's size and time decide.
    fn relevant(&self, _: &Path) -> bool {
        true
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }

    fn read(&mut self) -> Option<NodeSpan> {
        match read(&self.path) {
            Ok(span) => {
                tracing::info!(file = %self.path.display(), "span file read");
                self.error = None;
                self.last = Some(span);
            }
            Err(error) => {
                let message = error.to_string();
                if self.error.as_ref() != Some(&message) {
                    match &self.last {
                        None => {
                            tracing::warn!(%error, "no span yet: policy and BGP sessions stay as they are until the span file can be read")
                        }
                        Some(_) => {
                            tracing::warn!(%error, "the span file cannot be read; the last span read stays in force")
                        }
                    }
                    self.error = Some(message);
                }
            }
        }
        self.last.clone()
    }
}

#[cfg(test)]
#[path = "span_file_tests.rs"]
mod tests;
