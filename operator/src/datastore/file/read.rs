//! Reading a file datastore directory: every file's objects, cached with the file's stamp (inode,
//! size, modification time) and a hash of its text, so that a read costs only the files that
//! changed and yields the changed objects as engine events. A file or document that does not
//! parse or validate is reported once and skipped.
//!
//! An object defined in several files comes from the last of them in path order, as in a
//! snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use gingham_crds::api::NodeNetworkStatus;
use gingham_crds::manifest::{Document, Manifest, ReadFileError, read_documents, read_manifest_file};
use gingham_crds::offline::validate_document;
use gingham_datastore::files::{YamlFilesError, is_manifest_name, yaml_files};
use gingham_datastore::layout::{Area, area_of};
use serde_json::Value;

use super::FileError;
use crate::core::ClusterSnapshot;
use crate::core::engine::Event;
use crate::core::engine::store::{Key, Kind, Object, objects};

/// A file's version as its metadata tells it, without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: (i64, i64),
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self { inode: metadata.ino(), len: metadata.len(), modified: (metadata.mtime(), metadata.mtime_nsec()) }
    }
}

/// A file as last read.
#[derive(Clone, Debug)]
struct Cached {
    stamp: Stamp,
    hash: u64,
    /// Its objects, in document order (none for the operator's own files).
    objects: Vec<Object>,
}

/// An object's identity across files.
type Id = (Kind, Key);

/// What a read found since the previous one.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    /// The objects that appeared, changed or went away.
    pub events: Vec<Event>,
    /// Problems in files (re)parsed by this read, as `file:line: message`.
    pub problems: Vec<String>,
    /// A file the operator writes changed other than by the operator's hand.
    pub own_changed: bool,
}

/// The result of reading everything.
#[derive(Clone, Debug, Default)]
pub struct ReadOutcome {
    /// Whether any file appeared, disappeared or changed since the previous read.
    pub changed: bool,
    /// Everything readable.
    pub snapshot: ClusterSnapshot,
    /// Problems found in files (re)parsed by this read, as `file:line: message`.
    pub problems: Vec<String>,
}

/// Reads a directory, remembering each file's stamp, hash and objects.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    files: BTreeMap<PathBuf, Cached>,
    /// The files defining each object; the last one wins.
    owners: BTreeMap<Id, BTreeSet<PathBuf>>,
}

