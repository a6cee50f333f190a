//! The modes of what the agent keeps on disk. Its state (the IPAM table and lock, BIRD's config
//! with BGP passwords) is root's alone: directories 0700, files 0600, also when an older version
//! or an administrator left them looser (they are tightened, and the tightening is logged).
//! Files that other tools read (the file datastore's status) are 0644, and say so where written.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

pub use gingham_datastore::atomic::{PRIVATE_DIR, PRIVATE_FILE};

/// Creates `dir` with mode 0700 (missing parents too), or tightens an existing one to 0700.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(PRIVATE_DIR).create(dir)
        }
        Err(e) => Err(e),
        Ok(meta) if !meta.is_dir() => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a directory; move it away"))
        }
        Ok(_) => restrict(dir, PRIVATE_DIR),
    }
}

/// Tightens `path` to `mode` when it grants more than `mode` (a missing file is left alone);
/// logs what it changed. Symbolic links are not followed.
pub fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Ok(()),
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = meta.permissions().mode() & 0o7777;
    if current & !mode == 0 {
        return Ok(());
    }
    fs::set_permissions(path, Permissions::from_mode(mode))?;
    tracing::info!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "tightened the mode of agent state");
    Ok(())
}

/// Tightens every regular file directly in `dir` to 0600 (a directory the agent owns).
pub fn restrict_files_in(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            restrict(&entry.path(), PRIVATE_FILE)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directories_are_created_or_tightened_to_0700_and_files_to_0600() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        ensure_private_dir(&fresh).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&fresh)), (PRIVATE_DIR, PRIVATE_DIR));

        let loose = root.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, Permissions::from_mode(0o777)).unwrap();
        fs::write(loose.join("table"), "x").unwrap();
        fs::set_permissions(loose.join("table"), Permissions::from_mode(0o666)).unwrap();
        ensure_private_dir(&loose).unwrap();
        restrict_files_in(&loose).unwrap();
        assert_eq!((mode(&loose), mode(&loose.join("table"))), (PRIVATE_DIR, PRIVATE_FILE));

        // Stricter than asked stays as it is.
        fs::set_permissions(loose.join("table"), Permissions::from_mode(0o400)).unwrap();
        restrict(&loose.join("table"), PRIVATE_FILE).unwrap();
        assert_eq!(mode(&loose.join("table")), 0o400);

        let file = root.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(ensure_private_dir(&file).is_err(), "a file is not taken for a directory");
    }
}
