//! Files the agent reads and keeps current: a directory watch (inotify, [`DirWatch`]) says when
//! to look, the files' sizes and modification times say whether to read again, and a rescan now
//! and then catches a notification that was missed. Without inotify the files are polled. The
//! file datastore ([`super::file`]) and the span file ([`crate::span_file`]) both go through it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gingham_datastore::watch::{Changed, DirWatch};
use tokio::sync::watch;

/// How often the files are polled when inotify is unavailable.
pub const POLL_INTERVAL: Duration = Duration::from_millis(300);
/// How often the files are checked anyway while inotify watches them.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// Files read together, and how.
pub(crate) trait WatchedFiles: Send + 'static {
    /// What is read from them.
    type Value: PartialEq + Send + Sync + 'static;
    /// The directory to watch, and whether its subdirectories too.
    fn watch_root(&self) -> (&Path, bool);
    /// Whether a change of `path` (under the watched directory) may change what is read.
    fn relevant(&self, path: &Path) -> bool;
    /// The files whose sizes and modification times say whether to read again.
    fn files(&self) -> Vec<PathBuf>;
    /// Reads them.
    fn read(&mut self) -> Self::Value;
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn fingerprint(files: &impl WatchedFiles) -> Fingerprint {
    files
        .files()
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (path, modified, len)
        })
        .collect()
}

/// Reads `files` now and keeps the returned channel current (a read that gives the same value
/// notifies no one). Runs until every receiver is gone.
pub(crate) fn spawn<W: WatchedFiles>(mut files: W) -> watch::Receiver<W::Value> {
    // Watch, then fingerprint, then read: a change after any of these steps is noticed.
    let (root, recursive) = files.watch_root();
    let started = if recursive { DirWatch::start(root) } else { DirWatch::start_flat(root) };
    let mut watcher = started
        .inspect_err(|error| tracing::warn!(dir = %root.display(), %error, ?POLL_INTERVAL, "cannot watch the directory; polling it"))
        .ok();
    let mut seen = fingerprint(&files);
    let (sender, receiver) = watch::channel(files.read());
    tokio::spawn(async move {
        loop {
            let relevant = match watcher.as_mut() {
                None => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                    true
                }
                Some(dir_watch) => match tokio::time::timeout(RESCAN_INTERVAL, dir_watch.changed()).await {
                    Ok(Changed::Paths(paths)) => paths.iter().any(|p| files.relevant(p)),
                    Ok(Changed::Rescan) | Err(_) => true,
                    Ok(Changed::Closed) => {
                        tracing::warn!(?POLL_INTERVAL, "the directory watch stopped; polling instead");
                        watcher = None;
                        true
                    }
                },
            };
            let now = if relevant { fingerprint(&files) } else { seen.clone() };
            if now != seen {
                seen = now;
                let value = files.read();
                sender.send_if_modified(|current| {
                    let changed = *current != value;
                    *current = value;
                    changed
                });
            }
            if sender.is_closed() {
                return;
            }
        }
    });
    receiver
}
