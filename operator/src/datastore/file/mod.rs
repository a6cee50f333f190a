//! The file datastore: a directory of YAML objects laid out as docs/file-datastore.md says, polled
//! for changes. It serves the lab, `render` and tests.

pub mod layout;
pub mod read;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::datastore::{Datastore, DatastoreError, Observation, WriteSummary};
use crate::yaml_files::YamlFilesError;

/// How often the directory is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The file datastore failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The directory could not be listed.
    #[error(transparent)]
    List(#[from] YamlFilesError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written, renamed or removed.
    #[error("cannot write {path}: {source} (check the directory's permissions and free space)")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An object could not be rendered as YAML.
    #[error("cannot render {path} as YAML: {message}")]
    Render {
        /// The file it was meant for.
        path: PathBuf,
        /// The serializer's message.
        message: String,
    },
}

impl FileError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::List(_) => "list",
            Self::Read { .. } => "read",
            Self::Write { .. } => "write",
            Self::Render { .. } => "render",
        }
    }
}

/// A directory standing in for the API server.
#[derive(Debug)]
pub struct FileDatastore {
    root: PathBuf,
    reader: read::Reader,
    first: bool,
    poll: Duration,
}

impl FileDatastore {
    /// A datastore over `root`, polled every [`POLL_INTERVAL`].
    pub fn new(root: &Path) -> Self {
        Self::with_poll_interval(root, POLL_INTERVAL)
    }

    /// A datastore over `root`, polled every `poll`.
    pub fn with_poll_interval(root: &Path, poll: Duration) -> Self {
        Self { root: root.to_path_buf(), reader: read::Reader::new(root), first: true, poll }
    }
}

/// Every observation is a snapshot: files carry no change events, and the lab's directories are
/// small.
impl Datastore for FileDatastore {
    async fn next(&mut self) -> Result<Observation, DatastoreError> {
        loop {
            if !self.first {
                tokio::time::sleep(self.poll).await;
            }
            let outcome = self.reader.read()?;
            for problem in &outcome.problems {
                tracing::warn!(problem = %problem, "skipping an invalid object");
            }
            if outcome.changed || self.first {
                self.first = false;
                return Ok(Observation::Snapshot(Box::new(outcome.snapshot)));
            }
        }
    }

    async fn apply(&mut self, desired: &DesiredState, _: Option<&Changes>) -> Result<WriteSummary, DatastoreError> {
        Ok(write::write_desired(&self.root, desired)?)
    }
}
