//! BGP topology: each node's sessions for BIRD.
//!
//! - Mesh (`nodeToNodeMeshEnabled`, default true): every node peers with every other node that has
//!   an address. With the mesh off, route reflectors (nodes with a cluster id) still peer with each
//!   other.
//! - A BGPPeer with `peerSelector` makes every node it applies to peer with every selected node,
//!   and every selected node peer back. A route reflector marks the session `routeReflectorClient`
//!   when the other side is not in its cluster.
//! - A BGPPeer with `peerIP` adds an external router on the nodes it applies to: all nodes, or
//!   `node`, or the nodes `nodeSelector` picks.
//! - Sessions are deduplicated by peer address (mesh first, then node peers, then external ones)
//!   and named for BIRD: `mesh_10_0_0_2`, `rr_10_0_0_2`, `node_10_0_0_2`, `peer_<bgppeer>`.
//! - One session per family, as Calico runs (its `bird` and `bird6`): two nodes with IPv4 and
//!   IPv6 addresses peer twice, between their IPv4 addresses for IPv4 routes and between their
//!   IPv6 addresses for IPv6 routes (`mesh_fd00__2`). A session carries the routes of its peer
//!   address's family. Why not one session with both channels (BIRD 2 can): an IPv6-only or
//!   IPv4-only node has no transport of the other family, the next hop of a route is then the
//!   peer's own address of that family (the node's underlay address, where the routes point),
//!   with no extended-next-hop configuration, a BGPPeer's `peerIP` is one address of one family,
//!   and a family whose path breaks does not take the other's routes down with it.
//! - The router id is always IPv4-shaped: the node's `gingham.dev/bgp-router-id`, else its IPv4
//!   address, else Calico's hash of its name ([`NodeFacts::bgp_router_id`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gingham_crds::api::bgp::{NextHopMode, SourceAddress};
use gingham_crds::api::common::BgpPassword;
use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec, PeerKind};
use gingham_crds::api::{BGPConfigurationSpec, BGPPeer, BGPPeerSpec, IpFamily, Wire};
use gingham_crds::selector::Selector;
use gingham_crds::validate::{bird, parse_peer_address, validate_bgp_peer, validate_bgp_session};
use k8s_openapi::api::core::v1::Secret;

use super::ObjectProblem;
use super::facts::NodeFacts;

/// The BGP port when nothing else is configured.
const BGP_PORT: u16 = 179;

/// Everything the BGP topology reads.
pub struct BgpInput<'a> {
    /// The `default` BGPConfiguration's spec (or the defaults).
    pub config: &'a BGPConfigurationSpec,
    /// Nodes by name.
    pub nodes: &'a BTreeMap<String, NodeFacts>,
    /// BGPPeers.
    pub peers: &'a [BGPPeer],
    /// Secrets, for passwords (only those in `namespace` are read).
    pub secrets: &'a [Secret],
    /// The operator's namespace.
    pub namespace: &'a str,
}

/// One node's BGP: its own settings (in its NodeNetwork) and its sessions, which depend on the
/// other nodes (in its span, streamed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeBgp {
    /// The node's own settings.
    pub spec: NodeBgpSpec,
    /// The sessions BIRD should run.
    pub peers: Vec<BgpPeerSession>,
}

/// Which nodes a BGPPeer applies to.
enum Applies {
    All,
    Node(String),
    Selector(Selector),
}

/// Who a BGPPeer peers with.
enum Target {
    Address { address: IpAddr, port: Option<u16>, as_number: u32 },
    Nodes(Selector),
}

/// A BGPPeer, validated and with its password resolved.
struct Resolved {
    name: String,
    applies: Applies,
    target: Target,
    session: BgpPeerSession,
}

impl Resolved {
    fn applies_to(&self, node: &NodeFacts) -> bool {
        match &self.applies {
            Applies::All => true,
            Applies::Node(name) => *name == node.name,
            Applies::Selector(selector) => selector.matches(&node.labels),
        }
    }
}

