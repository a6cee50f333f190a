//! Finding manifest files: a file as given, or a directory searched recursively for `*.yaml` and
//! `*.yml`, skipping names that start with `.` (writers' temporary files).

use std::path::{Path, PathBuf};

/// A path could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum YamlFilesError {
    /// Reading a directory or a file's metadata failed.
    #[error("cannot read {path}: {source} (check that it exists and is readable)")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl YamlFilesError {
    /// A stable short label for metrics and tests.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
        }
    }
}

/// Whether a file name is a manifest a reader should look at.
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Every manifest file under `path` (or `path` itself when it is a file), sorted.
pub fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, YamlFilesError> {
    let io = |source| YamlFilesError::Io { path: path.to_path_buf(), source };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path).map_err(io)?.collect::<Result<Vec<_>, _>>().map_err(io)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = entry.path();
        let is_dir = entry.file_type().map_err(io)?.is_dir();
        if is_dir && !name.starts_with('.') {
            files.extend(yaml_files(&child)?);
        } else if !is_dir && is_manifest_name(&name) {
            files.push(child);
        }
    }
    Ok(files)
}
