//! The CNI plugin `gingham-cni` (conflist `type: gingham`, CNI 0.3.0 to 1.1.0): reads the
//! invocation, talks to the local agent for IPAM and readiness, and plumbs the pod's veth.

mod commands;
mod config;
mod invocation;
mod plumbing;
mod result;
mod routes;
mod version;

use serde_json::{Value, json};

pub use commands::{requested_version, run};
pub use config::{DEFAULT_MTU, DEFAULT_SOCKET, DEFAULT_TIMEOUT_SECONDS, NetConf, read_stdin};
pub use invocation::{Command, Invocation};
pub use plumbing::{GATEWAY, GATEWAY6, HOST_MAC, PlumbingError, ensure_host_routes};
pub use result::{CniResult, Interface, IpConfig, Route};
pub use version::CniVersion;

/// CNI spec error codes.
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// The plugin is not available (STATUS; also used for CHECK mismatches).
    pub const NOT_AVAILABLE: u32 = 50;
}

/// A CNI error, printed as the spec's error JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}")]
pub struct CniError {
    /// The spec's error code.
    pub code: u32,
    /// What failed and what to do.
    pub msg: String,
    /// More detail.
    pub details: String,
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: String::new() }
    }

    /// Adds details.
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error JSON for stdout.
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg, "details": self.details })
    }
}
