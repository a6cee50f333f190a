//! Where the agent's inputs come from and its status goes: a directory (the file datastore) or
//! the Kubernetes API. Each datastore keeps a [`Snapshot`] of the inputs current in a watch channel
//! and writes status through [`StatusSink`]; the main loop does not know which one it talks to.

pub mod file;
pub mod kubernetes;

use gingham_crds::api::nodenetwork::StreamStatus;
use gingham_crds::api::{IPAMBlockSpec, NodeNetwork, NodeNetworkStatus};

/// The field manager (and writer identity) of the agent.
pub const FIELD_MANAGER: &str = "gingham-node-agent";

/// A datastore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// A file could not be read or written.
    #[error("file datastore: {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file atomically failed.
    #[error(transparent)]
    Write(#[from] gingham_datastore::atomic::AtomicWriteError),
    /// Serializing the status failed.
    #[error("cannot serialize the status of NodeNetwork {node}: {reason}")]
    Serialize {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The Kubernetes API refused or failed.
    #[error("kubernetes: {action} NodeNetwork {node}: {source}; check the agent's RBAC and the API server")]
    Kube {
        /// What was attempted.
        action: &'static str,
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl DatastoreError {
    /// A stable short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Io { .. } | Self::Write(_) => "io",
            Self::Serialize { .. } => "serialize",
            Self::Kube { .. } => "kube",
        }
    }
}

/// This node's NodeNetwork as the datastore has it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum NodeNetworkState {
    /// No object yet.
    #[default]
    Missing,
    /// The object (not yet validated).
    Found(Box<NodeNetwork>),
    /// The object exists but does not decode; the message says why.
    Malformed(String),
}

/// The agent's inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// This node's NodeNetwork.
    pub node_network: NodeNetworkState,
    /// Every IPAMBlock (those that decode).
    pub blocks: Vec<IPAMBlockSpec>,
    /// How the operator's stream stands, when the agent follows it (for status).
    pub stream: Option<StreamStatus>,
}

/// Writes this node's NodeNetwork status.
#[allow(async_fn_in_trait)]
pub trait StatusSink {
    /// Replaces the status.
    async fn write_status(&self, status: &NodeNetworkStatus) -> Result<(), DatastoreError>;
}
