//! `gingham policy preview -f CHANGE.yaml`: before anything is applied, the reachability that a
//! change would alter. The operator's core compiles the current state and the state with the
//! change on top; every ordered pair of endpoints is evaluated under both, for ICMP echo and each
//! port, and the pairs whose verdict differs are listed. File datastore only (it needs every
//! object the operator reads).

use std::collections::BTreeMap;
use std::path::Path;

use gingham_crds::api::span::NodeSpan;
use gingham_crds::manifest::read_manifest_file;
use gingham_operator::core::{self, ClusterSnapshot, OperatorSettings};
use gingham_operator::datastore::file::read::{Reader, overlay};
use serde::Serialize;

use super::explain::{End, PortArg, packet, verdict};
use crate::ipam::holders;
use crate::output::{Report, table};
use crate::source::ClusterView;

/// One pair and probe whose verdict the change flips.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Flip {
    /// The source endpoint.
    pub from: String,
    /// The destination endpoint.
    pub to: String,
    /// `ICMP` or `PORT/PROTOCOL`.
    pub probe: String,
    /// Allowed before the change.
    pub before: bool,
    /// Allowed after it.
    pub after: bool,
}

/// What `policy preview` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PreviewReport {
    /// Ordered endpoint pairs evaluated.
    pub pairs: usize,
    /// The probes evaluated for each pair.
    pub probes: Vec<String>,
    /// The verdicts that change.
    pub flips: Vec<Flip>,
    /// Problems in the change (objects left out of the preview).
    pub problems: Vec<String>,
}

fn specs(snapshot: &ClusterSnapshot, settings: &OperatorSettings) -> BTreeMap<String, NodeSpan> {
    core::compute(snapshot, settings).spans
}

fn probe_name(port: Option<PortArg>) -> String {
    match port {
        None => "ICMP".into(),
        Some(p) => format!(
            "{}/{}",
            p.port,
            match p.protocol {
                17 => "UDP",
                132 => "SCTP",
                _ => "TCP",
            }
        ),
    }
}

/// Previews `change` against the file datastore in `dir`, for ICMP and `ports` (default: every
/// TCP port a pod declares).
pub fn preview(
    dir: &Path,
    change: &Path,
    ports: &[PortArg],
    settings: &OperatorSettings,
) -> Result<PreviewReport, String> {
    let before = Reader::new(dir).read().map_err(|e| format!("file datastore {}: {e}", dir.display()))?.snapshot;
    let text = read_manifest_file(change).map_err(|e| e.to_string())?;
    let (after, problems) = overlay(before.clone(), change, &text);
    let (old, new) = (specs(&before, settings), specs(&after, settings));
    let mut ports: Vec<Option<PortArg>> = ports.iter().copied().map(Some).collect();
    if ports.is_empty() {
        let declared = before
            .pods
            .iter()
            .flat_map(|p| p.spec.iter().flat_map(|s| &s.containers))
            .flat_map(|c| c.ports.iter().flatten());
        let mut numbers: Vec<u16> = declared.filter_map(|p| u16::try_from(p.container_port).ok()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        ports.extend(numbers.into_iter().map(|port| Some(PortArg { port, protocol: 6 })));
    }
    ports.insert(0, None);
    let view = ClusterView { snapshot: before, ..ClusterView::default() };
    let ends: Vec<End> = holders(&view)
        .into_iter()
        .filter(|h| h.interface.is_some())
        .map(|h| End { address: h.address, pod: Some(h.owner), node: Some(h.node) })
        .collect();
    let mut report =
        PreviewReport { probes: ports.iter().map(|p| probe_name(*p)).collect(), problems, ..PreviewReport::default() };
    for from in &ends {
        for to in ends.iter().filter(|to| to.address != from.address) {
            report.pairs += 1;
            for port in &ports {
                let packet = packet(from, to, *port);
                let allowed = |spans: &BTreeMap<String, NodeSpan>| verdict(|node| spans.get(node), from, to, &packet).2;
                let (before, after) = (allowed(&old), allowed(&new));
                if before != after {
                    let name = |end: &End| end.pod.clone().unwrap_or_default();
                    report.flips.push(Flip { from: name(from), to: name(to), probe: probe_name(*port), before, after });
                }
            }
        }
    }
    report.flips.sort();
    Ok(report)
}

impl Report for PreviewReport {
    fn human(&self) -> String {
        let mut out = String::new();
        for problem in &self.problems {
            out += &format!("left out: {problem}\n");
        }
        let verdict = |allowed: bool| if allowed { "allowed" } else { "denied" }.to_string();
        let rows: Vec<[String; 4]> = self
            .flips
            .iter()
            .map(|f| {
                [
                    f.from.clone(),
                    f.to.clone(),
                    f.probe.clone(),
                    format!("{} -> {}", verdict(f.before), verdict(f.after)),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out += &table(["FROM", "TO", "PROBE", "CHANGE"], &rows);
        }
        out + &format!(
            "{} of {} pair-probes change ({} ordered pairs; probes {})\n",
            self.flips.len(),
            self.pairs * self.probes.len(),
            self.pairs,
            self.probes.join(", ")
        )
    }
}
