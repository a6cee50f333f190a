//! `birdc` and `bird -p` calls.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::BirdError;

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
            .output()
            .await
            .map_err(|source| BirdError::Spawn { program: self.birdc.display().to_string(), source })?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Ok((output.status.success() && !text.contains("Unable to connect"), text))
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
