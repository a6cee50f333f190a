//! Running external commands (`ip`, `nft`, `ping`, the gingham binaries) with errors that say
//! exactly which command failed and what it printed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// It could not be started at all.
    #[error("cannot run `{command}`: {source} (is it installed and on PATH?)")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (or stdout when stderr was empty).
        stderr: String,
    },
}

impl CmdError {
    /// A stable short label for tests and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Spawn { .. } => "spawn",
            Self::Failed { .. } => "failed",
        }
    }
}

/// The command line as text, for messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs a command with an optional stdin, returning its output whatever the exit status.
pub fn output(command: &mut Command, stdin: Option<&[u8]>) -> Result<Output, CmdError> {
    let line = describe(command);
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| CmdError::Spawn { command: line.clone(), source })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).map_err(|source| CmdError::Spawn { command: line.clone(), source })?;
    }
    child.wait_with_output().map_err(|source| CmdError::Spawn { command: line, source })
}

/// Runs a command and returns its stdout, or an error with its stderr when it fails.
pub fn run_with(command: &mut Command, stdin: Option<&[u8]>) -> Result<String, CmdError> {
    let out = output(command, stdin)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Err(CmdError::Failed { command: describe(command), status: out.status.to_string(), stderr })
}

/// Runs `program args...` and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String, CmdError> {
    run_with(Command::new(program).args(args), None)
}

/// Runs `ip args...` (`ip -n NS ...` when a namespace is given).
pub fn ip(netns: Option<&str>, args: &[&str]) -> Result<String, CmdError> {
    let mut command = Command::new("ip");
    if let Some(ns) = netns {
        command.args(["-n", ns]);
    }
    run_with(command.args(args), None)
}

/// A command that runs `program args...` inside a network namespace.
pub fn in_netns(netns: &str, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, program]).args(args);
    command
}

/// Runs `program args...` inside a network namespace and returns its stdout.
pub fn run_in(netns: &str, program: &str, args: &[&str]) -> Result<String, CmdError> {
    run_with(&mut in_netns(netns, program, args), None)
}
