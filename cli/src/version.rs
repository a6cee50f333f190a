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
    /// The operator's and the agent's images as deployed (Kubernetes only).
    pub components: Vec<(String, String)>,
}

/// The version report.
pub fn report(view: &ClusterView, components: Vec<(String, String)>) -> VersionReport {
    VersionReport {
        client: env!("CARGO_PKG_VERSION").to_string(),
        agents_reporting: view.snapshot.node_statuses.len(),
        nodes: view.node_networks.len(),
        components,
    }
}

impl Report for VersionReport {
    fn human(&self) -> String {
        let mut out = format!("Client:  gingham {}\n", self.client);
        for (component, image) in &self.components {
            out += &format!("{component}: {image}\n");
        }
        if self.components.is_empty() {
            out += "Cluster: no deployed images (file datastore, or not installed in this namespace)\n";
        }
        out + &format!("Agents:  {} of {} nodes report status\n", self.agents_reporting, self.nodes)
    }
}
