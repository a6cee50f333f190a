//! BIRD's configuration as typed values, decoded once from the node's BGP settings (its spec) and
//! its BGP sessions (its span, `bgppeers/<node>` on the stream). The renderer writes only
//! these: addresses, numbers, enums, and two text types that cannot carry BIRD syntax ([`Name`]
//! for protocol names, [`Quoted`] for passwords), so nothing in a spec can add to `bird.conf`
//! beyond the value it stands for.
//!
//! A session whose values BIRD would refuse is left out (and reported) rather than failing the
//! whole config: one bad peer never blocks the node's other sessions.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec, PeerKind};
use gingham_crds::api::{IpFamily, NodeNetworkSpec};
use gingham_crds::validate::bird::{check_name, check_quotable};
use gingham_crds::validate::{validate_bgp_session, validate_node_bgp};
use ipnet::IpNet;

use super::BirdError;

/// A BIRD symbol (protocol name): a letter or `_`, then letters, digits and `_`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// The name, when BIRD reads it as one symbol.
    pub fn new(text: &str) -> Result<Self, String> {
        check_name(text).map(|()| Self(text.to_string()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that BIRD reads back unchanged between double quotes; displayed with its quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted(String);

impl Quoted {
    /// The text, when it has no quote, backslash or control character.
    pub fn new(text: &str) -> Result<Self, String> {
        check_quotable(text).map(|()| Self(text.to_string()))
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// Which next hop a session advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// BIRD's default.
    Auto,
    /// This node.
    SelfHop,
    /// The original next hop.
    Keep,
}

/// One BGP session, every value checked against what BIRD accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The protocol name.
    pub name: Name,
    /// Why the session exists.
    pub kind: PeerKind,
    /// The peer's address and port.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// The peer's AS number.
    pub as_number: u32,
    /// The AS number this node presents.
    pub local_as: u32,
    /// The source address, when the session uses the node's address.
    pub source: Option<IpAddr>,
    /// The session password.
    pub password: Option<Quoted>,
    /// Keepalive time in seconds (hold time is three times it).
    pub keepalive: Option<u32>,
    /// Graceful-restart time in seconds.
    pub restart: Option<u32>,
    /// TTL security hops.
    pub ttl_security: Option<u8>,
    /// How often the local AS may appear in a path.
    pub allowed_local_as: Option<u32>,
    /// Next-hop handling.
    pub next_hop: NextHop,
    /// The peer is this node's route-reflector client.
    pub rr_client: bool,
}

/// BIRD's channel keyword of a family: `ipv4` or `ipv6`.
pub fn channel(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => "ipv4",
        IpFamily::IPv6 => "ipv6",
    }
}

/// The suffix of a family's protocol and filter names: none for IPv4 (the names of before), `6`
/// for IPv6.
pub fn suffix(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => "",
        IpFamily::IPv6 => "6",
    }
}

/// The node's whole BIRD configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdConfig {
    /// The node's name for the header comment, with anything but `[A-Za-z0-9._-]` replaced.
    pub node: String,
    /// The router id.
    pub router_id: Ipv4Addr,
    /// The node's AS number.
    pub as_number: u32,
    /// The port BIRD listens on.
    pub listen_port: u16,
    /// The route-reflector cluster id, when this node is a reflector.
    pub cluster_id: Option<Ipv4Addr>,
    /// The families the node routes: those it has an underlay address of (a node gets blocks only
    /// of those).
    pub families: Vec<IpFamily>,
    /// The node's blocks of both families, announced as blackholes.
    pub blocks: Vec<IpNet>,
    /// The blocks that are exported over BGP.
    pub exported: Vec<IpNet>,
    /// The sessions.
    pub sessions: Vec<Session>,
}

/// A session left out of BIRD's config, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    /// The session's name as the span gives it.
    pub peer: String,
    /// Why it was left out.
    pub reason: String,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BGP session {:?} left out of BIRD's config: {}", self.peer, self.reason)
    }
}