/// Each node's BGP (`None` for nodes without any underlay address), and the problems found.
pub fn topology<'a>(input: &BgpInput<'a>) -> (BTreeMap<String, Option<NodeBgp>>, Vec<ObjectProblem>) {
    let mut problems = Vec::new();
    let mut resolved: Vec<Resolved> = Vec::new();
    let mut peers: Vec<&BGPPeer> = input.peers.iter().collect();
    peers.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for peer in peers {
        match resolve(peer, input) {
            Ok(r) => resolved.push(r),
            Err((reason, message)) => problems.push(ObjectProblem {
                kind: "BGPPeer".into(),
                namespace: None,
                name: peer.metadata.name.clone().unwrap_or_default(),
                reason: reason.into(),
                message,
            }),
        }
    }
    let mesh_template = match mesh_session(input) {
        Ok(session) => session,
        Err((reason, message)) => {
            problems.push(ObjectProblem {
                kind: "BGPConfiguration".into(),
                namespace: None,
                name: "default".into(),
                reason: reason.into(),
                message,
            });
            BgpPeerSession::default()
        }
    };
    let default_as = input.config.default_as_number();
    let port = input.config.listen_port.unwrap_or(BGP_PORT);
    let addressed: Vec<&NodeFacts> =
        input.nodes.values().filter(|n| IpFamily::BOTH.iter().any(|f| n.ip_of(*f).is_some())).collect();
    let reflectors: Vec<&NodeFacts> = addressed.iter().copied().filter(|n| n.rr_cluster_id.is_some()).collect();
    // For each node-selecting BGPPeer: the nodes it applies to and the nodes it selects.
    let node_peerings: Vec<(&Resolved, Vec<&NodeFacts>, Vec<&NodeFacts>)> = resolved
        .iter()
        .filter_map(|r| match &r.target {
            Target::Nodes(selector) => Some((
                r,
                addressed.iter().copied().filter(|n| r.applies_to(n)).collect(),
                addressed.iter().copied().filter(|n| selector.matches(&n.labels)).collect(),
            )),
            Target::Address { .. } => None,
        })
        .collect();
    let mut result = BTreeMap::new();
    for node in input.nodes.values() {
        let families: Vec<IpFamily> = IpFamily::BOTH.into_iter().filter(|f| node.ip_of(*f).is_some()).collect();
        if families.is_empty() {
            problems.push(ObjectProblem {
                kind: "Node".into(),
                namespace: None,
                name: node.name.clone(),
                reason: "NoAddress".into(),
                message: "the node has no address: set annotation gingham.dev/ipv4-address (e.g. 192.168.10.2/24), gingham.dev/ipv6-address (e.g. fd00:10::2/64) or an InternalIP".into(),
            });
            result.insert(node.name.clone(), None);
            continue;
        }
        let mut sessions: Vec<BgpPeerSession> = Vec::new();
        // The other nodes of `list` with an address of a family this node has, one entry per family.
        let peers_in = |list: &[&'a NodeFacts]| -> Vec<(&'a NodeFacts, IpFamily)> {
            families
                .iter()
                .flat_map(|family| {
                    others(list, &node.name).into_iter().filter(|o| o.ip_of(*family).is_some()).map(|o| (o, *family))
                })
                .collect()
        };
        let node_session = |(other, family): (&NodeFacts, IpFamily), kind: PeerKind, template: &BgpPeerSession| {
            let address = other.ip_of(family).map(Wire::from).unwrap_or_default();
            let prefix = match kind {
                PeerKind::Mesh => "mesh",
                PeerKind::RouteReflector => "rr",
                PeerKind::Explicit => "node",
            };
            BgpPeerSession {
                name: format!("{prefix}_{}", sanitise(address.as_str())),
                kind,
                port,
                as_number: other.as_number.unwrap_or(default_as),
                route_reflector_client: node.rr_cluster_id.is_some() && node.rr_cluster_id != other.rr_cluster_id,
                address,
                ..template.clone()
            }
        };
        if input.config.mesh_enabled() {
            sessions.extend(peers_in(&addressed).into_iter().map(|o| node_session(o, PeerKind::Mesh, &mesh_template)));
        } else if node.rr_cluster_id.is_some() {
            let template = BgpPeerSession::default();
            sessions.extend(peers_in(&reflectors).into_iter().map(|o| node_session(o, PeerKind::Mesh, &template)));
        }
        for (peer, applies, selected) in &node_peerings {
            let forward = if peer.applies_to(node) { peers_in(selected) } else { Vec::new() };
            let backward = if selected.iter().any(|s| s.name == node.name) { peers_in(applies) } else { Vec::new() };
            for other in forward.into_iter().chain(backward) {
                let reflector = node.rr_cluster_id.is_some() || other.0.rr_cluster_id.is_some();
                let kind = if reflector { PeerKind::RouteReflector } else { PeerKind::Explicit };
                sessions.push(node_session(other, kind, &peer.session));
            }
        }
        for peer in resolved.iter().filter(|r| r.applies_to(node)) {
            if let Target::Address { address, port: peer_port, as_number } = &peer.target
                && node.ip_of(IpFamily::of(*address)) != Some(*address)
            {
                let family = IpFamily::of(*address);
                if node.ip_of(family).is_none() {
                    problems.push(ObjectProblem {
                        kind: "BGPPeer".into(),
                        namespace: None,
                        name: peer.name.clone(),
                        reason: "NoAddressForPeer".into(),
                        message: format!(
                            "node {} has no {family} address, so it does not peer with {address}: give the node one, or narrow the BGPPeer's node or nodeSelector",
                            node.name
                        ),
                    });
                    continue;
                }
                sessions.push(BgpPeerSession {
                    name: format!("peer_{}", sanitise(&peer.name)),
                    kind: PeerKind::Explicit,
                    address: (*address).into(),
                    port: peer_port.unwrap_or(BGP_PORT),
                    as_number: *as_number,
                    ..peer.session.clone()
                });
            }
        }
        let spec = NodeBgpSpec {
            router_id: node.bgp_router_id().into(),
            as_number: node.as_number.unwrap_or(default_as),
            listen_port: port,
            route_reflector_cluster_id: node.rr_cluster_id.map(Into::into),
        };
        let peers = checked(&node.name, dedupe(sessions), &mut problems);
        result.insert(node.name.clone(), Some(NodeBgp { spec, peers }));
    }
    (result, problems)
}

