//! The lab's stream wiring (`docs/stream.md`): each operator replica serves the agents' stream,
//! on a unix socket in the lab's directory (the agents run in other network namespaces but share
//! the file system) or over TCP from a control host on the underlay, and every agent follows the
//! list of replicas with a token of its own, listed in the operator's tokens file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gingham_datastore::atomic::{AtomicWriteError, PRIVATE_FILE, write_atomic};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::cmd::{self, CmdError};
use crate::state::{LabState, NodeRecord};
use crate::topology::{self, TopologyError, names};

/// The most operator replicas a lab runs.
pub const MAX_REPLICAS: usize = 3;
/// The control host's name (namespace `<prefix>-ctl`) when the stream goes over TCP.
pub const CONTROL_HOST: &str = "ctl";
/// The control host's address on the first subnet (the router is .1, nodes start at .10).
pub const CONTROL_HOST_INDEX: u32 = 2;
/// The first replica's stream port over TCP; replica `i` listens on this plus `i`.
pub const STREAM_PORT: u16 = 5473;
/// The nftables table that cuts a node off the stream ([`cut`]).
const CUT_TABLE: &str = "gingham_lab_cut";

/// How the agents reach the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A unix socket per replica in the lab's directory; the replicas run in the underlay namespace.
    #[default]
    Unix,
    /// TCP over the underlay: the replicas run on a control host, each on its own port, so that a
    /// firewall rule in a node's namespace can cut that node off.
    Tcp,
}

/// How the lab runs the operator (the scenario's `lab.operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorSpec {
    /// Replicas on the lab's one datastore (1 to [`MAX_REPLICAS`]): every one computes and serves
    /// the stream, the one holding the datastore's leader lock writes.
    pub replicas: usize,
    /// How the agents reach the stream.
    pub stream: Transport,
}

impl Default for OperatorSpec {
    fn default() -> Self {
        Self { replicas: 1, stream: Transport::Unix }
    }
}

/// Where random tokens come from.
const TOKEN_SOURCE: &str = "/proc/sys/kernel/random/uuid";

/// The stream's wiring could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    /// A file could not be read.
    #[error("stream wiring: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("stream wiring: {0}")]
    Write(#[from] AtomicWriteError),
}

/// The process name of operator replica `replica` (0-based): `operator`, `operator-2`, ... Its log
/// is `<name>.log`.
pub fn replica_name(replica: usize) -> String {
    if replica == 0 { "operator".into() } else { format!("operator-{}", replica + 1) }
}

/// The log of operator replica `replica`.
pub fn replica_log(state: &LabState, replica: usize) -> PathBuf {
    state.logs().join(format!("{}.log", replica_name(replica)))
}

/// The control host's underlay address (`.2` of the first subnet).
pub fn control_address(state: &LabState) -> Option<std::net::Ipv4Addr> {
    let net: Ipv4Net = state.subnets.first()?.cidr.as_ref()?.parse().ok()?;
    Some(topology::host(net, CONTROL_HOST_INDEX))
}

/// The namespace operator replicas run in: the underlay's, or the control host's for TCP.
pub fn operator_netns(state: &LabState) -> String {
    match state.operator.stream {
        Transport::Unix => names::underlay(&state.prefix),
        Transport::Tcp => format!("{}-{CONTROL_HOST}", state.prefix),
    }
}

/// Creates what the transport needs before any replica starts: the control host for TCP.
pub fn setup(state: &mut LabState) -> Result<(), TopologyError> {
    if state.operator.stream == Transport::Tcp {
        let subnet = state.subnets.first().map(|subnet| subnet.name.clone()).unwrap_or_default();
        topology::add_host(state, CONTROL_HOST, &subnet, CONTROL_HOST_INDEX)?;
        state.save()?;
    }
    Ok(())
}

/// Where replica `replica` serves the stream, as its `--stream-addr` and as an agent's
/// `--stream-server`.
pub fn endpoint(state: &LabState, replica: usize) -> (String, String) {
    match state.operator.stream {
        Transport::Unix => {
            let file = if replica == 0 { "stream.sock".into() } else { format!("stream-{}.sock", replica + 1) };
            let socket = format!("unix:{}", state.state_dir.join(file).display());
            (socket.clone(), socket)
        }
        Transport::Tcp => {
            let address = control_address(state).map(|a| a.to_string()).unwrap_or_default();
            let port = STREAM_PORT + u16::try_from(replica).unwrap_or(0);
            (format!("{address}:{port}"), format!("http://{address}:{port}"))
        }
    }
}

