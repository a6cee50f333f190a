//! Crash-safe file replacement: write a hidden temporary file next to the target, fsync it, rename
//! it into place and fsync the directory, so a reader (or a restart after a crash) sees either the
//! old content or the new one, never half a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writing a file atomically failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} atomically ({step}): {source}; check that the directory exists and is writable")]
pub struct AtomicWriteError {
    /// The file being written.
    pub path: PathBuf,
    /// Which step failed.
    pub step: &'static str,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `content`: `.name.tmp` + fsync + rename + fsync of the directory.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), AtomicWriteError> {
    let fail = |step: &'static str| move |source| AtomicWriteError { path: path.to_path_buf(), step, source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    fs::create_dir_all(dir).map_err(fail("create directory"))?;
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(fail("create temporary"))?;
    file.write_all(content).map_err(fail("write temporary"))?;
    file.sync_all().map_err(fail("fsync temporary"))?;
    drop(file);
    fs::rename(&temp, path).map_err(fail("rename"))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail("fsync directory"))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
