//! BIRD as a supervised child: `bird -f -c <conf> -s <socket>`, restarted with exponential backoff
//! when it exits; configs are checked before they replace the running one.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::{BirdError, BirdPaths};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// BIRD counts as healthy again (its backoff resets) after running this long.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Runs and reloads one BIRD.
#[derive(Debug)]
pub struct BirdSupervisor {
    paths: BirdPaths,
    child: Option<Child>,
    backoff: Duration,
    next_start: Instant,
    started_at: Instant,
    restarts: u32,
    last_exit: Option<String>,
}

impl BirdSupervisor {
    /// A supervisor for `paths`; BIRD starts with the first config.
    pub fn new(paths: BirdPaths) -> Self {
        Self {
            paths,
            child: None,
            backoff: FIRST_BACKOFF,
            next_start: Instant::now(),
            started_at: Instant::now(),
            restarts: 0,
            last_exit: None,
        }
    }

    /// The files and programs.
    pub fn paths(&self) -> &BirdPaths {
        &self.paths
    }

    /// BIRD's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// How often BIRD was restarted after exiting, and how it last exited.
    pub fn restarts(&self) -> (u32, Option<&str>) {
        (self.restarts, self.last_exit.as_deref())
    }

    /// Makes `text` BIRD's config. An unchanged config does nothing; a config BIRD rejects leaves
    /// the working one in place and is returned as an error.
    pub async fn apply(&mut self, text: &str) -> Result<(), BirdError> {
        let current = tokio::fs::read_to_string(self.paths.config()).await.ok();
        // After an exit, `poll` restarts BIRD when its backoff has passed.
        let restarting = self.child.is_none() && self.last_exit.is_some();
        if current.as_deref() == Some(text) && (self.child.is_some() || restarting) {
            return Ok(());
        }
        let candidate = self.paths.candidate();
        crate::atomic_file::write_atomic(&candidate, text.as_bytes())?;
        if self.child.is_some() {
            self.paths.configure_check(&candidate).await?;
        } else {
            self.paths.parse_only(&candidate).await?;
        }
        tokio::fs::rename(&candidate, self.paths.config())
            .await
            .map_err(|source| BirdError::Io { path: self.paths.config(), source })?;
        if self.child.is_some() {
            let output = self.paths.birdc(&["configure"]).await?;
            tracing::info!(output = %output.trim(), "BIRD reconfigured");
        } else if !restarting {
            self.stop_orphan().await;
            self.start()?;
        }
        Ok(())
    }

    /// Shuts down a BIRD left on our control socket by an earlier agent (it would hold the BGP port).
    async fn stop_orphan(&self) {
        if self.paths.birdc(&["show", "status"]).await.is_ok() {
            tracing::warn!(socket = %self.paths.socket().display(), "a BIRD from an earlier agent still runs; shutting it down");
            if let Err(error) = self.paths.birdc(&["down"]).await {
                tracing::warn!(%error, "cannot shut down the earlier BIRD");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
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
                    self.next_start = Instant::now() + self.backoff;
                    let message = format!("BIRD exited ({status}); restarting in {:?}", self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    self.last_exit = Some(message.clone());
                    return Err(BirdError::Exited { message });
                }
                Err(source) => return Err(BirdError::Io { path: self.paths.socket(), source }),
            }
        }
        if self.last_exit.is_some() && Instant::now() >= self.next_start && self.paths.config().exists() {
            self.restarts += 1;
            self.start()?;
        }
        Ok(())
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
    }

    fn start(&mut self) -> Result<(), BirdError> {
        let mut command = self.paths.bird_command()?;
        command
            .arg("-f")
            .arg("-c")
            .arg(self.paths.config())
            .arg("-s")
            .arg(self.paths.socket())
            .stdin(Stdio::null())
            .kill_on_drop(false);
        let child =
            command.spawn().map_err(|source| BirdError::Spawn { program: self.paths.bird.join(" "), source })?;
        tracing::info!(pid = child.id(), config = %self.paths.config().display(), "BIRD started");
        self.child = Some(child);
        self.started_at = Instant::now();
        Ok(())
    }

    /// Resets the backoff once BIRD has run for a while.
    pub fn settle(&mut self) {
        if self.child.is_some() && self.started_at.elapsed() >= HEALTHY_AFTER {
            self.backoff = FIRST_BACKOFF;
        }
    }
}
