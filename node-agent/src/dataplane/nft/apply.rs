//! Applying rulesets: the [`Nft`] trait, the real `nft` command and (in unit tests) an in-memory fake.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::delta::Delta;
use super::model::{Ruleset, TABLE};
use super::observe::Observed;
use super::render;

/// A failed nft invocation.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started.
    #[error("cannot run {program}: {source}; install nftables")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused the input; the previous ruleset stays in force.
    #[error("nft {action} failed (the previous ruleset stays in force): {stderr}")]
    Failed {
        /// What was attempted.
        action: &'static str,
        /// nft's error output.
        stderr: String,
    },
    /// The listing was not the JSON expected.
    #[error("cannot parse `nft -j list table {TABLE}`: {0}")]
    Parse(#[source] serde_json::Error),
    /// `nft` did not finish in time (it was killed; the transaction either fully applied or not).
    #[error("nft {action} did not finish within {seconds} s and was killed")]
    Timeout {
        /// What was attempted.
        action: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// The fake was told to fail.
    #[cfg(test)]
    #[error("nft {0} failed: injected failure")]
    Injected(&'static str),
}

impl NftError {
    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Spawn { .. } => "spawn",
            Self::Failed { .. } => "failed",
            Self::Parse(_) => "parse",
            Self::Timeout { .. } => "timeout",
            #[cfg(test)]
            Self::Injected(_) => "injected",
        }
    }
}

/// How long one `nft` invocation may take.
const NFT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One atomic change to gingham's table.
#[derive(Clone, Copy, Debug)]
pub enum NftChange<'a> {
    /// Delete and recreate the whole table.
    Rewrite(&'a Ruleset),
    /// Change only what differs: elements, and sets, maps and chains.
    Delta(&'a Delta),
}

/// Reads and changes gingham's nftables table.
#[allow(async_fn_in_trait)]
pub trait Nft {
    /// The table as listed, or `None` when it does not exist.
    async fn list(&mut self) -> Result<Option<Observed>, NftError>;
    /// Applies one change in one transaction; on error nothing changed.
    async fn apply(&mut self, change: NftChange<'_>) -> Result<(), NftError>;
}

/// The `nft` command.
#[derive(Clone, Debug)]
pub struct NftCommand {
    program: String,
}

impl Default for NftCommand {
    fn default() -> Self {
        Self { program: "nft".into() }
    }
}

impl NftCommand {
    /// Uses another `nft` binary (a path or a name looked up in `PATH`).
    #[cfg(test)]
    pub fn with_program(program: impl Into<String>) -> Self {
        Self { program: program.into() }
    }

    /// Runs `nft` with arguments and optional stdin; returns stdout, or stderr as the error.
    async fn run(&self, args: &[&str], input: Option<&str>, action: &'static str) -> Result<String, NftError> {
        let spawn = |source| NftError::Spawn { program: self.program.clone(), source };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).await.map_err(spawn)?;
        }
        let waited = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output()).await;
        let output =
            waited.map_err(|_| NftError::Timeout { action, seconds: NFT_TIMEOUT.as_secs() })?.map_err(spawn)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(NftError::Failed { action, stderr: String::from_utf8_lossy(&output.stderr).trim().to_string() })
        }
    }

    /// Applies an arbitrary script (for tests of failure handling).
    pub async fn run_script(&self, script: &str) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(script), "transaction").await.map(drop)
    }
}

