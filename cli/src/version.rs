//! `gingham version`: the client's version, and what the cluster reports.

use serde::Serialize;

use crate::output::Report;
use crate::source::ClusterView;

/// What `version` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionReport {
    /// This binary's version.
    pub client: String,
    /// The nodes that report a NodeNetwork status (agents running).
    pub agents_reporting: usize,
    /// The nodes the operator wrote a NodeNetwork for.
    pub nodes: usize,
}

/// The version report; the cluster part is absent when it could not be read.
pub fn report(view: &ClusterView) -> VersionReport {
    VersionReport {
        client: env!("CARGO_PKG_VERSION").to_string(),
        agents_reporting: view.snapshot.node_statuses.len(),
        nodes: view.node_networks.len(),
    }
}

impl Report for VersionReport {
    fn human(&self) -> String {
        format!(
            "Client:  gingham {}\nCluster: {} of {} nodes' agents report status (agents and the operator do not report their versions yet)\n",
            self.client, self.agents_reporting, self.nodes
        )
    }
}
