//! The unix-socket protocol between the CNI plugin and the agent: one JSON request line per
//! connection, answered by one JSON response line.
//!
//! An ADD is two requests: `add` allocates the address (and records the endpoint, not yet
//! programmed); after creating the veth the plugin sends `ready`, which marks the endpoint for the
//! dataplane and answers once its routes and policy are programmed (or the timeout passes). When
//! the pod's compiled policy (for the same Pod UID) is already in force, `ready` answers at once,
//! after making sure the host's route to the pod is in place (an older plugin may not add it).

mod client;
mod handler;
mod server;

use serde::{Deserialize, Serialize};

pub use client::{AgentClient, ClientError};
pub use handler::{ApiContext, handle};
pub use server::{ServerError, bind, serve};

use crate::ipam::{Allocation, Assign, Attachment};

/// A request from the plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Allocate (or return the existing) address for a container interface.
    Add {
        /// The CNI container id.
        container_id: String,
        /// The pod's network namespace path.
        netns: String,
        /// The interface inside the pod.
        ifname: String,
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The Pod's `metadata.uid` (`K8S_POD_UID`), when the runtime passed it; an older plugin
        /// sends none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
        /// The families the CNI configuration asks for (`ipam.assign_ipv4`/`assign_ipv6`); an
        /// older plugin sends none: every family the node has blocks of.
        #[serde(default)]
        assign: Assign,
    },
    /// The veth exists: program the endpoint and answer once it is programmed.
    Ready {
        /// The CNI container id.
        container_id: String,
        /// The interface inside the pod.
        ifname: String,
        /// How long to wait for programming.
        timeout_seconds: u32,
    },
    /// Release the container's address (succeeds when there is none).
    Del {
        /// The CNI container id.
        container_id: String,
        /// The interface inside the pod.
        ifname: String,
    },
    /// Return the container's allocation, or fail when there is none.
    Check {
        /// The CNI container id.
        container_id: String,
        /// The interface inside the pod.
        ifname: String,
    },
    /// Release every allocation not in `valid`.
    Gc {
        /// The attachments that still exist.
        valid: Vec<Attachment>,
    },
    /// Whether the agent can serve ADDs.
    Status,
}

/// The agent's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Response {
    /// The container's allocation (add, ready, check).
    Allocated {
        /// The allocation.
        allocation: Allocation,
    },
    /// What was released (del, gc).
    Released {
        /// The released allocations.
        allocations: Vec<Allocation>,
    },
    /// The agent's readiness.
    Status {
        /// ADDs can be served.
        ready: bool,
        /// Why not, or a summary.
        message: String,
    },
    /// The request failed; the fields are the CNI error's.
    Error {
        /// A CNI error code.
        code: u32,
        /// What failed and what to do.
        msg: String,
        /// More detail.
        details: String,
    },
}

impl Response {
    /// An error response.
    pub fn error(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self::Error { code, msg: msg.into(), details: details.into() }
    }
}
