//! The file datastore (docs/file-datastore.md): reads `generated/nodenetworks/<node>.yaml` and
//! `generated/ipamblocks/*.yaml` when inotify says they changed (rescanning now and then in case a
//! notification was missed, or polling when inotify is unavailable); writes
//! `status/nodenetworks/<node>.yaml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use gingham_crds::api::{API_VERSION, IPAMBlockSpec, NodeNetworkStatus};
use gingham_crds::manifest::{Manifest, read_documents, read_manifest_file};
use serde_json::json;
use tokio::sync::watch;

use super::{DatastoreError, NodeNetworkState, Snapshot, StatusSink, unknown_fields};
use crate::atomic_file::write_atomic;
use crate::private_files::PUBLIC_FILE;

/// How often the directory is polled when inotify is unavailable.
pub const POLL_INTERVAL: Duration = Duration::from_millis(300);
/// How often the inputs are checked anyway while inotify watches them.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// After a notification, how long to wait for more (the operator writes several blocks at once).
const SETTLE: Duration = Duration::from_millis(5);

/// One node's view of a datastore directory.
#[derive(Clone, Debug)]
pub struct FileDatastore {
    dir: PathBuf,
    node: String,
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

impl FileDatastore {
    /// The datastore in `dir`, for `node`.
    pub fn new(dir: &Path, node: &str) -> Self {
        Self { dir: dir.to_path_buf(), node: node.to_string() }
    }

    fn node_network_path(&self) -> PathBuf {
        self.dir.join("generated/nodenetworks").join(format!("{}.yaml", self.node))
    }

    /// Reads the inputs now.
    pub fn read(&self) -> Snapshot {
        Snapshot { node_network: self.read_node_network(), blocks: self.read_blocks() }
    }

    /// Watches the directory and keeps the returned channel current.
    pub fn spawn(self) -> watch::Receiver<Snapshot> {
        // Watch, then fingerprint, then read: a change after any of these steps is noticed.
        let changed = Arc::new(tokio::sync::Notify::new());
        let watcher = self
            .watch(Arc::clone(&changed))
            .inspect_err(|error| {
                tracing::warn!(dir = %self.dir.display(), %error, ?POLL_INTERVAL, "cannot watch the directory; polling it")
            })
            .ok();
        let interval = if watcher.is_some() { RESCAN_INTERVAL } else { POLL_INTERVAL };
        let mut seen = self.fingerprint();
        let (sender, receiver) = watch::channel(self.read());
        tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                if tokio::time::timeout(interval, changed.notified()).await.is_ok() {
                    tokio::time::sleep(SETTLE).await;
                }
                let now = self.fingerprint();
                if now != seen {
                    seen = now;
                    let snapshot = self.read();
                    sender.send_if_modified(|current| {
                        let changed = *current != snapshot;
                        *current = snapshot;
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

    /// Notifies `changed` whenever this node's NodeNetwork or an IPAMBlock file may have changed.
    fn watch(&self, changed: Arc<tokio::sync::Notify>) -> Result<RecommendedWatcher, notify::Error> {
        let (node_network, blocks) = (self.node_network_path(), self.dir.join("generated/ipamblocks"));
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match event {
                // Opening and reading a file changes nothing; a write ends with a close.
                Ok(event) if matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) => {
                    false
                }
                Ok(event) => {
                    event.need_rescan() || event.paths.iter().any(|p| *p == node_network || p.starts_with(&blocks))
                }
                Err(_) => true,
            };
            if relevant {
                changed.notify_one();
            }
        })?;
        watcher.watch(&self.dir, RecursiveMode::Recursive)?;
        Ok(watcher)
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut files = yaml_files(&self.dir.join("generated/ipamblocks"));
        files.push(self.node_network_path());
        files
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                let len = meta.map_or(0, |m| m.len());
                (path, modified, len)
            })
            .collect()
    }

    fn read_node_network(&self) -> NodeNetworkState {
        let path = self.node_network_path();
        let text = match read_manifest_file(&path) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return NodeNetworkState::Missing,
            Err(e) => return NodeNetworkState::Malformed(e.to_string()),
        };
        let malformed = |message: String| NodeNetworkState::Malformed(format!("{}: {message}", path.display()));
        let documents = match read_documents(&text) {
            Ok(documents) => documents,
            Err(e) => return malformed(e.to_string()),
        };
        for document in documents {
            match Manifest::from_document(&document) {
                Ok(Manifest::NodeNetwork(network)) if network.metadata.name.as_deref() == Some(&self.node) => {
                    let typed = serde_json::to_value(&network).unwrap_or_default();
                    let unknown = unknown_fields(&document.value["spec"], &typed["spec"], "spec");
                    if !unknown.is_empty() {
                        return malformed(format!(
                            "unknown field(s) {}; check the spelling against the NodeNetwork schema",
                            unknown.join(", ")
                        ));
                    }
                    return NodeNetworkState::Found(Box::new(network));
                }
                Ok(_) => {}
                Err(e) => return malformed(e.to_string()),
            }
        }
        malformed(format!("holds no NodeNetwork named {}", self.node))
    }

    fn read_blocks(&self) -> Vec<IPAMBlockSpec> {
        let mut blocks = Vec::new();
        for path in yaml_files(&self.dir.join("generated/ipamblocks")) {
            let parsed = read_manifest_file(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| read_documents(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(documents) => {
                    for document in documents {
                        match Manifest::from_document(&document) {
                            Ok(Manifest::IPAMBlock(block)) => blocks.push(block.spec),
                            Ok(other) => {
                                tracing::warn!(file = %path.display(), kind = other.kind(), "skipping a non-IPAMBlock object")
                            }
                            Err(error) => {
                                tracing::warn!(file = %path.display(), %error, "skipping an IPAMBlock that does not decode")
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(file = %path.display(), %error, "skipping an unreadable IPAMBlock file"),
            }
        }
        blocks.sort_by(|a, b| a.cidr.cmp(&b.cidr));
        blocks
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            !name.starts_with('.') && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    files
}

/// Writes `status/nodenetworks/<node>.yaml`.
#[derive(Clone, Debug)]
pub struct FileStatus {
    path: PathBuf,
    node: String,
}

impl FileStatus {
    /// The status file of `node` in `dir`.
    pub fn new(dir: &Path, node: &str) -> Self {
        Self { path: dir.join("status/nodenetworks").join(format!("{node}.yaml")), node: node.to_string() }
    }
}

impl StatusSink for FileStatus {
    async fn write_status(&self, status: &NodeNetworkStatus) -> Result<(), DatastoreError> {
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": "NodeNetwork",
            "metadata": { "name": self.node },
            "status": status,
        });
        let text = serde_saphyr::to_string(&object)
            .map_err(|e| DatastoreError::Serialize { node: self.node.clone(), reason: e.to_string() })?;
        // Status is no secret, and other tools (the operator, the lab) read it.
        write_atomic(&self.path, text.as_bytes(), PUBLIC_FILE)?;
        Ok(())
    }
}