impl Reader {
    /// A reader of `dir` that has read nothing yet.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), files: BTreeMap::new(), owners: BTreeMap::new() }
    }

    /// Reads the whole directory and returns everything.
    pub fn read(&mut self) -> Result<ReadOutcome, FileError> {
        let delta = self.rescan()?;
        let changed = !delta.events.is_empty() || delta.own_changed;
        Ok(ReadOutcome { changed, snapshot: self.snapshot(), problems: delta.problems })
    }

    /// Lists the whole directory and reads the files whose stamp changed.
    pub fn rescan(&mut self) -> Result<Delta, FileError> {
        // Both lists are in path order: walk them together, comparing stamps on the way.
        let mut known = self.files.iter().peekable();
        let mut changed = Vec::new();
        for path in yaml_files(&self.dir)? {
            while let Some((gone, _)) = known.next_if(|(file, _)| **file < path) {
                changed.push(gone.clone());
            }
            match known.next_if(|(file, _)| **file == path) {
                Some((_, cached)) if stamp_of(&path) == Some(cached.stamp) => {}
                _ => changed.push(path),
            }
        }
        changed.extend(known.map(|(file, _)| file.clone()));
        let mut delta = Delta::default();
        for path in changed {
            self.refresh_file(path, &mut delta);
        }
        Ok(delta)
    }

    /// Reads again what a watcher named: files, and directories standing for every file in and
    /// under them (a directory created, removed or moved).
    pub fn refresh(&mut self, paths: impl IntoIterator<Item = PathBuf>) -> Result<Delta, FileError> {
        let mut files = BTreeSet::new();
        for path in paths {
            let known =
                self.files.range(path.clone()..).map(|(file, _)| file).take_while(|file| file.starts_with(&path));
            files.extend(known.cloned());
            if path.is_dir() {
                match yaml_files(&path) {
                    Ok(found) => files.extend(found),
                    Err(YamlFilesError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                files.insert(path);
            }
        }
        let mut delta = Delta::default();
        for file in files {
            self.refresh_file(file, &mut delta);
        }
        Ok(delta)
    }

    /// Takes the current version of the operator's own files (`Area::Own`) among `paths`, just
    /// written or removed, as known, so that their notifications are not mistaken for someone
    /// else's edit. Files read back as state (blocks, translated policies) are left to be read.
    pub fn adopt(&mut self, paths: &[PathBuf]) {
        for path in paths {
            if path.strip_prefix(&self.dir).ok().and_then(area_of) != Some(Area::Own) {
                continue;
            }
            let current = std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file).and_then(|metadata| {
                let text = read_manifest_file(path).ok()?;
                Some(Cached { stamp: Stamp::of(&metadata), hash: hash(&text), objects: Vec::new() })
            });
            match current {
                Some(cached) => self.files.insert(path.clone(), cached),
                None => self.files.remove(path),
            };
        }
    }

    /// Everything known, as a snapshot (files in path order).
    pub fn snapshot(&self) -> ClusterSnapshot {
        let mut snapshot = ClusterSnapshot::default();
        for object in self.files.values().flat_map(|cached| &cached.objects) {
            add(&mut snapshot, object.clone());
        }
        snapshot
    }

    /// Reads one file again if its stamp changed. A file that cannot be read is reported and
    /// keeps its last version.
    fn refresh_file(&mut self, path: PathBuf, delta: &mut Delta) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let area = path.strip_prefix(&self.dir).ok().and_then(area_of);
        let Some(area) = area.filter(|_| is_manifest_name(&name)) else { return };
        let found = std::fs::metadata(&path)
            .map_err(|source| ReadFileError::Io { path: path.clone(), source })
            .and_then(|metadata| {
                if !metadata.is_file() {
                    return Ok(None);
                }
                let stamp = Stamp::of(&metadata);
                if self.files.get(&path).is_some_and(|cached| cached.stamp == stamp) {
                    return Ok(Some((stamp, None)));
                }
                read_manifest_file(&path).map(|text| Some((stamp, Some(text))))
            });
        let found = match found {
            Ok(Some((_, None))) => return,
            Ok(Some((stamp, Some(text)))) => Some((stamp, text)),
            Ok(None) => None,
            Err(e) if e.is_not_found() => None,
            Err(e) => return delta.problems.push(e.to_string()),
        };
        let new = match found {
            Some((stamp, text)) => {
                let hash = hash(&text);
                if let Some(cached) = self.files.get_mut(&path).filter(|cached| cached.hash == hash) {
                    cached.stamp = stamp;
                    return;
                }
                let objects =
                    if area == Area::Own { Vec::new() } else { parse(&path, &text, area, &mut delta.problems) };
                Some(Cached { stamp, hash, objects })
            }
            None if !self.files.contains_key(&path) => return,
            None => None,
        };
        delta.own_changed |= area == Area::Own;
        let old = match new {
            Some(new) => self.files.insert(path.clone(), new),
            None => self.files.remove(&path),
        };
        self.note_changes(&path, old.map(|cached| cached.objects).unwrap_or_default(), &mut delta.events);
    }

    /// The events of one file's objects going from `old` to what the cache holds now.
    fn note_changes(&mut self, path: &Path, old: Vec<Object>, events: &mut Vec<Event>) {
        let new: BTreeSet<Id> = self.files.get(path).map(|c| c.objects.iter().map(id_of).collect()).unwrap_or_default();
        let ids: BTreeSet<Id> = old.iter().map(id_of).chain(new.iter().cloned()).collect();
        for id in ids {
            let owners = self.owners.entry(id.clone()).or_default();
            let was_winner = owners.last().is_some_and(|winner| winner == path);
            if new.contains(&id) {
                owners.insert(path.to_path_buf());
            } else {
                owners.remove(path);
            }
            let winner = owners.last().cloned();
            if owners.is_empty() {
                self.owners.remove(&id);
            }
            match winner {
                None => events.push(Event::Delete(id.0, id.1)),
                Some(winner) if winner == path || was_winner => {
                    let object = self.files.get(&winner).and_then(|c| c.objects.iter().rev().find(|o| id_of(o) == id));
                    events.extend(object.cloned().map(Event::Upsert));
                }
                Some(_) => {}
            }
        }
    }
}

