//! Crash-safe file replacement: write a hidden temporary file next to the target, fsync it, rename
//! it into place and fsync the directory, so a reader (or a restart after a crash) sees either the
//! old content or the new one, never half a file. Every file gets the mode its caller names,
//! whatever the umask or a temporary left by a crash. The operator, the agent, the lab and the CLI
//! all write datastore files through [`write_atomic`].

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file only root may read or write.
pub const PRIVATE_FILE: u32 = 0o600;
/// A directory only root may enter.
pub const PRIVATE_DIR: u32 = 0o700;
/// A file every local user may read (nothing secret, read by other tools).
pub const PUBLIC_FILE: u32 = 0o644;
/// The directory of a public file.
pub const PUBLIC_DIR: u32 = 0o755;

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

/// Replaces `path` with `content`, with mode `mode`: `.name.tmp` + fsync + rename + fsync of the
/// directory. A missing directory is created 0700 for a private file (`mode` grants nothing to
/// group and others), 0755 otherwise.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let fail = |step: &'static str| move |source| AtomicWriteError { path: path.to_path_buf(), step, source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    let dir_mode = if mode & 0o077 == 0 { PRIVATE_DIR } else { PUBLIC_DIR };
    DirBuilder::new().recursive(true).mode(dir_mode).create(dir).map_err(fail("create directory"))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .map_err(fail("create temporary"))?;
    // `mode` above applies to a new file only, and through the umask: set it exactly.
    file.set_permissions(Permissions::from_mode(mode)).map_err(fail("set the mode of the temporary"))?;
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
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// The mode is the caller's, whatever an earlier file or a crashed write's temporary had.
    #[test]
    fn files_get_exactly_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        for (name, mode, dir_mode) in [("private/bird.conf", 0o600, 0o700), ("public/node.yaml", 0o644, 0o755)] {
            let path = dir.path().join(name);
            let parent = path.parent().unwrap();
            let temp = parent.join(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
            write_atomic(&path, b"one", 0o666).unwrap();
            fs::write(&temp, b"left by a crash").unwrap();
            fs::set_permissions(&temp, Permissions::from_mode(0o666)).unwrap();
            write_atomic(&path, b"two", mode).unwrap();
            assert_eq!(mode_of(&path), mode, "{name}");
            fs::remove_dir_all(parent).unwrap();
            write_atomic(&path, b"three", mode).unwrap();
            assert_eq!(mode_of(parent), dir_mode, "a missing directory of {name}");
        }
    }
}