fn others<'n>(list: &[&'n NodeFacts], name: &str) -> Vec<&'n NodeFacts> {
    list.iter().copied().filter(|o| o.name != name).collect()
}

/// Keeps the first session per peer address and makes names unique.
fn dedupe(sessions: Vec<BgpPeerSession>) -> Vec<BgpPeerSession> {
    let mut addresses = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut kept = Vec::new();
    for mut session in sessions {
        if !addresses.insert((session.address.clone(), session.port)) {
            continue;
        }
        // Room for a `_NN` suffix within BIRD's name limit (a BGPPeer's name may be long).
        session.name.truncate(bird::NAME_BYTES - 4);
        let base = session.name.clone();
        let mut suffix = 2;
        while !names.insert(session.name.clone()) {
            session.name = format!("{base}_{suffix}");
            suffix += 1;
        }
        kept.push(session);
    }
    kept
}

/// The sessions BIRD accepts; each other one is left out and reported, so that one bad value
/// never makes BIRD refuse the node's whole config.
fn checked(node: &str, sessions: Vec<BgpPeerSession>, problems: &mut Vec<ObjectProblem>) -> Vec<BgpPeerSession> {
    let mut kept = Vec::with_capacity(sessions.len());
    for session in sessions {
        match validate_bgp_session(&format!("session {}", session.name), &session) {
            Ok(()) => kept.push(session),
            Err(errors) => problems.push(ObjectProblem {
                kind: "Node".into(),
                namespace: None,
                name: node.to_string(),
                reason: "InvalidBGPSession".into(),
                message: format!(
                    "BGP session {} to {} left out: {}",
                    session.name,
                    session.address,
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                ),
            }),
        }
    }
    kept
}