/// `snapshot` with the objects of manifest text applied on top, each replacing the object of the
/// same kind, namespace and name (`gingham policy preview`: the state after a change). Problems
/// in the text are returned as `file:line: message`; an invalid object is left out.
pub fn overlay(snapshot: ClusterSnapshot, file: &Path, text: &str) -> (ClusterSnapshot, Vec<String>) {
    let mut problems = Vec::new();
    let changes = parse(file, text, Area::User, &mut problems);
    let changed: BTreeSet<Id> = changes.iter().map(id_of).collect();
    let mut result = ClusterSnapshot::default();
    for object in objects(snapshot).filter(|o| !changed.contains(&id_of(o))).chain(changes) {
        add(&mut result, object);
    }
    (result, problems)
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file).map(|metadata| Stamp::of(&metadata))
}

fn id_of(object: &Object) -> Id {
    (object.kind(), object.key())
}

fn hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn add(snapshot: &mut ClusterSnapshot, object: Object) {
    match object {
        Object::Pool(o) => snapshot.pools.push(o),
        Object::BgpConfiguration(o) => snapshot.bgp_configurations.push(o),
        Object::BgpPeer(o) => snapshot.bgp_peers.push(o),
        Object::FelixConfiguration(o) => snapshot.felix_configurations.push(o),
        Object::NetworkPolicy(o) => snapshot.network_policies.push(o),
        Object::GlobalNetworkPolicy(o) => snapshot.global_network_policies.push(o),
        Object::Tier(o) => snapshot.tiers.push(o),
        Object::NetworkSet(o) => snapshot.network_sets.push(o),
        Object::GlobalNetworkSet(o) => snapshot.global_network_sets.push(o),
        Object::HostEndpoint(o) => snapshot.host_endpoints.push(o),
        Object::Block(o) => snapshot.blocks.push(o),
        Object::Node(o) => snapshot.nodes.push(o),
        Object::Pod(o) => snapshot.pods.push(o),
        Object::Namespace(o) => snapshot.namespaces.push(o),
        Object::Secret(o) => snapshot.secrets.push(o),
        Object::ServiceAccount(o) => snapshot.service_accounts.push(o),
        Object::EndpointSlice(o) => snapshot.endpoint_slices.push(o),
        Object::KubeNetworkPolicy(o) => snapshot.kube_network_policies.push(o),
        Object::ClusterNetworkPolicy(o) => snapshot.cluster_network_policies.push(o),
        Object::AdminNetworkPolicy(o) => snapshot.admin_network_policies.push(o),
        Object::BaselineAdminNetworkPolicy(o) => snapshot.baseline_admin_network_policies.push(o),
        Object::NodeStatus(node, status) => {
            snapshot.node_statuses.insert(node, status);
        }
    }
}

