//! What the whole-system tests use: a lab guard that tears the lab down even when a test fails,
//! a lock so that only one lab test runs at a time, and a background ping that counts losses.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::datastore;
use crate::lab::{self, LabError, UpOptions};
use crate::scenario::{self, Scenario, ScenarioErrors};
use crate::state::{LabState, STATE_ROOT};

/// A test lab could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioErrors),
    /// The lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// The lock or a helper process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Holds the machine-wide lab lock: lab tests run one at a time (2 cores, shared names).
pub struct LabLock(#[allow(dead_code)] Flock<File>);

/// Takes the lab lock, waiting for other lab tests to finish.
pub fn lock() -> Result<LabLock, HarnessError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| HarnessError::Io { what, source }
    };
    std::fs::create_dir_all(STATE_ROOT).map_err(io("create /run/gingham-lab"))?;
    let file = File::create(Path::new(STATE_ROOT).join(".lock")).map_err(io("open the lab lock"))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| HarnessError::Io { what: "lock the lab lock".into(), source: errno.into() })?;
    Ok(LabLock(lock))
}

/// Parses scenario text, gives it `prefix` and brings the lab up; removes whatever was created when
/// that fails. Shared by the tests' [`LabGuard`] and the benchmarks.
pub fn up_scenario(
    text: &str,
    prefix: &str,
    bin_dir: &Path,
    topology_only: bool,
) -> Result<(Scenario, LabState), HarnessError> {
    let mut scenario = scenario::parse(text)?;
    scenario.prefix = prefix.to_string();
    let options = UpOptions {
        state_dir: None,
        bin_dir: bin_dir.to_path_buf(),
        topology_only,
        ready_timeout: Duration::from_secs(90),
    };
    match lab::up(&scenario, &options) {
        Ok(state) => Ok((scenario, state)),
        Err(e) => {
            let _ = lab::down(prefix, &LabState::default_dir(prefix));
            Err(e.into())
        }
    }
}

/// A running lab that is torn down when dropped, whatever happened.
pub struct LabGuard {
    /// The lab's state.
    pub state: LabState,
    /// The validated scenario it came from.
    pub scenario: Scenario,
    armed: bool,
    _lock: LabLock,
}

impl LabGuard {
    /// Brings up a lab from scenario text with its prefix replaced by `prefix` (unique per test).
    pub fn up(text: &str, prefix: &str, bin_dir: &Path, topology_only: bool) -> Result<Self, HarnessError> {
        let lock = lock()?;
        let (scenario, state) = up_scenario(text, prefix, bin_dir, topology_only)?;
        Ok(Self { state, scenario, armed: true, _lock: lock })
    }

    /// Keeps the lock but will not run `down` when dropped (for tests of `down` itself).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// The datastore directory.
    pub fn datastore(&self) -> PathBuf {
        self.state.datastore()
    }

    /// Applies manifest text (as `gingham-lab apply -f`) and waits until every node applied it.
    /// A Service also writes its EndpointSlices ([`crate::services`]).
    pub fn apply(&self, manifests: &str) -> Result<(), HarnessError> {
        for object in datastore::parse_manifests(manifests, "<test>").map_err(LabError::from)? {
            for slice in crate::services::derived(&self.state, &object).map_err(LabError::from)? {
                datastore::put(&self.datastore(), &slice).map_err(LabError::from)?;
            }
            datastore::put(&self.datastore(), &object).map_err(LabError::from)?;
        }
        self.converge()
    }

    /// Deletes the objects of manifest text (a Service with its EndpointSlices) and waits until
    /// every node applied the change.
    pub fn delete(&self, manifests: &str) -> Result<(), HarnessError> {
        for object in datastore::parse_manifests(manifests, "<test>").map_err(LabError::from)? {
            for slice in crate::services::derived(&self.state, &object).map_err(LabError::from)? {
                datastore::remove(&self.datastore(), &slice).map_err(LabError::from)?;
            }
            datastore::remove(&self.datastore(), &object).map_err(LabError::from)?;
        }
        self.converge()
    }

