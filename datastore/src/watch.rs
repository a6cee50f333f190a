//! Change notifications for a datastore directory and everything under it (inotify, through the
//! `notify` crate): which paths changed, or "read everything again" when the kernel dropped
//! notifications.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// After a first notification, how long to wait for more before reading: a burst of writes (an
/// editor's, or many objects at once) is read in one round.
const SETTLE: Duration = Duration::from_millis(5);

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// These files or directories changed.
    Paths(BTreeSet<PathBuf>),
    /// Notifications were lost: read everything.
    Rescan,
    /// The watcher stopped: nothing more will come.
    Closed,
}

#[derive(Debug)]
enum Notice {
    Paths(Vec<PathBuf>),
    Rescan,
}

/// A recursive watch on a directory.
#[derive(Debug)]
pub struct DirWatch {
    _watcher: RecommendedWatcher,
    notices: UnboundedReceiver<Notice>,
    pending: BTreeSet<PathBuf>,
    rescan: bool,
}

impl DirWatch {
    /// Watches `dir` and everything under it (directories created later included).
    pub fn start(dir: &Path) -> Result<Self, notify::Error> {
        Self::start_in(dir, RecursiveMode::Recursive)
    }

    /// Watches the entries of `dir` itself, not what lies under its subdirectories: for one file
    /// in a directory that may hold anything.
    pub fn start_flat(dir: &Path) -> Result<Self, notify::Error> {
        Self::start_in(dir, RecursiveMode::NonRecursive)
    }

    fn start_in(dir: &Path, mode: RecursiveMode) -> Result<Self, notify::Error> {
        let (sender, notices) = unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let notice = match event {
                Ok(event) if event.need_rescan() => Notice::Rescan,
                // Opening and reading a file changes nothing; a write ends with a close.
                Ok(event) if matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) => {
                    return;
                }
                Ok(event) => Notice::Paths(event.paths),
                Err(_) => Notice::Rescan,
            };
            let _ = sender.send(notice);
        })?;
        watcher.watch(dir, mode)?;
        Ok(Self { _watcher: watcher, notices, pending: BTreeSet::new(), rescan: false })
    }

    /// Waits for the next change. Cancel-safe: what was received stays pending for the next call.
    pub async fn changed(&mut self) -> Changed {
        if self.pending.is_empty() && !self.rescan {
            match self.notices.recv().await {
                Some(notice) => self.note(notice),
                None => return Changed::Closed,
            }
            tokio::time::sleep(SETTLE).await;
        }
        while let Ok(notice) = self.notices.try_recv() {
            self.note(notice);
        }
        if std::mem::take(&mut self.rescan) {
            self.pending.clear();
            return Changed::Rescan;
        }
        Changed::Paths(std::mem::take(&mut self.pending))
    }

    fn note(&mut self, notice: Notice) {
        match notice {
            Notice::Paths(paths) => self.pending.extend(paths),
            Notice::Rescan => self.rescan = true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    async fn next_paths(watch: &mut DirWatch) -> BTreeSet<PathBuf> {
        match tokio::time::timeout(Duration::from_secs(10), watch.changed()).await.unwrap() {
            Changed::Paths(paths) => paths,
            other => panic!("expected paths, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn writes_renames_and_removals_are_reported_also_in_new_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = DirWatch::start(dir.path()).unwrap();
        let file = dir.path().join("pools.yaml");
        std::fs::write(&file, "a").unwrap();
        assert!(next_paths(&mut watch).await.contains(&file));

        let sub = dir.path().join("objects/team");
        std::fs::create_dir_all(&sub).unwrap();
        let mut seen = next_paths(&mut watch).await;
        // The new directory is watched once it is reported; what lands in it is reported too.
        let renamed = sub.join("peer.yaml");
        std::fs::write(sub.join(".peer.yaml.tmp"), "b").unwrap();
        std::fs::rename(sub.join(".peer.yaml.tmp"), &renamed).unwrap();
        while !seen.contains(&renamed) {
            seen.extend(next_paths(&mut watch).await);
        }

        std::fs::remove_file(&file).unwrap();
        let mut seen = next_paths(&mut watch).await;
        while !seen.contains(&file) {
            seen.extend(next_paths(&mut watch).await);
        }
    }

    #[tokio::test]
    async fn reading_a_file_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pools.yaml");
        std::fs::write(&file, "a").unwrap();
        let mut watch = DirWatch::start(dir.path()).unwrap();
        std::fs::read_to_string(&file).unwrap();
        let marker = dir.path().join("marker.yaml");
        std::fs::write(&marker, "m").unwrap();
        let mut seen = BTreeSet::new();
        while !seen.contains(&marker) {
            seen.extend(next_paths(&mut watch).await);
        }
        assert!(!seen.contains(&file), "{seen:?}");
    }
}
