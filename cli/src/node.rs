//! `gingham node status [NODE]`: every node's readiness from its NodeNetwork status, or one node
//! in detail: conditions, BGP sessions, endpoints, the policy revision applied and the last error;
//! with `--local`, on the node, the BGP sessions come live from the local BIRD.

use std::path::Path;

use gingham_crds::api::common::find_condition;
use gingham_crds::api::nodenetwork::conditions::{BGP_ESTABLISHED, POLICY_PROGRAMMED, READY, ROUTES_PROGRAMMED};
use gingham_crds::api::nodenetwork::{BgpSessionStatus, LocalEndpoint};
use gingham_crds::api::{NodeNetwork, NodeNetworkStatus};
use gingham_node_agent::bird::{parse_protocols, summary};
use serde::Serialize;

use crate::output::{Report, table};
use crate::source::ClusterView;

/// One node's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    /// The node.
    pub name: String,
    /// Its underlay addresses: IPv4, IPv6, or both separated by a comma (IPv4 first).
    pub address: String,
    /// Ready, RoutesProgrammed, PolicyProgrammed and BGPEstablished: (type, status, reason: message).
    pub conditions: Vec<ConditionState>,
    /// `established/total` BGP sessions.
    pub bgp: String,
    /// The spec generation the operator wrote, and the one the agent last applied (the policy
    /// revision): equal when the node is current.
    pub generation: Option<i64>,
    /// The generation the agent last applied.
    pub observed_generation: Option<i64>,
    /// The node's BGP sessions.
    pub bgp_sessions: Vec<BgpSessionStatus>,
    /// The node's endpoints.
    pub endpoints: Vec<LocalEndpoint>,
    /// The tunnel address, when a pool encapsulates.
    pub tunnel_address: Option<String>,
    /// The IPv6 VTEP address, when an IPv6 pool uses VXLAN.
    pub tunnel_address6: Option<String>,
    /// The last error the agent reported.
    pub last_error: Option<String>,
}

/// One condition, flattened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConditionState {
    /// The condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason and message.
    pub detail: String,
}

impl NodeState {
    fn of(name: &str, network: Option<&NodeNetwork>, status: Option<&NodeNetworkStatus>) -> Self {
        let conditions = [READY, ROUTES_PROGRAMMED, POLICY_PROGRAMMED, BGP_ESTABLISHED]
            .into_iter()
            .map(|kind| {
                let found = status.and_then(|s| find_condition(&s.conditions, kind));
                ConditionState {
                    type_: kind.to_string(),
                    status: found.map_or("Unknown", |c| c.status.as_str()).to_string(),
                    detail: found.map(|c| format!("{}: {}", c.reason, c.message)).unwrap_or_default(),
                }
            })
            .collect();
        Self {
            name: name.to_string(),
            address: network.map(|n| addresses(&n.spec)).unwrap_or_default(),
            conditions,
            bgp: status.and_then(|s| s.bgp_summary.clone()).unwrap_or_else(|| "-".into()),
            generation: network.and_then(|n| n.metadata.generation),
            observed_generation: status.and_then(|s| s.observed_generation),
            bgp_sessions: status.map(|s| s.bgp_sessions.clone()).unwrap_or_default(),
            endpoints: status.map(|s| s.endpoints.clone()).unwrap_or_default(),
            tunnel_address: status.and_then(|s| s.tunnel_address.as_ref().map(ToString::to_string)),
            tunnel_address6: status.and_then(|s| s.tunnel_address6.as_ref().map(ToString::to_string)),
            last_error: status.and_then(|s| s.last_error.clone()),
        }
    }

    /// The status of one condition type.
    fn condition(&self, kind: &str) -> &str {
        self.conditions.iter().find(|c| c.type_ == kind).map_or("Unknown", |c| c.status.as_str())
    }

    /// Ready, and running the spec the operator wrote last.
    pub fn is_healthy(&self) -> bool {
        self.condition(READY) == "True" && self.generation.is_some() && self.generation == self.observed_generation
    }

