//! The IPAM lock: an exclusive `flock` on a 0600 file, waited for at most [`LOCK_TIMEOUT`], so
//! that a holder that never lets go (a hung process, or anyone who could open the file) makes
//! IPAM calls fail with a clear error instead of hanging them.
//!
//! `flock` cannot be waited for with a timeout, so it is polled. Polling alone is unfair: under
//! twenty concurrent ADDs a poller that sleeps keeps missing the moments the lock is free, and
//! one was starved past the timeout in a test. So callers of one store first queue at a [`Gate`]
//! (first come, first served, and woken as soon as the one before is done); only the thread at
//! the head of the queue polls the `flock`, which then only another process can hold.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, Permissions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::IpamError;
use crate::private_files::PRIVATE_FILE;

/// How long an IPAM call waits for the lock. An operation holds it for a read, a write and two
/// fsyncs (milliseconds), so only a stuck or hostile holder makes anyone wait this long.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest pause between two attempts at the `flock`.
const MAX_POLL: Duration = Duration::from_millis(10);

/// Lets the threads of this process at the lock file one at a time, in the order they came.
#[derive(Debug, Default)]
pub(super) struct Gate {
    queue: Mutex<Queue>,
    turn: Condvar,
}

/// A ticket queue: `serving` is the ticket whose turn it is.
#[derive(Debug, Default)]
struct Queue {
    next: u64,
    serving: u64,
    /// Tickets whose holders timed out before their turn: skipped.
    abandoned: BTreeSet<u64>,
}

impl Gate {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `deadline` for the turn of a new ticket; returns whether it came.
    fn enter(&self, deadline: Instant) -> bool {
        let mut queue = self.queue();
        let ticket = queue.next;
        queue.next += 1;
        let wait = deadline.saturating_duration_since(Instant::now());
        let (mut queue, _) =
            self.turn.wait_timeout_while(queue, wait, |q| q.serving != ticket).unwrap_or_else(PoisonError::into_inner);
        if queue.serving == ticket {
            return true;
        }
        queue.abandoned.insert(ticket);
        false
    }

    /// Ends the current turn and wakes the next ticket still waiting.
    fn leave(&self) {
        let mut queue = self.queue();
        queue.serving += 1;
        while let Some(ticket) = queue.abandoned.first().copied().filter(|t| *t <= queue.serving) {
            queue.abandoned.remove(&ticket);
            if ticket == queue.serving {
                queue.serving += 1;
            }
        }
        drop(queue);
        self.turn.notify_all();
    }
}

/// The lock, held until dropped.
#[derive(Debug)]
pub(super) struct Held<'a> {
    file: Option<File>,
    gate: &'a Gate,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // The `flock` goes with the file, before the next waiter is woken.
        drop(self.file.take());
        self.gate.leave();
    }
}

/// Passes `gate`, then opens (creating with mode 0600) and exclusively locks `path`, all within
/// `timeout`.
pub(super) fn acquire<'a>(gate: &'a Gate, path: &Path, timeout: Duration) -> Result<Held<'a>, IpamError> {
    let io = |source| IpamError::Io { path: path.to_path_buf(), source };
    let deadline = Instant::now() + timeout;
    let open = || -> Result<File, IpamError> {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).mode(PRIVATE_FILE).open(path).map_err(io)?;
        if file.metadata().map_err(io)?.mode() & 0o077 != 0 {
            file.set_permissions(Permissions::from_mode(PRIVATE_FILE)).map_err(io)?;
        }
        Ok(file)
    };
    let timed_out = |file: &File| IpamError::LockTimeout {
        path: path.to_path_buf(),
        waited: timeout,
        holder: holder(file).unwrap_or_else(|| "a process not visible from here".to_string()),
    };
    if !gate.enter(deadline) {
        return Err(timed_out(&open()?));
    }
    // From here on the turn is ours; `held` ends it whatever happens.
    let mut held = Held { file: None, gate };
    let file = open()?;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => {
                held.file = Some(file);
                return Ok(held);
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
            Err(TryLockError::WouldBlock) if Instant::now() >= deadline => return Err(timed_out(&file)),
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
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fe:00:5906681 0 EOF`; waiters have `->` after the number.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, _, pid, file, ..] = fields.as_slice() else { return None };
        (*file == wanted).then(|| pid.to_string())
    })?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().next().map(String::from)))
        .unwrap_or_else(|| "?".to_string());
    Some(format!("pid {pid} ({}, uid {uid})", command.trim()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A waiter that gave up does not hold up the ones behind it, and turns go in arrival order.
    #[test]
    fn turns_go_in_order_and_skip_waiters_that_gave_up() {
        let gate = Arc::new(Gate::default());
        let soon = |ms| Instant::now() + Duration::from_millis(ms);
        assert!(gate.enter(soon(0)), "the first comer's turn is at once");
        assert!(!gate.enter(soon(20)), "the second gives up while the first holds the turn");
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiters: Vec<_> = (0..3)
            .map(|index| {
                let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
                let waiter = std::thread::spawn(move || {
                    assert!(gate.enter(soon(5000)), "waiter {index} got no turn");
                    order.lock().unwrap().push(index);
                    gate.leave();
                });
                // Let each queue up before the next arrives.
                std::thread::sleep(Duration::from_millis(30));
                waiter
            })
            .collect();
        gate.leave();
        waiters.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert!(gate.enter(soon(0)), "the gate is free again");
    }
}
