//! The IPAM lock: an exclusive `flock` on a 0600 file, taken by polling for at most
//! [`LOCK_TIMEOUT`], so that a holder that never lets go (a hung process, or anyone who could
//! open the file) makes IPAM calls fail with a clear error instead of hanging them.

use std::fs::{File, OpenOptions, Permissions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::IpamError;
use crate::private_files::PRIVATE_FILE;

/// How long an IPAM call waits for the lock. An operation holds it for a read, a write and two
/// fsyncs (milliseconds), so only a stuck or hostile holder makes anyone wait this long.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest pause between two attempts.
const MAX_POLL: Duration = Duration::from_millis(20);

/// Opens (creating with mode 0600) and exclusively locks `path`, waiting at most `timeout`.
pub(super) fn acquire(path: &Path, timeout: Duration) -> Result<File, IpamError> {
    let io = |source| IpamError::Io { path: path.to_path_buf(), source };
    let file = OpenOptions::new().create(true).truncate(false).write(true).mode(PRIVATE_FILE).open(path).map_err(io)?;
    if file.metadata().map_err(io)?.mode() & 0o077 != 0 {
        file.set_permissions(Permissions::from_mode(PRIVATE_FILE)).map_err(io)?;
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::Error(source)) => return Err(io(source)),
            Err(TryLockError::WouldBlock) if started.elapsed() >= timeout => {
                return Err(IpamError::LockTimeout {
                    path: path.to_path_buf(),
                    waited: timeout,
                    holder: holder(&file).unwrap_or_else(|| "a process not visible from here".to_string()),
                });
            }
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_POLL);
            }
        }
    }
}

/// Who holds the `flock` on `file`, from `/proc/locks`: "pid N (command, uid U)".
fn holder(file: &File) -> Option<String> {
    let meta = file.metadata().ok()?;
    let (major, minor) = (nix::sys::stat::major(meta.dev()), nix::sys::stat::minor(meta.dev()));
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let pid = locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fe:00:5906681 0 EOF`; waiters have `->` after the number.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, _, pid, file, ..] = fields.as_slice() else { return None };
        (*file == wanted).then(|| pid.to_string())
    })?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:").and_then(|u| u.split_whitespace().next().map(String::from)))
        })
        .unwrap_or_else(|| "?".to_string());
    Some(format!("pid {pid} ({}, uid {uid})", command.trim()))
}