impl Nft for NftCommand {
    async fn list(&mut self) -> Result<Option<Observed>, NftError> {
        let mut args = vec!["-j", "list", "table"];
        args.extend(TABLE.split(' '));
        match self.run(&args, None, "list").await {
            Ok(json) => Observed::from_json(&json).map(Some).map_err(NftError::Parse),
            Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn apply(&mut self, change: NftChange<'_>) -> Result<(), NftError> {
        let script = match change {
            NftChange::Rewrite(ruleset) => render::transaction(ruleset),
            NftChange::Delta(delta) => render::delta(delta),
        };
        self.run_script(&script).await
    }
}

#[cfg(test)]
/// An in-memory table for unit tests, counting what was applied.
#[derive(Clone, Debug, Default)]
pub struct FakeNft {
    /// The table, if it exists.
    pub table: Option<Observed>,
    /// How many full rewrites were applied.
    pub rewrites: usize,
    /// How many incremental changes were applied.
    pub deltas: usize,
    /// Fail every change.
    pub fail: bool,
    /// How many times the table was listed.
    pub lists: usize,
}

#[cfg(test)]
impl Nft for FakeNft {
    async fn list(&mut self) -> Result<Option<Observed>, NftError> {
        self.lists += 1;
        Ok(self.table.clone())
    }

    async fn apply(&mut self, change: NftChange<'_>) -> Result<(), NftError> {
        if self.fail {
            return Err(NftError::Injected("transaction"));
        }
        match change {
            NftChange::Rewrite(ruleset) => {
                self.table = Some(Observed::expected(ruleset));
                self.rewrites += 1;
            }
            NftChange::Delta(delta) => {
                let table = self.table.get_or_insert_with(Observed::default);
                for name in delta.deleted_chains.iter() {
                    table.chains.remove(name);
                }
                for name in delta.deleted_sets.iter().chain(&delta.deleted_maps) {
                    table.elements.remove(name);
                }
                for chain in delta.new_chains.iter().chain(&delta.refilled) {
                    table.chains.insert(chain.name.clone(), chain.rules.len());
                    let comments = chain.rules.iter().filter_map(|rule| rule.comment.as_deref());
                    if let Some(print) = comments.filter_map(|c| c.strip_prefix(render::FINGERPRINT_PREFIX)).next() {
                        table.fingerprint = Some(print.to_string());
                    }
                }
                for name in delta.new_sets.iter().map(|s| &s.name).chain(&delta.new_maps) {
                    table.elements.insert(name.clone(), Default::default());
                }
                for (name, elements) in &delta.delete {
                    let set = table.elements.entry(name.clone()).or_default();
                    elements.iter().for_each(|e| {
                        set.remove(e);
                    });
                }
                for (name, elements) in &delta.add {
                    table.elements.entry(name.clone()).or_default().extend(elements.iter().cloned());
                }
                self.deltas += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in `nft` that prints `stdout`, `stderr` and exits with `code`, recording its
    /// arguments and stdin next to itself.
    fn fake_nft(dir: &std::path::Path, stdout: &str, stderr: &str, code: i32) -> NftCommand {
        let path = dir.join("nft");
        let script = format!(
            "#!/bin/sh\necho \"$@\" > {0}/args\ncat > {0}/stdin\nprintf '%s' '{stdout}'\nprintf '%s' '{stderr}' >&2\nexit {code}\n",
            dir.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A child another test thread forks may briefly inherit our write descriptor, and exec
        // then fails with ETXTBSY ("Text file busy"): wait until the stand-in runs.
        for _ in 0..100 {
            let probe = std::process::Command::new(&path).stdin(Stdio::null()).stdout(Stdio::null()).status();
            if !matches!(&probe, Err(e) if e.raw_os_error() == Some(26)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        NftCommand::with_program(path.display().to_string())
    }

    #[tokio::test]
    async fn a_missing_table_lists_as_none_and_other_failures_as_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut missing = fake_nft(dir.path(), "", "Error: No such file or directory", 1);
        assert_eq!(missing.list().await.unwrap(), None);
        assert_eq!(std::fs::read_to_string(dir.path().join("args")).unwrap().trim(), "-j list table inet gingham");
        let mut broken = fake_nft(dir.path(), "", "Error: permission denied", 1);
        let error = broken.list().await.unwrap_err();
        assert_eq!(error.label(), "failed");
        assert!(error.to_string().contains("permission denied"), "{error}");
        let mut garbage = fake_nft(dir.path(), "not json", "", 0);
        assert_eq!(garbage.list().await.unwrap_err().label(), "parse");
        let mut absent = NftCommand::with_program(dir.path().join("no-such-nft").display().to_string());
        assert_eq!(absent.list().await.unwrap_err().label(), "spawn");
    }

    #[tokio::test]
    async fn changes_are_piped_as_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut nft = fake_nft(dir.path(), "", "", 0);
        let delta = Delta {
            add: [("s_x".to_string(), ["10.0.0.1".to_string()].into())].into(),
            delete: [("from_endpoint".to_string(), ["\"gh1\" : jump ee_allow_all".to_string()].into())].into(),
            ..Delta::default()
        };
        nft.apply(NftChange::Delta(&delta)).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("args")).unwrap().trim(), "-f -");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("stdin")).unwrap(),
            "delete element inet gingham from_endpoint { \"gh1\" }\nadd element inet gingham s_x { 10.0.0.1 }\n"
        );
        let mut refused = fake_nft(dir.path(), "", "Error: syntax error", 1);
        let error = refused.apply(NftChange::Rewrite(&Ruleset::default())).await.unwrap_err();
        assert!(error.to_string().contains("previous ruleset stays in force"), "{error}");
        assert!(
            std::fs::read_to_string(dir.path().join("stdin"))
                .unwrap()
                .starts_with("table inet gingham {}\ndelete table inet gingham\n")
        );
    }
}