impl BirdConfig {
    /// Decodes the spec's BGP settings `bgp` and the span's sessions `peers`. The node's own
    /// settings must be valid (the agent accepts no spec whose settings are not:
    /// [`validate_node_bgp`]); a session that is not is left out and returned with the reason
    /// (its path is `bgppeers/<node>[i]`). Blocks and pools that did not decode are not rendered
    /// (the dataplane's plan reports them).
    pub fn decode(
        node: &str,
        spec: &NodeNetworkSpec,
        bgp: &NodeBgpSpec,
        peers: &[BgpPeerSession],
    ) -> Result<(Self, Vec<LeftOut>), BirdError> {
        let spec_error = |reason: String| BirdError::Render { peer: "(node settings)".into(), reason };
        validate_node_bgp(bgp).map_err(|errors| spec_error(join(&errors)))?;
        let router_id = *bgp.router_id.decoded("spec.bgp.routerID").map_err(|e| spec_error(e.to_string()))?;
        let cluster_id = match &bgp.route_reflector_cluster_id {
            Some(id) => Some(*id.decoded("spec.bgp.routeReflectorClusterID").map_err(|e| spec_error(e.to_string()))?),
            None => None,
        };
        let blocks = node_blocks(spec);
        let exported = blocks.iter().filter(|b| !export_disabled(spec, b)).copied().collect();
        let local = NodeAddresses::of(spec);
        let families = local.families();
        let mut config = Self {
            node: node
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' })
                .collect(),
            router_id,
            as_number: bgp.as_number,
            listen_port: bgp.listen_port,
            cluster_id,
            families,
            blocks,
            exported,
            sessions: Vec::with_capacity(peers.len()),
        };
        let mut left_out = Vec::new();
        for (index, peer) in peers.iter().enumerate() {
            match session(&format!("bgppeers/{node}[{index}]"), peer, bgp, &local, cluster_id.is_some()) {
                Ok(session) => config.sessions.push(session),
                Err(reason) => left_out.push(LeftOut { peer: peer.name.clone(), reason }),
            }
        }
        Ok((config, left_out))
    }
}

/// The node's underlay address of each family, the source of sessions to peers of that family.
/// An address that is in the spec but does not decode still makes its family routed (the spec is
/// rejected by validation anyway); its sessions then render without a source.
struct NodeAddresses {
    ipv4: NodeAddress,
    ipv6: NodeAddress,
}

/// One family's address of the node.
#[derive(Clone, Copy)]
struct NodeAddress {
    /// The spec has an address of this family.
    present: bool,
    /// The address, when it decoded.
    decoded: Option<IpAddr>,
}

impl NodeAddresses {
    fn of(spec: &NodeNetworkSpec) -> Self {
        let address = |field: &Option<gingham_crds::api::Wire<gingham_crds::api::Cidr>>| NodeAddress {
            present: field.is_some(),
            decoded: field.as_ref().and_then(|address| address.value()).map(|cidr| cidr.0.addr()),
        };
        Self { ipv4: address(&spec.address), ipv6: address(&spec.address6) }
    }

    fn families(&self) -> Vec<IpFamily> {
        [(IpFamily::IPv4, self.ipv4), (IpFamily::IPv6, self.ipv6)]
            .into_iter()
            .filter_map(|(family, address)| address.present.then_some(family))
            .collect()
    }

    /// The node's address of `peer`'s family.
    fn facing(&self, peer: &IpAddr) -> NodeAddress {
        if peer.is_ipv4() { self.ipv4 } else { self.ipv6 }
    }
}

fn session(
    path: &str,
    peer: &BgpPeerSession,
    bgp: &NodeBgpSpec,
    local: &NodeAddresses,
    reflector: bool,
) -> Result<Session, String> {
    validate_bgp_session(path, peer).map_err(|errors| join(&errors))?;
    let next_hop = match peer.next_hop_mode.as_deref() {
        None | Some("Auto") => NextHop::Auto,
        Some("Self") => NextHop::SelfHop,
        Some("Keep") => NextHop::Keep,
        Some(other) => return Err(format!("{other:?} is not a next-hop mode")),
    };
    let address = *peer.address.decoded(&format!("{path}.address")).map_err(|e| e.to_string())?;
    let local = local.facing(&address);
    if !local.present {
        let family = IpFamily::of(address);
        return Err(format!(
            "the peer {address} is {family} but this node has no {family} address (spec.address{}): a session carries the routes of its peer's family",
            if address.is_ipv4() { "" } else { "6" }
        ));
    }
    Ok(Session {
        name: Name::new(&peer.name)?,
        kind: peer.kind,
        address,
        port: peer.port,
        as_number: peer.as_number,
        local_as: peer.local_as_number.unwrap_or(bgp.as_number),
        source: local.decoded.filter(|_| peer.use_node_source_address),
        password: peer.password.as_deref().map(Quoted::new).transpose()?,
        keepalive: peer.keepalive_seconds,
        restart: peer.max_restart_seconds,
        ttl_security: peer.ttl_security,
        allowed_local_as: peer.allowed_local_as,
        next_hop,
        rr_client: reflector && peer.route_reflector_client,
    })
}

fn join(errors: &[gingham_crds::validate::FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The node's blocks of both families (each family has its own channels).
fn node_blocks(spec: &NodeNetworkSpec) -> Vec<IpNet> {
    spec.blocks.iter().filter_map(|b| b.value()).map(|cidr| cidr.0.trunc()).collect()
}

fn export_disabled(spec: &NodeNetworkSpec, block: &IpNet) -> bool {
    spec.pools
        .iter()
        .any(|pool| pool.disable_bgp_export && pool.cidr.value().is_some_and(|cidr| cidr.0.contains(block)))
}
