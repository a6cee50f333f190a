//! `gingham ipam check`: every address the agents hold, cross-checked against every pod, node and
//! block. It finds leaked addresses (held for a pod that no longer exists, or for another
//! incarnation of it), running pods that hold no address, addresses held twice, tunnel addresses
//! that collide with a pod's, and blocks affine to nodes that no longer exist.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::ipam::{Holder, holders};
use crate::output::{Report, table};
use crate::source::ClusterView;

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingKind {
    /// An address held for a pod that is gone (or re-created with another uid).
    Leaked,
    /// A pod scheduled with a pod network that holds no address.
    PodWithoutAddress,
    /// Two holders of one address.
    HeldTwice,
    /// A node's tunnel address is also a pod's.
    TunnelCollision,
    /// A block assigned to a node that no longer exists.
    BlockOfDeletedNode,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// Its kind.
    pub kind: FindingKind,
    /// The address, block or pod concerned.
    pub subject: String,
    /// The node concerned.
    pub node: String,
    /// What is wrong, and what to do.
    pub detail: String,
}

/// What `ipam check` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// Addresses checked.
    pub addresses: usize,
    /// Pods checked.
    pub pods: usize,
    /// Blocks checked.
    pub blocks: usize,
    /// Every problem, sorted by kind.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Pods that need a pod network: `namespace/name` → (node, uid).
fn networked_pods(view: &ClusterView) -> BTreeMap<String, (String, Option<String>)> {
    view.snapshot
        .pods
        .iter()
        .filter_map(|pod| {
            let spec = pod.spec.as_ref()?;
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
            if spec.host_network == Some(true) || matches!(phase, "Succeeded" | "Failed") {
                return None;
            }
            let name = format!("{}/{}", pod.metadata.namespace.as_deref()?, pod.metadata.name.as_deref()?);
            Some((name, (spec.node_name.clone()?, pod.metadata.uid.clone())))
        })
        .collect()
}

/// Cross-checks the view.
pub fn check(view: &ClusterView) -> CheckReport {
    let holders = holders(view);
    let pods = networked_pods(view);
    let mut findings = Vec::new();
    let mut by_address: BTreeMap<IpAddr, Vec<&Holder>> = BTreeMap::new();
    for holder in &holders {
        by_address.entry(holder.address).or_default().push(holder);
    }
    for holder in holders.iter().filter(|h| h.interface.is_some()) {
        let leaked = |why: String| Finding {
            kind: FindingKind::Leaked,
            subject: holder.address.to_string(),
            node: holder.node.clone(),
            detail: format!("held for {} {why}; the node's agent releases it on the pod's CNI DEL or GC", holder.owner),
        };
        match pods.get(&holder.owner) {
            None => findings.push(leaked("which no longer exists".into())),
            Some((node, _)) if *node != holder.node => findings.push(leaked(format!("which now runs on {node}"))),
            Some((_, Some(uid))) if holder.uid.as_ref().is_some_and(|u| u != uid) => findings
                .push(leaked(format!("of an earlier incarnation (uid {})", holder.uid.clone().unwrap_or_default()))),
            Some(_) => {}
        }
    }
    let held: BTreeSet<&str> = holders.iter().map(|h| h.owner.as_str()).collect();
    for (pod, (node, _)) in &pods {
        if !held.contains(pod.as_str()) && view.snapshot.node_statuses.contains_key(node) {
            findings.push(Finding {
                kind: FindingKind::PodWithoutAddress,
                subject: pod.clone(),
                node: node.clone(),
                detail: "its node's agent reports no address for it: check the pod's CNI ADD in the kubelet's events"
                    .into(),
            });
        }
    }
    for (address, group) in by_address.iter().filter(|(_, g)| g.len() > 1) {
        let tunnel = group.iter().any(|h| h.interface.is_none());
        let owners: Vec<String> = group.iter().map(|h| format!("{} on {}", h.owner, h.node)).collect();
        let (kind, fix) = match tunnel {
            true => (
                FindingKind::TunnelCollision,
                "delete the pod so that it gets a fresh address; the tunnel keeps its own",
            ),
            false => (FindingKind::HeldTwice, "delete the younger pod so that it gets a fresh address"),
        };
        let detail = format!("held by {}: {fix}", owners.join(" and "));
        findings.push(Finding { kind, subject: address.to_string(), node: group[0].node.clone(), detail });
    }
    let nodes: BTreeSet<&str> = view.snapshot.nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    for block in view.snapshot.blocks.iter().filter(|b| !nodes.contains(b.spec.node.as_str())) {
        findings.push(Finding {
            kind: FindingKind::BlockOfDeletedNode,
            subject: block.spec.cidr.to_string(),
            node: block.spec.node.clone(),
            detail: "the node is gone; the operator releases the block once no address in it is held".into(),
        });
    }
    findings.sort();
    CheckReport { addresses: holders.len(), pods: pods.len(), blocks: view.snapshot.blocks.len(), findings }
}

impl Report for CheckReport {
    fn human(&self) -> String {
        let summary = format!(
            "{} addresses, {} pods, {} blocks checked: {} problems\n",
            self.addresses,
            self.pods,
            self.blocks,
            self.findings.len()
        );
        if self.findings.is_empty() {
            return summary;
        }
        let rows: Vec<[String; 4]> = self
            .findings
            .iter()
            .map(|f| {
                let kind = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_string));
                [kind.unwrap_or_default(), f.subject.clone(), f.node.clone(), f.detail.clone()]
            })
            .collect();
        table(["PROBLEM", "SUBJECT", "NODE", "DETAIL"], &rows) + &summary
    }
}
