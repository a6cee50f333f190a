//! Reading a file datastore directory into a [`ClusterSnapshot`], re-parsing only files whose text
//! changed. A file or document that does not parse or validate is reported once and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gingham_crds::api::NodeNetworkStatus;
use gingham_crds::manifest::{Document, Manifest, read_documents};
use gingham_crds::offline::validate_document;
use serde_json::Value;

use super::FileError;
use super::layout::{Area, area_of};
use crate::core::ClusterSnapshot;
use crate::yaml_files::yaml_files;

/// What one file holds, once parsed.
#[derive(Clone, Debug, Default)]
struct Parsed {
    manifests: Vec<Manifest>,
    statuses: Vec<(String, NodeNetworkStatus)>,
}

/// A file as last read.
#[derive(Clone, Debug)]
struct Cached {
    text: String,
    parsed: Parsed,
}

/// The result of one read.
#[derive(Clone, Debug, Default)]
pub struct ReadOutcome {
    /// Whether any file appeared, disappeared or changed since the previous read.
    pub changed: bool,
    /// Everything readable.
    pub snapshot: ClusterSnapshot,
    /// Problems found in files (re)parsed by this read, as `file:line: message`.
    pub problems: Vec<String>,
}

/// Reads a directory, remembering each file's text and parse.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    cache: BTreeMap<PathBuf, Cached>,
}

impl Reader {
    /// A reader of `dir` that has read nothing yet.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), cache: BTreeMap::new() }
    }

    /// Reads the directory.
    pub fn read(&mut self) -> Result<ReadOutcome, FileError> {
        let files = yaml_files(&self.dir)?;
        let mut outcome = ReadOutcome::default();
        let mut seen = BTreeMap::new();
        for file in files {
            let Some(area) = file.strip_prefix(&self.dir).ok().and_then(area_of) else { continue };
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                // Removed between listing and reading: the next read sees it gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(FileError::Read { path: file, source }),
            };
            let cached = match self.cache.remove(&file) {
                Some(cached) if cached.text == text => cached,
                _ => {
                    outcome.changed = true;
                    let parsed = parse(&file, &text, area, &mut outcome.problems);
                    Cached { text, parsed }
                }
            };
            add(&mut outcome.snapshot, &cached.parsed);
            seen.insert(file, cached);
        }
        outcome.changed |= !self.cache.is_empty();
        self.cache = seen;
        Ok(outcome)
    }
}

fn add(snapshot: &mut ClusterSnapshot, parsed: &Parsed) {
    for manifest in &parsed.manifests {
        match manifest.clone() {
            Manifest::IPPool(o) => snapshot.pools.push(o),
            Manifest::BGPConfiguration(o) => snapshot.bgp_configurations.push(o),
            Manifest::BGPPeer(o) => snapshot.bgp_peers.push(o),
            Manifest::FelixConfiguration(o) => snapshot.felix_configurations.push(o),
            Manifest::NetworkPolicy(o) => snapshot.network_policies.push(o),
            Manifest::GlobalNetworkPolicy(o) => snapshot.global_network_policies.push(o),
            Manifest::IPAMBlock(o) => snapshot.blocks.push(o),
            Manifest::Node(o) => snapshot.nodes.push(*o),
            Manifest::Pod(o) => snapshot.pods.push(*o),
            Manifest::Namespace(o) => snapshot.namespaces.push(o),
            Manifest::Secret(o) => snapshot.secrets.push(o),
            Manifest::KubeNetworkPolicy(o) => snapshot.kube_network_policies.push(*o),
            Manifest::NodeNetwork(_) => {}
        }
    }
    for (node, status) in &parsed.statuses {
        snapshot.node_statuses.insert(node.clone(), status.clone());
    }
}

fn parse(file: &Path, text: &str, area: Area, problems: &mut Vec<String>) -> Parsed {
    let mut parsed = Parsed::default();
    let documents = match read_documents(text) {
        Ok(documents) => documents,
        Err(e) => {
            let message = e.to_string();
            problems.push(format!("{}: {}", file.display(), message.lines().next().unwrap_or_default()));
            return parsed;
        }
    };
    for document in documents {
        let mut problem = |message: String| problems.push(format!("{}:{}: {message}", file.display(), document.line));
        match area {
            Area::User => match validate_document(&document) {
                Ok(Manifest::NodeNetwork(_)) => {
                    problem("NodeNetworks are written by the operator: move this file out of the user area".into())
                }
                Ok(manifest) => parsed.manifests.push(manifest),
                Err(found) => {
                    // A pool reaches the core even when invalid: it gets Allocatable=False with the
                    // reason in its status (the Kubernetes datastore does the same).
                    if let Ok(pool @ Manifest::IPPool(_)) = Manifest::from_document(&document) {
                        parsed.manifests.push(pool);
                    }
                    let object = object_label(&document);
                    for p in found {
                        let at = if p.path.is_empty() { String::new() } else { format!("{}: ", p.path) };
                        problem(format!("{object}: {at}{}", p.message));
                    }
                }
            },
            Area::Blocks | Area::Policies => match Manifest::from_document(&document) {
                Ok(manifest @ (Manifest::IPAMBlock(_) | Manifest::NetworkPolicy(_))) => parsed.manifests.push(manifest),
                Ok(other) => problem(format!("unexpected {} in a generated directory: ignored", other.kind())),
                Err(e) => problem(e.to_string()),
            },
            Area::NodeStatus => match node_status(&document) {
                Ok(entry) => parsed.statuses.push(entry),
                Err(message) => problem(message),
            },
            Area::Own => {}
        }
    }
    parsed
}

/// A status file: a NodeNetwork with only metadata.name and status.
fn node_status(document: &Document) -> Result<(String, NodeNetworkStatus), String> {
    let name = document
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or("a NodeNetwork status needs metadata.name")?;
    let status = document.value.get("status").cloned().unwrap_or(Value::Null);
    let status = if status.is_null() {
        NodeNetworkStatus::default()
    } else {
        serde_json::from_value(status).map_err(|e| format!("NodeNetwork/{name}: status: {e}"))?
    };
    Ok((name.to_string(), status))
}

/// `Kind/name` of a document, as far as it says.
fn object_label(document: &Document) -> String {
    let field = |pointer: &str| document.value.pointer(pointer).and_then(Value::as_str).unwrap_or("<unnamed>");
    format!("{}/{}", field("/kind"), field("/metadata/name"))
}