    fn revision(&self) -> String {
        let show = |g: Option<i64>| g.map_or_else(|| "-".to_string(), |g| g.to_string());
        format!("{}/{}", show(self.observed_generation), show(self.generation))
    }
}

/// What `node status` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NodeReport {
    /// Every node, one line each.
    All(Vec<NodeState>),
    /// One node in detail.
    One(Box<NodeState>),
}

impl NodeReport {
    /// Whether every node shown is healthy (exit code 0).
    pub fn is_healthy(&self) -> bool {
        match self {
            Self::All(nodes) => !nodes.is_empty() && nodes.iter().all(NodeState::is_healthy),
            Self::One(node) => node.is_healthy(),
        }
    }
}

/// The node status report, or the reason there is none (an unknown node).
pub fn status(view: &ClusterView, node: Option<&str>) -> Result<NodeReport, String> {
    let mut names: Vec<&String> = view.node_networks.keys().chain(view.snapshot.node_statuses.keys()).collect();
    names.sort();
    names.dedup();
    let state = |name: &str| NodeState::of(name, view.node_networks.get(name), view.snapshot.node_statuses.get(name));
    match node {
        None => Ok(NodeReport::All(names.into_iter().map(|n| state(n)).collect())),
        Some(node) if names.iter().any(|n| *n == node) => Ok(NodeReport::One(Box::new(state(node)))),
        Some(node) => Err(format!(
            "node {node} has no NodeNetwork (known: {}); check the name with `gingham node status`",
            names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

impl Report for NodeReport {
    fn human(&self) -> String {
        match self {
            Self::All(nodes) => {
                let rows: Vec<[String; 9]> = nodes
                    .iter()
                    .map(|n| {
                        [
                            n.name.clone(),
                            n.address.clone(),
                            n.condition(READY).into(),
                            n.condition(ROUTES_PROGRAMMED).into(),
                            n.condition(POLICY_PROGRAMMED).into(),
                            n.bgp.clone(),
                            n.endpoints.len().to_string(),
                            n.revision(),
                            n.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                let header =
                    ["NODE", "ADDRESS", "READY", "ROUTES", "POLICY", "BGP", "ENDPOINTS", "REVISION", "LAST ERROR"];
                if nodes.is_empty() {
                    "no NodeNetworks yet (is the operator running?)\n".into()
                } else {
                    table(header, &rows)
                }
            }
            Self::One(node) => detail(node),
        }
    }
}

/// The node the CLI runs on: `node` when given, else $NODE_NAME, else the host name.
pub fn this_node(node: Option<String>) -> String {
    let hostname = || {
        let output = std::process::Command::new("hostname").output().ok()?;
        Some(String::from_utf8_lossy(&output.stdout).trim().to_string()).filter(|h| !h.is_empty())
    };
    node.or_else(|| std::env::var("NODE_NAME").ok()).or_else(hostname).unwrap_or_else(|| "node".into())
}

/// `node status --local`: the node's state, with its BGP sessions as the local BIRD reports them
/// now (`birdc show protocols` on the agent's control socket), not as the last status said.
pub fn local_status(view: &ClusterView, node: &str, bird_dir: &Path) -> Result<NodeReport, String> {
    let socket = bird_dir.join("bird.ctl");
    let output = std::process::Command::new("birdc")
        .arg("-s")
        .arg(&socket)
        .args(["show", "protocols"])
        .output()
        .map_err(|e| format!("cannot run birdc: {e}; install bird2 or run this on the node"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !text.contains("Name") {
        return Err(format!(
            "BIRD did not answer on {}: {}{}; pass the agent's --bird-dir",
            socket.display(),
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let network = view.node_networks.get(node);
    // The sessions are in the node's span, which the operator computes and streams.
    let spans = gingham_operator::core::compute(&view.snapshot, &Default::default()).spans;
    let peers = spans.get(node).map(|span| span.bgp_peers.clone()).unwrap_or_default();
    let mut state = NodeState::of(node, network, view.snapshot.node_statuses.get(node));
    state.bgp_sessions = parse_protocols(&text, &peers);
    state.bgp = summary(&state.bgp_sessions);
    Ok(NodeReport::One(Box::new(state)))
}

fn detail(node: &NodeState) -> String {
    let mut out = format!("Node:        {}\nAddress:     {}\n", node.name, node.address);
    out += &format!("Revision:    applied {} (applied/written generation)\n", node.revision());
    if let Some(tunnel) = &node.tunnel_address {
        out += &format!("Tunnel:      {tunnel}\n");
    }
    if let Some(tunnel) = &node.tunnel_address6 {
        out += &format!("Tunnel (v6): {tunnel}\n");
    }
    out += &format!("Last error:  {}\n\nConditions:\n", node.last_error.as_deref().unwrap_or("none"));
    let rows: Vec<[String; 3]> =
        node.conditions.iter().map(|c| [c.type_.clone(), c.status.clone(), c.detail.clone()]).collect();
    out += &indent(&table(["TYPE", "STATUS", "DETAIL"], &rows));
    out += &format!("\nBGP sessions ({}):\n", node.bgp);
    let rows: Vec<[String; 5]> = node
        .bgp_sessions
        .iter()
        .map(|s| [s.name.clone(), s.peer_address.clone(), s.state.clone(), s.since.clone(), s.info.clone()])
        .collect();
    out += &indent(&table(["NAME", "PEER", "STATE", "SINCE", "INFO"], &rows));
    out += &format!("\nEndpoints ({}):\n", node.endpoints.len());
    let rows: Vec<[String; 3]> = node
        .endpoints
        .iter()
        .map(|e| {
            let addresses: Vec<String> = e.all_addresses().into_iter().map(|(_, a)| a.to_string()).collect();
            [e.name.clone(), addresses.join(","), e.interface.clone()]
        })
        .collect();
    out += &indent(&table(["POD", "ADDRESS", "INTERFACE"], &rows));
    out
}

/// A node's underlay addresses as shown: IPv4, IPv6, or both (`10.0.0.1/24,fd00::1/64`).
fn addresses(spec: &gingham_crds::api::NodeNetworkSpec) -> String {
    [&spec.address, &spec.address6].into_iter().flatten().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gingham_crds::api::{NodeNetwork, NodeNetworkSpec};

    use super::*;

    #[test]
    fn a_dual_stack_node_shows_both_addresses_both_tunnels_and_each_pods_addresses() {
        let spec = NodeNetworkSpec {
            address: Some("10.0.0.1/24".into()),
            address6: Some("fd00:10::1/64".into()),
            ..NodeNetworkSpec::default()
        };
        let network = NodeNetwork::new("n1", spec);
        let status = NodeNetworkStatus {
            tunnel_address: Some("10.244.0.0".into()),
            tunnel_address6: Some("fd00:244::".into()),
            endpoints: vec![LocalEndpoint {
                name: "prod/web".into(),
                address: "10.244.0.1".into(),
                addresses: vec!["10.244.0.1".into(), "fd00:244::1".into()],
                interface: "gh1".into(),
                ..LocalEndpoint::default()
            }],
            ..NodeNetworkStatus::default()
        };
        let state = NodeState::of("n1", Some(&network), Some(&status));
        assert_eq!(state.address, "10.0.0.1/24,fd00:10::1/64");
        let text = detail(&state);
        for shown in ["Tunnel:      10.244.0.0", "Tunnel (v6): fd00:244::", "10.244.0.1,fd00:244::1"] {
            assert!(text.contains(shown), "{shown:?} in\n{text}");
        }
        let ipv6_only = NodeNetwork::new(
            "n2",
            NodeNetworkSpec { address6: Some("fd00:10::2/64".into()), ..NodeNetworkSpec::default() },
        );
        assert_eq!(NodeState::of("n2", Some(&ipv6_only), None).address, "fd00:10::2/64");
    }
}
