//! The file datastore: a directory of YAML objects laid out as docs/file-datastore.md says. Changes
//! are noticed through inotify ([`watch`]), with a slow rescan as a safety net (or a fast poll
//! when inotify is unavailable), and read file by file ([`read`]) into engine events; a round
//! writes only the objects the engine says changed ([`write`]). It serves the lab, `render` and
//! tests.

pub mod read;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gingham_datastore::atomic::AtomicWriteError;
use gingham_datastore::files::YamlFilesError;
use gingham_datastore::watch;

use crate::core::DesiredState;
use crate::core::engine::Changes;
use crate::datastore::{Datastore, DatastoreError, Observation, WriteSummary};

/// How often the directory is read when inotify is unavailable.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often the whole directory is checked anyway while inotify watches it, in case a
/// notification was missed (at 100k files a rescan costs about a tenth of a second).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);

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
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// A file could not be removed.
    #[error("cannot remove {path}: {source} (check the directory's permissions)")]
    Remove {
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
            Self::Write(_) => "write",
            Self::Remove { .. } => "remove",
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
    watch: Option<watch::DirWatch>,
    poll: Duration,
    /// Files the operator owns changed under it: the next apply compares everything.
    resync: bool,
}

impl FileDatastore {
    /// A datastore over `root`, watched through inotify (polled every [`POLL_INTERVAL`] when that
    /// fails).
    pub fn new(root: &Path) -> Self {
        let watch = watch::DirWatch::start(root)
            .inspect_err(|error| {
                tracing::warn!(dir = %root.display(), %error, ?POLL_INTERVAL, "cannot watch the directory; polling it")
            })
            .ok();
        Self { watch, ..Self::polled(root, POLL_INTERVAL) }
    }

    /// A datastore over `root`, polled every `poll` without inotify.
    pub fn polled(root: &Path, poll: Duration) -> Self {
        let reader = read::Reader::new(root);
        Self { root: root.to_path_buf(), reader, first: true, watch: None, poll, resync: false }
    }

    /// The next batch of changes: what the watcher names, or a rescan.
    async fn read_changes(&mut self) -> Result<read::Delta, FileError> {
        let Some(watch) = self.watch.as_mut() else {
            tokio::time::sleep(self.poll).await;
            return self.reader.rescan();
        };
        match tokio::time::timeout(RESCAN_INTERVAL, watch.changed()).await {
            Ok(watch::Changed::Paths(paths)) => self.reader.refresh(paths),
            Ok(watch::Changed::Rescan) | Err(_) => self.reader.rescan(),
            Ok(watch::Changed::Closed) => {
                tracing::warn!(?POLL_INTERVAL, "the directory watch stopped; polling instead");
                self.watch = None;
                self.reader.rescan()
            }
        }
    }
}

/// The first observation is a snapshot; after it, events name only the objects whose files
/// changed.
impl Datastore for FileDatastore {
    async fn next(&mut self) -> Result<Observation, DatastoreError> {
        if self.first {
            let outcome = self.reader.read()?;
            log_problems(&outcome.problems);
            self.first = false;
            return Ok(Observation::Snapshot(Box::new(outcome.snapshot)));
        }
        loop {
            let delta = self.read_changes().await?;
            log_problems(&delta.problems);
            self.resync |= delta.own_changed;
            if !delta.events.is_empty() || delta.own_changed {
                return Ok(Observation::Events(delta.events));
            }
        }
    }

    async fn apply(
        &mut self,
        desired: &DesiredState,
        changes: Option<&Changes>,
    ) -> Result<WriteSummary, DatastoreError> {
        let written = match changes.filter(|_| !self.resync) {
            Some(changes) => write::write_changes(&self.root, desired, changes)?,
            None => write::write_desired(&self.root, desired)?,
        };
        self.resync = false;
        self.reader.adopt(&written.files);
        Ok(written.summary)
    }
}

fn log_problems(problems: &[String]) {
    for problem in problems {
        tracing::warn!(problem = %problem, "skipping an invalid object");
    }
}
