//! `gingham policy explain --from NS/POD|IP --to NS/POD|IP [--port 80/TCP]`: the verdict, and every
//! rule that decided it on the egress side (the source's node) and on the ingress side (the
//! destination's node), in evaluation order, each with why it did not match.

use std::net::IpAddr;
use std::str::FromStr;

use gingham_crds::api::common::Protocol;
use gingham_crds::api::span::NodeSpan;
use gingham_operator::core::{self, OperatorSettings};
use serde::Serialize;

use super::eval::{Direction, Packet, SideVerdict, evaluate};
use crate::ipam::{Holder, holders};
use crate::output::{Report, table};
use crate::source::ClusterView;

/// `--port`: `80`, `80/TCP`, `53/UDP` (TCP when no protocol is named).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortArg {
    /// The destination port.
    pub port: u16,
    /// The protocol number.
    pub protocol: u8,
}

impl FromStr for PortArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (port, protocol) = text.split_once('/').unwrap_or((text, "TCP"));
        let port = port.parse::<u16>().map_err(|_| format!("`{text}` has no port number: write e.g. 80/TCP"))?;
        let protocol = Protocol::named(protocol).number()?;
        if !matches!(protocol, 6 | 17 | 132) {
            return Err(format!("`{text}`: only TCP, UDP and SCTP have ports; leave --port out for ICMP"));
        }
        Ok(Self { port, protocol })
    }
}

/// One end of the question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct End {
    /// Its address.
    pub address: IpAddr,
    /// `namespace/pod`, when it is an endpoint.
    pub pod: Option<String>,
    /// Its node, when it is an endpoint.
    pub node: Option<String>,
}

impl End {
    /// `namespace/pod (address on node)`, or the address alone.
    pub fn label(&self) -> String {
        match (&self.pod, &self.node) {
            (Some(pod), Some(node)) => format!("{pod} ({} on {node})", self.address),
            _ => format!("{} (no endpoint: not policed)", self.address),
        }
    }
}

/// What `policy explain` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExplainReport {
    /// The source.
    pub from: End,
    /// The destination.
    pub to: End,
    /// The packet evaluated.
    pub packet: Packet,
    /// The source endpoint's egress verdict (none when the source is no endpoint).
    pub egress: Option<SideVerdict>,
    /// The destination endpoint's ingress verdict (none when the destination is no endpoint).
    pub ingress: Option<SideVerdict>,
    /// Whether the packet gets through.
    pub allowed: bool,
}

/// The end a `--from` or `--to` names: `namespace/pod` or an address.
pub fn resolve(holders: &[Holder], text: &str) -> Result<End, String> {
    let pods = holders.iter().filter(|h| h.interface.is_some());
    if text.contains('/') {
        let found = pods.clone().find(|h| h.owner == text);
        return found
            .map(|h| End { address: h.address, pod: Some(h.owner.clone()), node: Some(h.node.clone()) })
            .ok_or_else(|| format!("no endpoint {text} is reported by any node: check the name with `gingham ipam show --show-blocks` or give an address"));
    }
    let address: IpAddr = text.parse().map_err(|_| format!("`{text}` is neither NAMESPACE/POD nor an IP address"))?;
    let found = pods.clone().find(|h| h.address == address);
    Ok(End { address, pod: found.map(|h| h.owner.clone()), node: found.map(|h| h.node.clone()) })
}

/// Both sides' verdicts and the outcome, with each node's compiled policy from `policy_of`.
pub fn verdict<'a>(
    policy_of: impl Fn(&str) -> Option<&'a NodeSpan>,
    from: &End,
    to: &End,
    packet: &Packet,
) -> (Option<SideVerdict>, Option<SideVerdict>, bool) {
    let egress = side(&policy_of, from, Direction::Egress, packet);
    let ingress = side(&policy_of, to, Direction::Ingress, packet);
    let allowed = [&egress, &ingress].iter().all(|s| s.as_ref().is_none_or(|s| s.allowed));
    (egress, ingress, allowed)
}

