//! Releasing addresses, run on the node that holds them: `gingham ipam release --ip ADDR` (refused
//! while the pod that holds it runs, unless `--force`) and `gingham ipam check --fix` (the node's
//! leaked addresses older than a grace period). Both ask the node's agent over its socket to
//! release the allocation, as a CNI DEL would, so a second run finds nothing left to do.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gingham_node_agent::api::{AgentClient, Request, Response};
use gingham_node_agent::ipam::{Allocation, IpamStore};
use serde::Serialize;

use crate::ipam_check::{CheckReport, FindingKind};
use crate::output::Report;
use crate::source::ClusterView;

/// Where the node's agent keeps its IPAM table and serves its socket (the agent's defaults).
#[derive(Clone, Debug, clap::Args)]
pub struct AgentPaths {
    /// This node (default: $NODE_NAME, else the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// The agent's state directory (its IPAM table).
    #[arg(long, default_value = "/var/lib/gingham")]
    pub state_dir: PathBuf,
    /// The agent's socket.
    #[arg(long, default_value = "/run/gingham/cni.sock")]
    pub cni_socket: PathBuf,
}

/// What a release did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReleaseReport {
    /// Released: `address (namespace/pod, container id)`.
    pub released: Vec<String>,
    /// Not released, and why.
    pub kept: Vec<String>,
}

impl ReleaseReport {
    /// Whether nothing asked for was kept.
    pub fn is_complete(&self) -> bool {
        self.kept.is_empty()
    }
}

fn allocations(paths: &AgentPaths) -> Result<Vec<Allocation>, String> {
    if !paths.state_dir.is_dir() {
        return Err(format!(
            "no agent state in {}: run this on the node, or pass the agent's --state-dir",
            paths.state_dir.display()
        ));
    }
    let store = IpamStore::open(&paths.state_dir).map_err(|e| e.to_string())?;
    store.list().map_err(|e| e.to_string())
}

/// Whether the Pod that holds `allocation` still runs on `node` (the same incarnation).
fn live_pod(view: &ClusterView, node: &str, allocation: &Allocation) -> bool {
    view.snapshot.pods.iter().any(|pod| {
        let meta = &pod.metadata;
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
        meta.namespace.as_deref() == Some(&allocation.namespace)
            && meta.name.as_deref() == Some(&allocation.pod)
            && pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && !matches!(phase, "Succeeded" | "Failed")
            && (allocation.uid.is_none() || meta.uid.is_none() || meta.uid == allocation.uid)
    })
}

fn release(paths: &AgentPaths, allocation: &Allocation, report: &mut ReleaseReport) {
    let label = format!(
        "{} ({}/{}, container {})",
        allocation.addresses().iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        allocation.namespace,
        allocation.pod,
        allocation.container_id
    );
    let request = Request::Del { container_id: allocation.container_id.clone(), ifname: allocation.ifname.clone() };
    match AgentClient::new(&paths.cni_socket, Duration::from_secs(10)).call(&request) {
        Ok(Response::Released { .. }) => report.released.push(label),
        Ok(other) => report.kept.push(format!("{label}: the agent answered {other:?}")),
        Err(e) => report.kept.push(format!("{label}: {e}; is the agent running (--cni-socket)?")),
    }
}

/// `ipam release --ip`: releases the allocation of `address` on this node.
pub fn release_ip(
    view: &ClusterView,
    paths: &AgentPaths,
    address: IpAddr,
    force: bool,
) -> Result<ReleaseReport, String> {
    let node = crate::node::this_node(paths.node.clone());
    let found = allocations(paths)?.into_iter().find(|a| a.addresses().contains(&address));
    let Some(allocation) = found else {
        return Err(format!(
            "{address} is not allocated on node {node} (IPAM table in {}); run this on the node that holds it (`gingham ipam show --ip {address}`)",
            paths.state_dir.display()
        ));
    };
    let mut report = ReleaseReport::default();
    if live_pod(view, &node, &allocation) && !force {
        report.kept.push(format!(
            "{address}: held by {}/{}, which runs on {node}: delete the pod instead (or --force)",
            allocation.namespace, allocation.pod
        ));
    } else {
        release(paths, &allocation, &mut report);
    }
    Ok(report)
}

/// `ipam check --fix`: releases this node's leaked addresses allocated more than `grace` ago.
pub fn fix(
    view: &ClusterView,
    check: &CheckReport,
    paths: &AgentPaths,
    grace: Duration,
) -> Result<ReleaseReport, String> {
    let node = crate::node::this_node(paths.node.clone());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let table = allocations(paths)?;
    let mut report = ReleaseReport::default();
    let leaks = check.findings.iter().filter(|f| f.kind == FindingKind::Leaked && f.node == node);
    for leak in leaks {
        let Some(allocation) = table.iter().find(|a| a.addresses().iter().any(|held| held.to_string() == leak.subject))
        else {
            continue;
        };
        let age = now.saturating_sub(allocation.allocated_at);
        if age < grace.as_secs() {
            report.kept.push(format!("{}: allocated {age} s ago, within the grace period", leak.subject));
        } else if live_pod(view, &node, allocation) {
            report.kept.push(format!("{}: its pod runs again", leak.subject));
        } else {
            release(paths, allocation, &mut report);
        }
    }
    Ok(report)
}

impl Report for ReleaseReport {
    fn human(&self) -> String {
        let mut out = String::new();
        for released in &self.released {
            out += &format!("released {released}\n");
        }
        for kept in &self.kept {
            out += &format!("kept {kept}\n");
        }
        if out.is_empty() {
            out = "nothing to release\n".into();
        }
        out
    }
}
