//! Leadership over a file datastore: an exclusive `flock` on [`LEADER_LOCK`] in the directory. The
//! kernel releases the lock when its holder exits, however it exits (SIGKILL too), so a waiting
//! replica leads at once, with no lease to expire. The replicas must share the directory on one
//! host's file system (flock does not hold across NFS), which is what the file datastore is for:
//! the lab, and tests.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Duration;

use gingham_datastore::layout::LEADER_LOCK;
use tokio::sync::watch;

use super::{LeaderError, Leading};

/// How often the holder checks whether anyone still listens (it releases the lock when nobody does).
const LISTEN_CHECK: Duration = Duration::from_millis(200);

/// Contends for the lock of the datastore in `dir`: the returned [`Leading`] is true once this
/// replica holds it (at once, when nobody else does). A thread holds the lock, or waits for it,
/// until the process exits or every [`Leading`] of this call is dropped.
pub fn contend(dir: &Path) -> Result<Leading, LeaderError> {
    let path = dir.join(LEADER_LOCK);
    let error = |source| LeaderError::LockFile { path: path.clone(), source };
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(error)?;
    let held = match file.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) => false,
        Err(TryLockError::Error(source)) => return Err(error(source)),
    };
    let (sender, leading) = watch::channel(held);
    let lock = path.display().to_string();
    std::thread::Builder::new().name("leader-lock".into()).spawn(move || hold(&file, &lock, &sender)).map_err(error)?;
    Ok(leading)
}

/// Waits for the lock unless it is held already, says so, and keeps it while anyone listens.
fn hold(file: &File, lock: &str, sender: &watch::Sender<bool>) {
    if !*sender.borrow() {
        tracing::info!(lock, "another replica leads; serving the stream and waiting for its lock");
        if let Err(error) = file.lock() {
            tracing::error!(lock, %error, "cannot lock; this replica never writes");
            return;
        }
        sender.send_replace(true);
    }
    tracing::info!(lock, "leading: this replica writes");
    while !sender.is_closed() {
        std::thread::park_timeout(LISTEN_CHECK);
    }
    // Closing the file releases the lock.
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_replica_leads_and_another_takes_over_the_moment_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let first = contend(dir.path()).unwrap();
        assert!(*first.borrow(), "a lock nobody holds is taken at once");
        let within = Duration::from_secs(5);
        let mut second = contend(dir.path()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!*second.borrow(), "one leader at a time");
        drop(first);
        tokio::time::timeout(within, second.wait_for(|leading| *leading)).await.unwrap().unwrap();
        let hidden = dir.path().join(LEADER_LOCK).file_name().unwrap().to_string_lossy().starts_with('.');
        assert!(hidden, "readers skip the lock file");
    }

    #[test]
    fn a_directory_that_cannot_hold_the_lock_is_named() {
        let error = contend(Path::new("/nonexistent/gingham")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/gingham/.operator-leader.lock"), "{error}");
        assert_eq!(error.label(), "leader_lock");
    }
}
