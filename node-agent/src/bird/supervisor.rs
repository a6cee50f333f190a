//! BIRD as a supervised process: `bird -f -c <conf> -s <socket> -P <pidfile>`, restarted with
//! exponential backoff when it exits; configs are checked before they replace the running one.
//!
//! A BIRD is either our child or *adopted*: one that an earlier incarnation of the agent started
//! (found through our PID file, checked to be a BIRD on our control socket) and that still answers
//! when the agent starts again, e.g. after the agent was killed. An adopted BIRD keeps running,
//! with its sessions and routes, and is reconfigured and supervised like a child; it is polled by
//! PID since it is not ours to wait for.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::config::{BirdConfig, LeftOut};
use super::render::render_config;
use super::screen::screen;
use super::{BirdError, BirdPaths};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// BIRD counts as healthy again (its backoff resets) after running this long.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long a BIRD of ours that does not answer yet (it may be starting) is given before it is
/// stopped and replaced.
const ANSWER_GRACE: Duration = Duration::from_secs(3);

/// Runs and reloads one BIRD.
#[derive(Debug)]
pub struct BirdSupervisor {
    paths: BirdPaths,
    child: Option<Child>,
    adopted: Option<u32>,
    backoff: Duration,
    next_start: Instant,
    started_at: Instant,
    restarts: u32,
    last_exit: Option<String>,
    /// The last config screened: its full render, the text BIRD accepted, the sessions left out.
    screened: Option<(String, String, Vec<LeftOut>)>,
}

impl BirdSupervisor {
    /// A supervisor for `paths`; with the first config it adopts the BIRD an earlier agent left
    /// running on the same directory, or starts one.
    pub fn new(paths: BirdPaths) -> Self {
        Self {
            paths,
            child: None,
            adopted: None,
            backoff: FIRST_BACKOFF,
            next_start: Instant::now(),
            started_at: Instant::now(),
            restarts: 0,
            last_exit: None,
            screened: None,
        }
    }

    /// The files and programs.
    pub fn paths(&self) -> &BirdPaths {
        &self.paths
    }