/// Letters, digits and `_` only: safe as a BIRD protocol name.
pub fn sanitise(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn mesh_session(input: &BgpInput<'_>) -> Result<BgpPeerSession, (&'static str, String)> {
    let password = password(input.config.node_mesh_password.as_ref(), input).map_err(|m| ("MissingSecret", m))?;
    let max_restart_seconds = match &input.config.node_mesh_max_restart_time {
        Some(text) => Some(
            bird::duration_in("nodeMeshMaxRestartTime", text, &bird::RESTART_SECONDS)
                .map_err(|m| ("InvalidBGPConfiguration", format!("spec.nodeMeshMaxRestartTime: {m}")))?,
        ),
        None => None,
    };
    Ok(BgpPeerSession { password, max_restart_seconds, use_node_source_address: true, ..BgpPeerSession::default() })
}

fn password(reference: Option<&BgpPassword>, input: &BgpInput<'_>) -> Result<Option<String>, String> {
    let Some(key_ref) = reference.and_then(|p| p.secret_key_ref.as_ref()) else { return Ok(None) };
    let secret = input.secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(key_ref.name.as_str())
            && s.metadata.namespace.as_deref() == Some(input.namespace)
    });
    let value = secret.and_then(|s| {
        let data =
            s.data.as_ref().and_then(|d| d.get(&key_ref.key)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
        data.or_else(|| s.string_data.as_ref().and_then(|d| d.get(&key_ref.key)).cloned())
    });
    match value {
        Some(value) => Ok(Some(value)),
        None if key_ref.optional == Some(true) => Ok(None),
        None => Err(format!(
            "password secret {}/{} has no key {:?}: create it, or mark the reference optional",
            input.namespace, key_ref.name, key_ref.key
        )),
    }
}

fn resolve(peer: &BGPPeer, input: &BgpInput<'_>) -> Result<Resolved, (&'static str, String)> {
    let spec: &BGPPeerSpec = &peer.spec;
    let name = peer.metadata.name.clone().unwrap_or_default();
    let invalid = |message: String| ("InvalidBGPPeer", message);
    validate_bgp_peer(spec)
        .map_err(|errors| invalid(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
    let set = |v: &Option<String>| v.as_deref().filter(|t| !t.is_empty()).map(str::to_string);
    let parse = |text: String| Selector::parse(&text).map_err(|e| invalid(e.to_string()));
    let applies = match (set(&spec.node), set(&spec.node_selector)) {
        (Some(node), _) => Applies::Node(node),
        (None, Some(selector)) => Applies::Selector(parse(selector)?),
        (None, None) => Applies::All,
    };
    let target = match (set(&spec.peer_ip), set(&spec.peer_selector)) {
        (Some(text), _) => {
            let (address, port) = parse_peer_address(&text).map_err(invalid)?;
            let as_number = spec.as_number.as_ref().map_or(0, |a| a.value());
            Target::Address { address, port, as_number }
        }
        (None, Some(selector)) => Target::Nodes(parse(selector)?),
        (None, None) => return Err(invalid("a BGPPeer needs peerIP or peerSelector".into())),
    };
    let duration = |field: &str, value: &Option<String>, range| match value {
        Some(text) => {
            bird::duration_in(field, text, range).map(Some).map_err(|m| invalid(format!("spec.{field}: {m}")))
        }
        None => Ok(None),
    };
    let next_hop_mode = match (spec.next_hop_mode, spec.keep_original_next_hop) {
        (Some(NextHopMode::Auto), _) => Some("Auto".to_string()),
        (Some(NextHopMode::SelfHop), _) => Some("Self".to_string()),
        (Some(NextHopMode::Keep), _) | (None, Some(true)) => Some("Keep".to_string()),
        (None, _) => None,
    };
    let session = BgpPeerSession {
        password: password(spec.password.as_ref(), input).map_err(|m| ("MissingSecret", m))?,
        keepalive_seconds: duration("keepaliveTime", &spec.keepalive_time, &bird::KEEPALIVE_SECONDS)?,
        max_restart_seconds: duration("maxRestartTime", &spec.max_restart_time, &bird::RESTART_SECONDS)?,
        local_as_number: spec.local_as_number.as_ref().map(|a| a.value()),
        next_hop_mode,
        ttl_security: spec.ttl_security,
        allowed_local_as: spec.num_allowed_local_as_numbers,
        use_node_source_address: spec.source_address != Some(SourceAddress::None),
        ..BgpPeerSession::default()
    };
    Ok(Resolved { name, applies, target, session })
}

#[cfg(test)]
#[path = "bgp_tests.rs"]
mod tests;