    /// Waits (up to 60 s) until the operator has reacted and every node applied its latest spec.
    pub fn converge(&self) -> Result<(), HarnessError> {
        // The operator polls the directory: give it a moment to write new generations.
        std::thread::sleep(Duration::from_millis(1500));
        lab::wait_converged(&self.state, Duration::from_secs(60))?;
        Ok(())
    }

    /// A pod's network namespace and address, by `namespace/name`.
    pub fn pod(&self, key: &str) -> (String, String) {
        let pod = self.state.pods.iter().find(|p| p.key() == key);
        let netns = pod.map(|p| p.netns.clone()).unwrap_or_default();
        let address = pod.and_then(|p| p.address.as_deref()).unwrap_or_default().split('/').next().unwrap_or_default();
        (netns, address.to_string())
    }

    /// A node's network namespace, by name.
    pub fn node_netns(&self, name: &str) -> String {
        self.state.node(name).map(|n| n.netns.clone()).unwrap_or_default()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if std::env::var_os("GINGHAM_LAB_KEEP").is_some() {
            eprintln!(
                "GINGHAM_LAB_KEEP set: lab {} left up; remove it with gingham-lab down --prefix {}",
                self.state.prefix, self.state.prefix
            );
            return;
        }
        if let Err(e) = lab::down(&self.state.prefix, &self.state.state_dir) {
            eprintln!("tearing down lab {}: {e}", self.state.prefix);
        }
    }
}

/// A `ping -i 0.01` running inside a namespace, counting what it sent and got back.
pub struct Pinger {
    child: Option<Child>,
}

/// What a [`Pinger`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingCount {
    /// Echo requests sent.
    pub sent: u64,
    /// Echo replies received.
    pub received: u64,
}

impl PingCount {
    /// Packets lost.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

impl Pinger {
    /// Starts pinging `address` every 10 ms from inside `netns`.
    pub fn start(netns: &str, address: &str) -> Result<Self, HarnessError> {
        Self::spawn(netns, &["-i", "0.01", "-W", "1", "-q", address])
    }

    /// Starts pinging `address` from inside `netns` every `interval` (at least 1 ms), for at most
    /// `limit`: ping itself stops after that time or that many packets, if [`Pinger::stop`] has
    /// not stopped it before.
    pub fn start_bounded(
        netns: &str,
        address: &str,
        interval: Duration,
        limit: Duration,
    ) -> Result<Self, HarnessError> {
        let millis = interval.as_millis().max(1);
        let count = (limit.as_millis() / millis).max(1).to_string();
        let (interval, deadline) = (format!("{:.3}", interval.as_secs_f64()), limit.as_secs().max(1).to_string());
        Self::spawn(netns, &["-i", &interval, "-c", &count, "-w", &deadline, "-W", "1", "-q", address])
    }

    fn spawn(netns: &str, args: &[&str]) -> Result<Self, HarnessError> {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "ping"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HarnessError::Io { what: format!("start ping in {netns}"), source })?;
        Ok(Self { child: Some(child) })
    }

    /// Stops the ping (SIGINT, so it prints its summary) and returns its counts.
    pub fn stop(mut self) -> Result<PingCount, HarnessError> {
        let Some(child) = self.child.take() else {
            return Ok(PingCount { sent: 0, received: 0 });
        };
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        let out = child.wait_with_output().map_err(io_error("wait for ping"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ping_summary(&text).ok_or_else(|| HarnessError::Io {
            what: format!("ping printed no summary: {text} {}", String::from_utf8_lossy(&out.stderr)),
            source: std::io::Error::other("no summary"),
        })
    }
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.to_string();
    move |source| HarnessError::Io { what, source }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `N packets transmitted, M received` from ping's summary.
pub fn parse_ping_summary(text: &str) -> Option<PingCount> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line.split(',').filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    Some(PingCount { sent: numbers.next()?, received: numbers.next()? })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    #[test]
    fn ping_summaries_are_read() {
        let text = "--- 10.0.0.1 ping statistics ---\n512 packets transmitted, 498 received, +3 errors, 2.7% packet loss, time 5120ms\n";
        let count = super::parse_ping_summary(text).unwrap();
        assert_eq!((count.sent, count.received, count.lost()), (512, 498, 14));
        assert!(super::parse_ping_summary("nothing").is_none());
    }
}