    /// BIRD's process id while it runs (our child's, or the adopted one's).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id).or(self.adopted)
    }

    /// Whether the running BIRD was adopted from an earlier agent rather than started by this one.
    pub fn is_adopted(&self) -> bool {
        self.adopted.is_some()
    }

    /// How often BIRD was restarted after exiting, and how it last exited.
    pub fn restarts(&self) -> (u32, Option<&str>) {
        (self.restarts, self.last_exit.as_deref())
    }

    fn running(&self) -> bool {
        self.child.is_some() || self.adopted.is_some()
    }

    /// Makes `text` BIRD's config. An unchanged config does nothing; a config BIRD rejects leaves
    /// the working one in place and is returned as an error. When no BIRD runs yet, one left by an
    /// earlier agent is adopted (and reconfigured) if it answers; otherwise one is started.
    /// Returns whether BIRD's config changed (its sessions may have).
    pub async fn apply(&mut self, text: &str) -> Result<bool, BirdError> {
        // After an exit, `poll` restarts BIRD when its backoff has passed.
        let restarting = !self.running() && self.last_exit.is_some();
        let adopted = !self.running() && !restarting && self.adopt().await;
        self.paths.restrict()?;
        let current = tokio::fs::read_to_string(self.paths.config()).await.ok();
        if current.as_deref() == Some(text) && !adopted && (self.running() || restarting) {
            return Ok(false);
        }
        let candidate = self.paths.candidate();
        self.paths.write_candidate(text)?;
        if self.running() {
            self.paths.configure_check(&candidate).await?;
        } else {
            self.paths.parse_only(&candidate).await?;
        }
        tokio::fs::rename(&candidate, self.paths.config())
            .await
            .map_err(|source| BirdError::Io { path: self.paths.config(), source })?;
        if self.running() {
            let output = self.paths.birdc(&["configure"]).await?;
            tracing::info!(output = %output.trim(), "BIRD reconfigured");
        } else if !restarting {
            self.start()?;
        }
        Ok(true)
    }

    /// Makes `config` BIRD's config, leaving out every session BIRD rejects (`bird -p`; see
    /// [`screen`]), so one bad session never keeps the others, or BIRD itself, from running.
    /// Returns the sessions left out and what [`BirdSupervisor::apply`] did with the rest. An
    /// unchanged config is not screened again.
    pub async fn apply_config(&mut self, mut config: BirdConfig) -> (Vec<LeftOut>, Result<bool, BirdError>) {
        let full = render_config(&config).text;
        let (text, left_out) = match self.screened.take() {
            Some((previous, text, left_out)) if previous == full => (text, left_out),
            _ => match screen(&self.paths, &mut config).await {
                Ok((text, left_out)) => (text, left_out),
                Err(error) => return (Vec::new(), Err(error)),
            },
        };
        let outcome = self.apply(&text).await;
        self.screened = Some((full, text, left_out.clone()));
        (left_out, outcome)
    }

    /// Looks for a BIRD an earlier agent left on our directory. One that is ours (by PID file or
    /// command line) and answers is adopted; one that is ours but does not answer is stopped; one
    /// that answers on our socket but whose process cannot be identified is asked to shut down
    /// (it would hold the BGP port). Returns whether a BIRD was adopted.
    async fn adopt(&mut self) -> bool {
        let pid = self.paths.find_ours();
        let mut answers = self.paths.answers().await;
        if let Some(pid) = pid {
            let deadline = Instant::now() + ANSWER_GRACE;
            while !answers && Instant::now() < deadline && self.paths.is_ours(pid) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                answers = self.paths.answers().await;
            }
        }
        match (pid, answers) {
            (Some(pid), true) if self.paths.is_ours(pid) => {
                tracing::info!(pid, socket = %self.paths.socket().display(), "adopting the BIRD an earlier agent started; its sessions and routes stay");
                self.adopted = Some(pid);
                self.started_at = Instant::now();
                true
            }
            (Some(pid), _) => {
                tracing::warn!(
                    pid,
                    "the BIRD an earlier agent started does not answer on its control socket; stopping it"
                );
                if !self.paths.terminate(pid).await {
                    tracing::warn!(pid, "the earlier BIRD did not stop");
                }
                false
            }
            (None, true) => {
                tracing::warn!(socket = %self.paths.socket().display(), "a BIRD answers on our control socket but is not one this agent started; shutting it down");
                if let Err(error) = self.paths.birdc(&["down"]).await {
                    tracing::warn!(%error, "cannot shut down the unknown BIRD");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                false
            }
            (None, false) => false,
        }
    }

    /// Notices an exited BIRD and restarts it when its backoff has passed. Returns an error
    /// describing the exit (once per exit).
    pub fn poll(&mut self) -> Result<(), BirdError> {
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(None) => return Ok(()),
                Ok(Some(status)) => {
                    self.child = None;
                    return Err(self.exited(&format!("BIRD exited ({status})")));
                }
                Err(source) => return Err(BirdError::Io { path: self.paths.socket(), source }),
            }
        }
        if let Some(pid) = self.adopted {
            if self.paths.is_ours(pid) {
                return Ok(());
            }
            self.adopted = None;
            return Err(self.exited(&format!("the adopted BIRD (pid {pid}) exited")));
        }
        if self.last_exit.is_some() && Instant::now() >= self.next_start && self.paths.config().exists() {
            self.restarts += 1;
            self.start()?;
        }
        Ok(())
    }

    /// Records an exit and schedules the restart after the backoff.
    fn exited(&mut self, what: &str) -> BirdError {
        self.next_start = Instant::now() + self.backoff;
        let message = format!("{what}; restarting in {:?}", self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.last_exit = Some(message.clone());
        BirdError::Exited { message }
    }

    /// Stops BIRD (kernel routes stay: the kernel protocol is `persist`).
    pub async fn stop(&mut self) {
        self.last_exit = None;
        if let Some(mut child) = self.child.take() {
            if let Err(error) = self.paths.birdc(&["down"]).await {
                tracing::warn!(%error, "asking BIRD to shut down failed; killing it");
                let _ = child.start_kill();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        if let Some(pid) = self.adopted.take() {
            let down = self.paths.birdc(&["down"]).await;
            if down.is_err() || !self.paths.wait_gone(pid, Duration::from_secs(5)).await {
                tracing::warn!(pid, "the adopted BIRD did not shut down when asked; terminating it");
                self.paths.terminate(pid).await;
            }
        }
    }

    /// Starts BIRD. After an exit, or when an earlier BIRD left its PID file behind (it did not
    /// shut down cleanly), it starts in graceful-restart recovery (`-R`): the kernel routes it
    /// left (`persist`) stay until its sessions have converged again, and peers keep its routes
    /// meanwhile (BGP graceful restart).
    fn start(&mut self) -> Result<(), BirdError> {
        let recovering = self.last_exit.is_some() || self.paths.pid_file().exists();
        let mut command = self.paths.bird_command()?;
        command
            .arg("-f")
            .arg("-c")
            .arg(self.paths.config())
            .arg("-s")
            .arg(self.paths.socket())
            .arg("-P")
            .arg(self.paths.pid_file());
        if recovering {
            command.arg("-R");
        }
        command.stdin(Stdio::null()).kill_on_drop(false);
        let child =
            command.spawn().map_err(|source| BirdError::Spawn { program: self.paths.bird.join(" "), source })?;
        tracing::info!(pid = child.id(), recovering, config = %self.paths.config().display(), "BIRD started");
        self.child = Some(child);
        self.started_at = Instant::now();
        Ok(())
    }

    /// Resets the backoff once BIRD has run for a while.
    pub fn settle(&mut self) {
        if self.running() && self.started_at.elapsed() >= HEALTHY_AFTER {
            self.backoff = FIRST_BACKOFF;
        }
    }
}