/// The engine's object for a manifest (NodeNetworks are the operator's output, not an input).
fn object(manifest: Manifest) -> Option<Object> {
    Some(match manifest {
        Manifest::IPPool(o) => Object::Pool(o),
        Manifest::BGPConfiguration(o) => Object::BgpConfiguration(o),
        Manifest::BGPPeer(o) => Object::BgpPeer(o),
        Manifest::FelixConfiguration(o) => Object::FelixConfiguration(o),
        Manifest::NetworkPolicy(o) => Object::NetworkPolicy(o),
        Manifest::GlobalNetworkPolicy(o) => Object::GlobalNetworkPolicy(o),
        Manifest::Tier(o) => Object::Tier(o),
        Manifest::NetworkSet(o) => Object::NetworkSet(o),
        Manifest::GlobalNetworkSet(o) => Object::GlobalNetworkSet(o),
        Manifest::HostEndpoint(o) => Object::HostEndpoint(o),
        Manifest::IPAMBlock(o) => Object::Block(o),
        Manifest::Node(o) => Object::Node(*o),
        Manifest::Pod(o) => Object::Pod(*o),
        Manifest::Namespace(o) => Object::Namespace(o),
        Manifest::Secret(o) => Object::Secret(o),
        Manifest::ServiceAccount(o) => Object::ServiceAccount(o),
        Manifest::EndpointSlice(o) => Object::EndpointSlice(*o),
        // The operator resolves `services` matches from EndpointSlices alone (as Felix does): a
        // Service object is accepted (the lab writes one next to its slice) and not read.
        Manifest::Service(_) => return None,
        Manifest::KubeNetworkPolicy(o) => Object::KubeNetworkPolicy(*o),
        Manifest::ClusterNetworkPolicy(o) => Object::ClusterNetworkPolicy(*o),
        Manifest::AdminNetworkPolicy(o) => Object::AdminNetworkPolicy(*o),
        Manifest::BaselineAdminNetworkPolicy(o) => Object::BaselineAdminNetworkPolicy(*o),
        Manifest::NodeNetwork(_) => return None,
    })
}

fn parse(file: &Path, text: &str, area: Area, problems: &mut Vec<String>) -> Vec<Object> {
    let mut objects = Vec::new();
    let documents = match read_documents(text) {
        Ok(documents) => documents,
        Err(e) => {
            let message = e.to_string();
            problems.push(format!("{}: {}", file.display(), message.lines().next().unwrap_or_default()));
            return objects;
        }
    };
    for document in documents {
        let mut problem = |message: String| problems.push(format!("{}:{}: {message}", file.display(), document.line));
        match area {
            Area::User => match validate_document(&document) {
                Ok(Manifest::NodeNetwork(_)) => {
                    problem("NodeNetworks are written by the operator: move this file out of the user area".into())
                }
                Ok(manifest) => objects.extend(object(manifest)),
                Err(found) => {
                    // A pool reaches the core even when invalid: it gets Allocatable=False with the
                    // reason in its status (the Kubernetes datastore does the same).
                    if let Ok(pool @ Manifest::IPPool(_)) = Manifest::from_document(&document) {
                        objects.extend(object(pool));
                    }
                    let label = object_label(&document);
                    for p in found {
                        let at = if p.path.is_empty() { String::new() } else { format!("{}: ", p.path) };
                        problem(format!("{label}: {at}{}", p.message));
                    }
                }
            },
            Area::Blocks | Area::Policies => match Manifest::from_document(&document) {
                Ok(
                    manifest @ (Manifest::IPAMBlock(_) | Manifest::NetworkPolicy(_) | Manifest::GlobalNetworkPolicy(_)),
                ) => objects.extend(object(manifest)),
                Ok(other) => problem(format!("unexpected {} in a generated directory: ignored", other.kind())),
                Err(e) => problem(e.to_string()),
            },
            Area::NodeStatus => match node_status(&document) {
                Ok((node, status)) => objects.push(Object::NodeStatus(node, status)),
                Err(message) => problem(message),
            },
            Area::Own => {}
        }
    }
    objects
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

#[cfg(test)]
mod tests;
