//! BIRD 2: the config rendered from the spec's BGP settings and the span's sessions, the supervised
//! child process and its BGP sessions.

mod config;
mod control;
mod protocols;
mod render;
mod screen;
mod supervisor;

use std::path::PathBuf;

pub use config::{BirdConfig, LeftOut, Name, NextHop, Quoted, Session};
pub use control::BirdPaths;
pub use protocols::{is_established, parse_protocols, summary};
pub use render::{KERNEL_METRIC, Rendered, render, render_config};
pub use screen::screen;
pub use supervisor::BirdSupervisor;

/// A BIRD operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// The spec cannot be rendered.
    #[error("cannot render BIRD's config for peer {peer}: {reason}")]
    Render {
        /// The peer session.
        peer: String,
        /// Why.
        reason: String,
    },
    /// BIRD rejected a config; the working one stays.
    #[error("BIRD rejected the new config, the previous one stays in force: {output}")]
    Rejected {
        /// BIRD's message.
        output: String,
    },
    /// A program could not start.
    #[error("cannot run {program}: {source}; is Debian's bird2 installed?")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `birdc` failed.
    #[error("birdc {command} failed: {output}")]
    Control {
        /// The command.
        command: String,
        /// Its output.
        output: String,
    },
    /// BIRD exited.
    #[error("{message}")]
    Exited {
        /// What happened.
        message: String,
    },
    /// A file operation failed.
    #[error("BIRD file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the candidate config failed.
    #[error(transparent)]
    Write(#[from] gingham_datastore::atomic::AtomicWriteError),
    /// No BIRD program is configured.
    #[error("no BIRD program configured")]
    NoProgram,
}

impl BirdError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Render { .. } => "render",
            Self::Rejected { .. } => "rejected",
            Self::Spawn { .. } => "spawn",
            Self::Control { .. } => "control",
            Self::Exited { .. } => "exited",
            Self::Io { .. } | Self::Write(_) => "io",
            Self::NoProgram => "no_program",
        }
    }
}
