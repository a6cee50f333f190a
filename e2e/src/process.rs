//! Processes the lab starts (operator, agents, pod servers): detached, in their own process
//! group, logged to a file, and stopped only by the PID recorded when they were started.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd::describe;
use crate::state::ProcessRecord;

/// A process could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {name} (`{command}`, log {log}): {source}")]
pub struct SpawnError {
    /// What it is.
    pub name: String,
    /// The command line.
    pub command: String,
    /// The log file.
    pub log: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// The start time of a process in clock ticks (`/proc/PID/stat` field 22), if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its closing ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Starts a process detached from the terminal, in its own process group, with stdout and
/// stderr appended to `log`.
pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<ProcessRecord, SpawnError> {
    let line = describe(command);
    let error =
        |source| SpawnError { name: name.into(), command: line.clone(), log: log.display().to_string(), source };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let out = File::options().create(true).append(true).open(log).map_err(error)?;
    let err = out.try_clone().map_err(error)?;
    command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    let child = command.spawn().map_err(error)?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    // The child is reaped by init once the lab command exits; dropping the handle does not kill it.
    drop(child);
    Ok(ProcessRecord { name: name.into(), pid, start_time: start_time(pid).unwrap_or(0) })
}

/// The process is still the one that was started (same PID and start time) and has not exited.
pub fn is_running(record: &ProcessRecord) -> bool {
    match start_time(record.pid) {
        Some(t) => (record.start_time == 0 || t == record.start_time) && !is_zombie(record.pid),
        None => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Reaps a child of this process without blocking, if it has exited.
fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

/// Sends a signal to the process group the lab started, only if it is still that process.
pub fn signal(record: &ProcessRecord, sig: Signal) -> bool {
    if !is_running(record) {
        return false;
    }
    // The group first (the agent's BIRD shares it), then the process in case it left the group.
    let group = kill(Pid::from_raw(-record.pid), sig).is_ok();
    kill(Pid::from_raw(record.pid), sig).is_ok() || group
}

/// Stops a process the lab started: SIGTERM, then SIGKILL after `grace`. Returns once it is gone.
pub fn stop(record: &ProcessRecord, grace: Duration) {
    if !signal(record, Signal::SIGTERM) {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(record.pid);
        if !is_running(record) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(record, Signal::SIGKILL);
    for _ in 0..40 {
        reap(record.pid);
        if !is_running(record) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
