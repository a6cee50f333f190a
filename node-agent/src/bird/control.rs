//! `birdc` and `bird -p` calls, and finding the BIRD process that serves our control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::BirdError;
use crate::private_files;

/// The programs and files of one BIRD instance.
#[derive(Clone, Debug)]
pub struct BirdPaths {
    /// The command that starts BIRD (a wrapper such as `ip netns exec X` may come first).
    pub bird: Vec<String>,
    /// `birdc`.
    pub birdc: PathBuf,
    /// The directory holding the config and control socket.
    pub dir: PathBuf,
}

impl BirdPaths {
    /// Debian's `bird2` in `dir`.
    pub fn debian(dir: &Path) -> Self {
        Self { bird: vec!["/usr/sbin/bird".into()], birdc: "/usr/sbin/birdc".into(), dir: dir.to_path_buf() }
    }

    /// The config BIRD runs with.
    pub fn config(&self) -> PathBuf {
        self.dir.join("bird.conf")
    }

    /// Where a new config is checked before it replaces the running one.
    pub fn candidate(&self) -> PathBuf {
        self.dir.join("bird.conf.candidate")
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    /// Makes the directory root's alone (0700) and the configs we wrote 0600: they hold the BGP
    /// passwords. BIRD runs as root and reads them; its socket and PID file inside are then out of
    /// other users' reach too.
    pub fn restrict(&self) -> Result<(), BirdError> {
        let io = |path: PathBuf| move |source| BirdError::Io { path, source };
        private_files::ensure_private_dir(&self.dir).map_err(io(self.dir.clone()))?;
        for config in [self.config(), self.candidate()] {
            private_files::restrict(&config, private_files::PRIVATE_FILE).map_err(io(config.clone()))?;
        }
        Ok(())
    }

    /// The PID file BIRD writes (`bird -P`) and removes when it shuts down cleanly.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("bird.pid")
    }

    /// Whether a BIRD answers on the control socket (`show status`, within two seconds).
    pub async fn answers(&self) -> bool {
        let probe = self.birdc_output(&["show", "status"]);
        matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok((true, _))))
    }

    /// Whether `pid` is a live BIRD started for this directory: its program is our BIRD program and
    /// its command line names our control socket. A zombie (empty command line) is not.
    pub fn is_ours(&self, pid: u32) -> bool {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
        let Some((program, rest)) = args.split_first() else { return false };
        let name = |path: &[u8]| path.rsplit(|b| *b == b'/').next().unwrap_or_default().to_vec();
        let socket = self.socket();
        let socket = socket.as_os_str().as_encoded_bytes();
        self.bird.last().is_some_and(|ours| name(ours.as_bytes()) == name(program)) && rest.contains(&socket)
    }

    /// The BIRD process serving this directory: the PID in [`BirdPaths::pid_file`], else any
    /// process whose command line names our control socket; either way verified by
    /// [`BirdPaths::is_ours`].
    pub fn find_ours(&self) -> Option<u32> {
        let recorded = std::fs::read_to_string(self.pid_file()).ok().and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(pid) = recorded.filter(|pid| self.is_ours(*pid)) {
            return Some(pid);
        }
        let entries = std::fs::read_dir("/proc").ok()?;
        entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok()).find(|pid| self.is_ours(*pid))
    }

    /// Stops the BIRD process `pid` after checking it is ours ([`BirdPaths::is_ours`]): SIGTERM,
    /// then SIGKILL if it is still there after five seconds. Returns whether it is gone.
    pub async fn terminate(&self, pid: u32) -> bool {
        for signal in ["-TERM", "-KILL"] {
            if !self.is_ours(pid) {
                return true;
            }
            tracing::info!(pid, signal, "stopping a BIRD this agent started earlier");
            let sent = Command::new("kill").arg(signal).arg(pid.to_string()).status().await;
            if let Err(error) = sent {
                tracing::warn!(%error, pid, "cannot run kill");
            }
            if self.wait_gone(pid, Duration::from_secs(5)).await {
                return true;
            }
        }
        !self.is_ours(pid)
    }

    /// Waits until `pid` is no longer our BIRD; returns whether it went within `timeout`.
    pub async fn wait_gone(&self, pid: u32, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.is_ours(pid) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Runs `birdc -s <socket> <args>` and returns its output.
    pub async fn birdc(&self, args: &[&str]) -> Result<String, BirdError> {
        let (success, text) = self.birdc_output(args).await?;
        if !success {
            return Err(BirdError::Control { command: args.join(" "), output: text.trim().to_string() });
        }
        Ok(text)
    }

    /// Checks `file` with the running BIRD (`configure check`).
    pub async fn configure_check(&self, file: &Path) -> Result<(), BirdError> {
        let quoted = format!("\"{}\"", file.display());
        let args = ["configure", "check", quoted.as_str()];
        match self.birdc_output(&args).await? {
            (true, text) if text.contains("Configuration OK") => Ok(()),
            (_, text) if text.contains("Reading configuration") => {
                Err(BirdError::Rejected { output: text.trim().to_string() })
            }
            (_, text) => Err(BirdError::Control { command: args.join(" "), output: text.trim().to_string() }),
        }
    }

    async fn birdc_output(&self, args: &[&str]) -> Result<(bool, String), BirdError> {
        let output = Command::new(&self.birdc)
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| BirdError::Spawn { program: self.birdc.display().to_string(), source })?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Ok((output.status.success() && !text.contains("Unable to connect"), text))
    }

    /// Writes `text` as the candidate config ([`BirdPaths::candidate`]), root's alone: it holds
    /// BGP passwords.
    pub fn write_candidate(&self, text: &str) -> Result<(), BirdError> {
        gingham_datastore::atomic::write_atomic(
            &self.candidate(),
            text.as_bytes(),
            crate::private_files::PRIVATE_FILE,
        )?;
        Ok(())
    }

    /// Checks `text` as a config without a running BIRD (`bird -p` on the candidate file).
    pub async fn check_text(&self, text: &str) -> Result<(), BirdError> {
        self.write_candidate(text)?;
        self.parse_only(&self.candidate()).await
    }

    /// Checks `file` without a running BIRD (`bird -p`).
    pub async fn parse_only(&self, file: &Path) -> Result<(), BirdError> {
        let output = self
            .bird_command()?
            .arg("-p")
            .arg("-c")
            .arg(file)
            .output()
            .await
            .map_err(|source| BirdError::Spawn { program: self.bird.join(" "), source })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(BirdError::Rejected { output: String::from_utf8_lossy(&output.stderr).trim().to_string() })
        }
    }

    /// The command that starts BIRD, without arguments.
    pub fn bird_command(&self) -> Result<Command, BirdError> {
        let (program, args) = self.bird.split_first().ok_or(BirdError::NoProgram)?;
        let mut command = Command::new(program);
        command.args(args);
        Ok(command)
    }
}