/// Every replica's address, as the agents' `--stream-server` list.
pub fn servers(state: &LabState) -> Vec<String> {
    (0..state.operator.replicas.max(1)).map(|replica| endpoint(state, replica).1).collect()
}

/// Cuts `node` off the stream for real: an nftables table in its namespace drops every packet to
/// and from the replicas' TCP ports, as a broken network would (the connections stay open and go
/// silent). TCP transport only.
pub fn cut(state: &LabState, node: &NodeRecord) -> Result<(), CmdError> {
    let address = control_address(state).map(|a| a.to_string()).unwrap_or_default();
    let last = STREAM_PORT + u16::try_from(state.operator.replicas.max(1) - 1).unwrap_or(0);
    let ports = format!("{STREAM_PORT}-{last}");
    let rules = format!(
        "table inet {CUT_TABLE} {{\n\
         \tchain output {{ type filter hook output priority 0; ip daddr {address} tcp dport {ports} drop; }}\n\
         \tchain input {{ type filter hook input priority 0; ip saddr {address} tcp sport {ports} drop; }}\n}}\n"
    );
    cmd::run_with(&mut cmd::in_netns(&node.netns, "nft", &["-f", "-"]), Some(rules.as_bytes())).map(drop)
}

/// Ends a [`cut`].
pub fn restore(node: &NodeRecord) -> Result<(), CmdError> {
    cmd::run_in(&node.netns, "nft", &["delete", "table", "inet", CUT_TABLE]).map(drop)
}

/// The operator's tokens file: each agent's token and its node.
pub fn tokens_file(state: &LabState) -> PathBuf {
    state.state_dir.join("stream-tokens.json")
}

/// The file holding a node agent's token.
pub fn token_file(node: &NodeRecord) -> PathBuf {
    node.dir.join("stream-token")
}

fn read_tokens(path: &Path) -> Result<BTreeMap<String, String>, StreamSetupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_default()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(StreamSetupError::Read { path: path.to_path_buf(), source }),
    }
}

fn write_tokens(path: &Path, tokens: &BTreeMap<String, String>) -> Result<(), StreamSetupError> {
    let text = serde_json::to_string_pretty(tokens).unwrap_or_else(|_| "{}".into());
    Ok(write_atomic(path, text.as_bytes(), PRIVATE_FILE)?)
}

/// Makes sure the tokens file exists (the operator refuses to start without it).
pub fn prepare(state: &LabState) -> Result<(), StreamSetupError> {
    let path = tokens_file(state);
    write_tokens(&path, &read_tokens(&path)?)
}

/// Gives `node`'s agent a fresh token: written to its token file and listed in the operator's
/// tokens file (which the operator reads again when it meets a token it does not know). Returns
/// the token file.
pub fn issue_token(state: &LabState, node: &NodeRecord) -> Result<PathBuf, StreamSetupError> {
    let token = std::fs::read_to_string(TOKEN_SOURCE)
        .map_err(|source| StreamSetupError::Read { path: TOKEN_SOURCE.into(), source })?
        .trim()
        .to_string();
    let path = tokens_file(state);
    let mut tokens = read_tokens(&path)?;
    tokens.retain(|_, owner| owner != &node.name);
    tokens.insert(token.clone(), node.name.clone());
    write_tokens(&path, &tokens)?;
    let file = token_file(node);
    write_atomic(&file, token.as_bytes(), PRIVATE_FILE)?;
    Ok(file)
}

/// A log file's text without ANSI colour codes.
fn plain(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Lines of operator replica `replica`'s log that contain `text`.
pub fn log_lines(state: &LabState, replica: usize, text: &str) -> Vec<String> {
    plain(&replica_log(state, replica)).lines().filter(|l| l.contains(text)).map(str::to_string).collect()
}

/// Every subscription replica `replica` has answered, in order: the node and how it synced
/// (`snapshot`, `delta` or `content`), from its log.
pub fn syncs(state: &LabState, replica: usize) -> Vec<(String, String)> {
    let field = |line: &str, name: &str| {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        let value = line[start..].split_whitespace().next()?;
        Some(value.trim_matches('"').to_string())
    };
    log_lines(state, replica, "subscriber synced")
        .iter()
        .filter_map(|line| Some((field(line, "node")?, field(line, "sync")?)))
        .collect()
}
