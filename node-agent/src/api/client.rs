//! The plugin's side: a blocking client (the plugin is a short-lived, single-threaded process).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Request, Response};

/// Talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error(
        "cannot reach the gingham node agent at {socket}: {source}; is the gingham-node-agent pod running on this node?"
    )]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke or timed out.
    #[error("talking to the gingham node agent at {socket} failed: {source}; check the agent's log")]
    Io {
        /// The socket path.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The answer does not decode.
    #[error(
        "the gingham node agent at {socket} sent an answer that does not decode ({reason}); are the plugin and agent the same version?"
    )]
    Protocol {
        /// The socket path.
        socket: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

/// Sends requests to the agent's socket.
#[derive(Clone, Debug)]
pub struct AgentClient {
    socket: PathBuf,
    timeout: Duration,
}

impl AgentClient {
    /// A client for `socket` whose calls fail after `timeout`.
    pub fn new(socket: &Path, timeout: Duration) -> Self {
        Self { socket: socket.to_path_buf(), timeout }
    }

    /// Sends one request and reads its response.
    pub fn call(&self, request: &Request) -> Result<Response, ClientError> {
        let socket = || self.socket.clone();
        let mut stream = UnixStream::connect(&self.socket)
            .map_err(|source| ClientError::Unreachable { socket: socket(), source })?;
        let io = |source| ClientError::Io { socket: socket(), source };
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let mut line = serde_json::to_string(request)
            .map_err(|e| ClientError::Protocol { socket: socket(), reason: e.to_string() })?;
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(io)?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).map_err(io)?;
        serde_json::from_str(&answer).map_err(|e| ClientError::Protocol { socket: socket(), reason: e.to_string() })
    }
}
