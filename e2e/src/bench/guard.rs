//! Cleanup that survives failures and Ctrl-C: a flag set by SIGINT/SIGTERM that benchmarks check
//! between samples, and a lab whose namespaces (all named `ghb<pid><letter>-...`) and processes
//! are removed when it is dropped.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::BenchError;
use crate::lab;
use crate::state::{LabState, STATE_ROOT};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set the interrupted flag instead of killing the process, so that
/// every guard's `Drop` runs.
pub fn install_interrupt_handler() -> Result<(), BenchError> {
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }
            .map_err(|e| BenchError::Failed(format!("install a {signal} handler: {e}")))?;
    }
    Ok(())
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once Ctrl-C arrived: call between samples.
pub fn check() -> Result<(), BenchError> {
    if interrupted() { Err(BenchError::Interrupted) } else { Ok(()) }
}

/// Sleeps, waking early on Ctrl-C.
pub fn sleep(duration: Duration) -> Result<(), BenchError> {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        check()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Polls `condition` every `every` until it holds (returning the elapsed time) or `timeout`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    loop {
        if condition() {
            return Ok(start.elapsed());
        }
        check()?;
        if start.elapsed() > timeout {
            return Err(BenchError::Failed(format!("timed out after {}s waiting for {what}", timeout.as_secs())));
        }
        std::thread::sleep(every);
    }
}

/// The lab lock, when it could be taken.
pub struct LockHold {
    _lock: Option<Flock<File>>,
}

/// Takes the machine-wide lab lock (so that lab tests do not run beside the benchmark), waiting up
/// to `patience`; after that the benchmark runs anyway and says so.
pub fn lab_lock(patience: Duration) -> Result<LockHold, BenchError> {
    std::fs::create_dir_all(STATE_ROOT).map_err(BenchError::io("create /run/gingham-lab"))?;
    let path = Path::new(STATE_ROOT).join(".lock");
    let start = Instant::now();
    loop {
        let file = File::create(&path).map_err(BenchError::io("open the lab lock"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(LockHold { _lock: Some(lock) }),
            Err(_) if start.elapsed() < patience => sleep(Duration::from_millis(500))?,
            Err(_) => {
                eprintln!("the lab lock is still held after {}s: running beside other lab tests", patience.as_secs());
                return Ok(LockHold { _lock: None });
            }
        }
    }
}

/// A unique lab prefix for this process: `ghb<pid mod 1000><letter>`.
pub fn prefix(letter: char) -> String {
    format!("ghb{}{letter}", std::process::id() % 1000)
}

/// A running lab, removed (processes by PID, namespaces by prefix) when dropped.
pub struct BenchLab {
    /// The lab's state.
    pub state: LabState,
}

impl BenchLab {
    /// Brings a lab up from scenario text under `prefix`; removes it again if that fails.
    pub fn up(text: &str, prefix: &str, bin_dir: &Path, topology_only: bool) -> Result<Self, BenchError> {
        check()?;
        let (_, state) = crate::harness::up_scenario(text, prefix, bin_dir, topology_only)?;
        Ok(Self { state })
    }

    /// A scratch namespace name inside this lab (removed with it).
    pub fn scratch(&self, name: &str) -> String {
        format!("{}-x-{name}", self.state.prefix)
    }
}

impl Drop for BenchLab {
    fn drop(&mut self) {
        let result = lab::down(&self.state.prefix, &self.state.state_dir);
        // What the benchmarks themselves wrote there (host-local's data, staged blocks, batch files).
        let _ = std::fs::remove_dir_all(&self.state.state_dir);
        match result {
            Ok(report) => eprintln!(
                "removed lab {}: {} namespaces, {} processes",
                self.state.prefix,
                report.namespaces.len(),
                report.processes
            ),
            Err(e) => eprintln!(
                "removing lab {}: {e}; run gingham-lab down --prefix {}",
                self.state.prefix, self.state.prefix
            ),
        }
    }
}