/// The packet of a probe: to `port`, or an ICMP echo.
pub fn packet(from: &End, to: &End, port: Option<PortArg>) -> Packet {
    Packet {
        source: from.address,
        destination: to.address,
        protocol: port.map_or(1, |p| p.protocol),
        port: port.map(|p| p.port),
        icmp: port.is_none().then_some((8, 0)),
    }
}

fn side<'a>(
    policy_of: &impl Fn(&str) -> Option<&'a NodeSpan>,
    end: &End,
    direction: Direction,
    packet: &Packet,
) -> Option<SideVerdict> {
    let (pod, node) = (end.pod.as_ref()?, end.node.as_ref()?);
    Some(match policy_of(node) {
        Some(policy) => evaluate(policy, pod, direction, packet),
        None => SideVerdict {
            allowed: false,
            steps: Vec::new(),
            reason: format!("node {node} has no span: its agent drops the endpoint's traffic"),
        },
    })
}

/// The explanation for a packet from `from` to `to` (ICMP echo without `port`), against the spans
/// the operator computes from `view` (what it streams to the agents).
pub fn explain(view: &ClusterView, from: &str, to: &str, port: Option<PortArg>) -> Result<ExplainReport, String> {
    let holders = holders(view);
    let (from, to) = (resolve(&holders, from)?, resolve(&holders, to)?);
    let packet = packet(&from, &to, port);
    let spans = core::compute(&view.snapshot, &OperatorSettings::default()).spans;
    let policy_of = |node: &str| spans.get(node);
    let (egress, ingress, allowed) = verdict(policy_of, &from, &to, &packet);
    Ok(ExplainReport { from, to, packet, egress, ingress, allowed })
}

fn side_text(title: &str, end: &End, verdict: Option<&SideVerdict>) -> String {
    let Some(verdict) = verdict else {
        return format!("{title}: {} is no endpoint: nothing to evaluate\n", end.address);
    };
    let mut out = format!("{title} of {}: {}\n", end.label(), verdict.reason);
    if verdict.steps.is_empty() {
        return out;
    }
    let rows: Vec<[String; 5]> = verdict
        .steps
        .iter()
        .map(|s| {
            let action = s.action.map(|a| format!("{a:?}")).unwrap_or_else(|| "-".into());
            let rule = s.rule.map_or_else(|| "end".into(), |r| r.to_string());
            let matched = if s.matched { "match" } else { "no" };
            [s.position.to_string(), s.policy.clone(), rule, format!("{action} {matched}"), s.why.clone()]
        })
        .collect();
    for line in table(["#", "POLICY", "RULE", "ACTION", "WHY"], &rows).lines() {
        out += &format!("  {line}\n");
    }
    out
}

impl Report for ExplainReport {
    fn human(&self) -> String {
        let what = match (self.packet.port, self.packet.protocol) {
            (Some(port), 17) => format!("UDP port {port}"),
            (Some(port), 132) => format!("SCTP port {port}"),
            (Some(port), _) => format!("TCP port {port}"),
            (None, _) => "ICMP echo".into(),
        };
        let verdict = if self.allowed { "ALLOWED" } else { "DENIED" };
        let mut out = format!("{} -> {}, {what}: {verdict}\n\n", self.from.label(), self.to.label());
        out += &side_text("Egress", &self.from, self.egress.as_ref());
        out += "\n";
        out += &side_text("Ingress", &self.to, self.ingress.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ports_parse_with_tcp_as_the_default_or_say_what_to_write() {
        let cases = [
            ("80", Ok((80, 6))),
            ("53/UDP", Ok((53, 17))),
            ("9000/sctp", Ok((9000, 132))),
            ("http", Err("has no port number")),
            ("80/ICMP", Err("only TCP, UDP and SCTP have ports")),
            ("80/GRE", Err("protocol \"GRE\" is invalid")),
        ];
        for (text, expected) in cases {
            let parsed = text.parse::<PortArg>().map(|p| (p.port, p.protocol));
            match expected {
                Ok(pair) => assert_eq!(parsed.unwrap(), pair, "{text}"),
                Err(part) => assert!(parsed.unwrap_err().contains(part), "{text}"),
            }
        }
    }
}
