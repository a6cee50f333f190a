//! The file datastore (docs/file-datastore.md, layout in [`gingham_datastore::layout`]): reads
//! this node's NodeNetwork and every IPAMBlock when inotify says they changed (rescanning now and
//! then in case a notification was missed, or polling when inotify is unavailable); writes this
//! node's status.

use std::path::{Path, PathBuf};

use gingham_crds::api::{API_VERSION, IPAMBlockSpec, NodeNetworkStatus};
use gingham_crds::manifest::{Manifest, read_documents, read_manifest_file};
use gingham_crds::unknown_fields::unknown_fields;
use gingham_datastore::atomic::{PUBLIC_FILE, write_atomic};
use gingham_datastore::files::yaml_files;
use gingham_datastore::layout::{IPAM_BLOCKS, node_network_path, node_status_path, read_by_agent};
use serde_json::json;
use tokio::sync::watch;

use super::watched::{self, WatchedFiles};
use super::{DatastoreError, NodeNetworkState, Snapshot, StatusSink};

/// One node's view of a datastore directory.
#[derive(Clone, Debug)]
pub struct FileDatastore {
    dir: PathBuf,
    node: String,
}

impl FileDatastore {
    /// The datastore in `dir`, for `node`.
    pub fn new(dir: &Path, node: &str) -> Self {
        Self { dir: dir.to_path_buf(), node: node.to_string() }
    }

    fn node_network_path(&self) -> PathBuf {
        node_network_path(&self.dir, &self.node)
    }

    /// Reads the inputs now.
    pub fn read(&self) -> Snapshot {
        Snapshot { node_network: self.read_node_network(), blocks: self.read_blocks(), ..Snapshot::default() }
    }

    /// Watches the directory and keeps the returned channel current.
    pub fn spawn(self) -> watch::Receiver<Snapshot> {
        watched::spawn(self)
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

    /// The IPAMBlock files (none while the directory is missing; a listing error is logged).
    fn block_files(&self) -> Vec<PathBuf> {
        let dir = self.dir.join(IPAM_BLOCKS);
        yaml_files(&dir).unwrap_or_else(|error| {
            if dir.exists() {
                tracing::warn!(%error, "cannot list the IPAMBlocks");
            }
            Vec::new()
        })
    }

    fn read_blocks(&self) -> Vec<IPAMBlockSpec> {
        let mut blocks = Vec::new();
        for path in self.block_files() {
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

impl WatchedFiles for FileDatastore {
    type Value = Snapshot;

    fn watch_root(&self) -> (&Path, bool) {
        (&self.dir, true)
    }

    fn relevant(&self, path: &Path) -> bool {
        read_by_agent(&self.dir, &self.node, path)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = self.block_files();
        files.push(self.node_network_path());
        files
    }

    fn read(&mut self) -> Snapshot {
        FileDatastore::read(self)
    }
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
        Self { path: node_status_path(dir, node), node: node.to_string() }
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
