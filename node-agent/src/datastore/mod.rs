//! Where the agent's inputs come from and its status goes: a directory (the file datastore) or
//! the Kubernetes API. Each datastore keeps a [`Snapshot`] of the inputs current in a watch channel
//! and writes status through [`StatusSink`]; the main loop does not know which one it talks to.
//! The node's span comes from elsewhere (the operator's stream, [`crate::stream_inputs`], or a
//! span file, [`crate::span_file`]) and is laid into the same snapshot ([`combine`]).

pub mod file;
pub mod kubernetes;
pub(crate) mod watched;

use gingham_crds::api::nodenetwork::StreamStatus;
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::{IPAMBlockSpec, NodeNetwork, NodeNetworkStatus};
use tokio::sync::watch;

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
    /// This node's span (its endpoints' policies, the IP sets they use, its BGP sessions), from the
    /// operator's stream or a span file; `None` while it is not known yet (then policy and BGP
    /// sessions are left as they are).
    pub span: Option<NodeSpan>,
    /// How the operator's stream stands, when the agent follows it (for status).
    pub stream: Option<StreamStatus>,
}

/// Keeps a channel of `merge(a, b)` current as either input changes; a merge that gives the value
/// already held notifies no one. Stops when either input's sender or every receiver is gone.
pub(crate) fn combine<A, B, C>(
    mut a: watch::Receiver<A>,
    mut b: watch::Receiver<B>,
    mut merge: impl FnMut(&A, &B) -> C + Send + 'static,
) -> watch::Receiver<C>
where
    A: Send + Sync + 'static,
    B: Send + Sync + 'static,
    C: PartialEq + Send + Sync + 'static,
{
    let (sender, receiver) = watch::channel(merge(&a.borrow_and_update(), &b.borrow_and_update()));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = a.changed() => if changed.is_err() { return },
                changed = b.changed() => if changed.is_err() { return },
                () = sender.closed() => return,
            }
            let merged = merge(&a.borrow_and_update(), &b.borrow_and_update());
            sender.send_if_modified(|held| {
                let changed = *held != merged;
                if changed {
                    *held = merged;
                }
                changed
            });
        }
    });
    receiver
}

/// Writes this node's NodeNetwork status.
#[allow(async_fn_in_trait)]
pub trait StatusSink {
    /// Replaces the status.
    async fn write_status(&self, status: &NodeNetworkStatus) -> Result<(), DatastoreError>;
}
