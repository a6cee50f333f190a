//! Reading a file datastore directory: the users' objects, blocks and statuses through the
//! operator's own reader (so the CLI sees what the operator sees), plus the generated NodeNetworks.

use std::path::Path;

use gingham_crds::manifest::{Manifest, read_documents, read_manifest_file};
use gingham_datastore::files::{YamlFilesError, yaml_files};
use gingham_datastore::layout::NODE_NETWORKS;
use gingham_operator::datastore::file::read::Reader;

use super::{ClusterView, SourceError};

/// Reads `dir` once.
pub(super) fn load(dir: &Path) -> Result<ClusterView, SourceError> {
    let outcome = Reader::new(dir).read().map_err(|source| SourceError::File { dir: dir.to_path_buf(), source })?;
    let mut view = ClusterView { snapshot: outcome.snapshot, problems: outcome.problems, ..ClusterView::default() };
    let generated = dir.join(NODE_NETWORKS);
    let files = match yaml_files(&generated) {
        Ok(files) => files,
        // No NodeNetworks yet: the operator has not run.
        Err(YamlFilesError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            view.problems.push(e.to_string());
            Vec::new()
        }
    };
    for path in files {
        let documents = read_manifest_file(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| read_documents(&text).map_err(|e| e.to_string()));
        let documents = match documents {
            Ok(documents) => documents,
            Err(problem) => {
                view.problems.push(format!("{}: {problem}", path.display()));
                continue;
            }
        };
        for document in documents {
            match Manifest::from_document(&document) {
                Ok(Manifest::NodeNetwork(network)) => {
                    let name = network.metadata.name.clone().unwrap_or_default();
                    view.node_networks.insert(name, network);
                }
                Ok(other) => view.problems.push(format!("{}: a {} among NodeNetworks", path.display(), other.kind())),
                Err(e) => view.problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    Ok(view)
}
