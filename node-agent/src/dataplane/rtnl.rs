//! [`Netlink`] over rtnetlink: the real kernel, in the network namespace of the thread that
//! connected. Routes, addresses, neighbours, FDB entries, VXLAN devices and nexthops of both
//! families are encoded and decoded here.
//!
//! IPv6 specifics: the kernel's own routes (`fe80::/64`, multicast) carry another protocol and are
//! never ours; a route's metric is not compared (gingham sets none but on IPv6 routes to remote
//! blocks, [`IPV6_REMOTE_METRIC`]; the kernel gives the others 1024); cloned
//! (exception) routes are ignored; an IPv6 address gingham adds skips duplicate address detection
//! (a VTEP address is allocated by IPAM, and a tentative address would not be usable at once).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The metric of gingham's IPv6 routes to remote blocks (encapsulated, or direct in CrossSubnet):
/// below BIRD's ([`crate::bird::KERNEL_METRIC`]), as an IPv4 route without a metric (0) is, so
/// that they win over the route BIRD learned for the same block. The kernel would give an IPv6
/// route without a metric 1024, and BIRD's would win.
pub const IPV6_REMOTE_METRIC: u32 = 256;

use futures::TryStreamExt;
use gingham_crds::api::nodenetwork::NodeCapabilities;
use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};
use tracing::warn;

use super::batch::{Batch, Request};
use super::diff::Op;
use super::model::{
    AddressSpec, FdbSpec, IPIP_DEVICE, LinkState, Mac, NeighbourSpec, NexthopSpec, ROUTE_PROTOCOL, RouteSpec,
    RouteTarget, SysctlSpec, TunnelKind, TunnelSpec, VXLAN_DEVICE,
};
use super::netlink::{Netlink, NetlinkError, Nexthops, describe};
use super::notify::Notifications;
use super::observed::Notice;
use super::wire::{self, RTM_DELNEXTHOP, RTM_GETNEXTHOP, RTM_NEWNEXTHOP};

/// The kernel's netlink, bound to the network namespace of the thread that called [`Self::connect`].
#[derive(Debug)]
pub struct RtNetlink {
    handle: Handle,
    batch: Batch,
    /// The kernel's notifications; `None` when the socket could not be opened (then every
    /// [`Netlink::notices`] says [`Notice::Lost`], and every sync dumps).
    notifications: Option<Notifications>,
    /// Interface names by index, from the last [`Netlink::links`] dump (which a sync reads
    /// first) and the link notifications since: the other dumps and notifications name their
    /// devices with it.
    names: Option<Vec<(u32, String)>>,
}

/// How one [`Op`] is made.
enum Change<'a> {
    /// A request for the [`Batch`].
    Netlink(Request),
    /// A write below `/proc/sys`.
    Sysctl(&'a SysctlSpec),
}

/// Interface indexes by name, looked up once per [`Netlink::apply`] until a link is created or
/// deleted.
type Indexes = HashMap<String, u32>;

impl RtNetlink {
    /// Opens three netlink sockets (requests and dumps, [`Batch`]es of changes, and the
    /// kernel's notifications) and spawns the first's connection task on the current tokio
    /// runtime.
    pub fn connect() -> Result<Self, NetlinkError> {
        let notifications = Notifications::open()
            .inspect_err(|error| warn!(%error, "cannot watch the kernel's notifications; every sync dumps it"))
            .ok();
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle, batch: Batch::open().map_err(NetlinkError::Connect)?, notifications, names: None })
    }

    async fn index(&self, op: &Op, name: &str, indexes: &mut Indexes) -> Result<u32, NetlinkError> {
        if let Some(index) = indexes.get(name) {
            return Ok(*index);
        }
        let found = self.handle.link().get().match_name(name.to_string()).execute().try_next().await;
        match found {
            Ok(Some(message)) => {
                indexes.insert(name.to_string(), message.header.index);
                Ok(message.header.index)
            }
            _ => Err(NetlinkError::MissingLink { op: describe(op), link: name.into() }),
        }
    }

    /// Interface names by index: from the last links dump, else from a new one.
    async fn name_of(&mut self) -> Result<Vec<(u32, String)>, NetlinkError> {
        if self.names.is_none() {
            self.links().await?;
        }
        Ok(self.names.clone().unwrap_or_default())
    }

    /// A route in the main table with our protocol, of its destination's family, without a
    /// metric but for an IPv6 route to a remote block ([`IPV6_REMOTE_METRIC`]; others get the
    /// kernel's default, 0 for IPv4 and 1024 for IPv6, and a deletion without one matches any).
    async fn route_message(
        &self,
        op: &Op,
        route: &RouteSpec,
        indexes: &mut Indexes,
    ) -> Result<RouteMessage, NetlinkError> {
        let mut message = RouteMessage::default();
        let header = &mut message.header;
        header.address_family = family(&route.destination.addr());
        header.destination_prefix_length = route.destination.prefix_len();
        header.table = RouteHeader::RT_TABLE_MAIN;
        header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
        header.scope = RouteScope::Universe;
        header.kind = RouteType::Unicast;
        message.attributes.push(RouteAttribute::Destination(route.destination.addr().into()));
        match &route.target {
            RouteTarget::Device(device) => {
                message.header.scope = RouteScope::Link;
                message.attributes.push(RouteAttribute::Oif(self.index(op, device, indexes).await?));
            }
            RouteTarget::Blackhole => message.header.kind = RouteType::BlackHole,
            RouteTarget::Via { gateway, device } => {
                message.attributes.push(RouteAttribute::Gateway((*gateway).into()));
                if let Some(device) = device {
                    message.attributes.push(RouteAttribute::Oif(self.index(op, device, indexes).await?));
                    message.header.flags.insert(RouteFlags::Onlink);
                }
            }
            RouteTarget::Nexthop(id) => message.attributes.push(RouteAttribute::NhId(*id)),
        }
        let remote = matches!(route.target, RouteTarget::Via { .. } | RouteTarget::Nexthop(_));
        if remote && route.destination.addr().is_ipv6() {
            message.attributes.push(RouteAttribute::Priority(IPV6_REMOTE_METRIC));
        }
        Ok(message)
    }

    /// How to make a change: the netlink request, with the flags rtnetlink's own requests use
    /// (acknowledgements are the [`Batch`]'s business), or a sysctl write.
    async fn request<'a>(&self, op: &'a Op, indexes: &mut Indexes) -> Result<Change<'a>, NetlinkError> {
        const REPLACE: u16 = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
        const CREATE: u16 = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
        let (message, flags) = match op {
            Op::CreateTunnel(tunnel) => (RouteNetlinkMessage::NewLink(tunnel_message(tunnel)), CREATE),
            Op::SetLink { name, mtu, mac } => {
                let mut builder = LinkUnspec::new_with_name(name).up();
                if let Some(mtu) = mtu {
                    builder = builder.mtu(*mtu);
                }
                if let Some(mac) = mac {
                    builder = builder.address(mac.0.to_vec());
                }
                (RouteNetlinkMessage::SetLink(builder.build()), CREATE)
            }
            Op::DeleteLink(name) => {
                (RouteNetlinkMessage::DelLink(LinkUnspec::new_with_name(name).build()), NLM_F_REQUEST)
            }
            Op::AddAddress(a) => {
                let message = address_message(a.address, self.index(op, &a.device, indexes).await?);
                (RouteNetlinkMessage::NewAddress(message), REPLACE)
            }
            Op::DeleteAddress(a) => {
                let message = address_message(a.address, self.index(op, &a.device, indexes).await?);
                (RouteNetlinkMessage::DelAddress(message), NLM_F_REQUEST)
            }
            Op::ReplaceNeighbour(n) => {
                let mut message = neighbour(family(&n.address), self.index(op, &n.device, indexes).await?);
                message.attributes.push(NeighbourAttribute::Destination(n.address.into()));
                message.attributes.push(NeighbourAttribute::LinkLayerAddress(n.mac.0.to_vec()));
                (RouteNetlinkMessage::NewNeighbour(message), REPLACE)
            }
            Op::DeleteNeighbour(n) => {
                let mut message = neighbour(family(&n.address), self.index(op, &n.device, indexes).await?);
                message.attributes.push(NeighbourAttribute::Destination(n.address.into()));
                (RouteNetlinkMessage::DelNeighbour(message), NLM_F_REQUEST)
            }
            Op::ReplaceFdb(f) | Op::DeleteFdb(f) => {
                let mut message = neighbour(AddressFamily::Bridge, self.index(op, &f.device, indexes).await?);
                message.header.flags = NeighbourFlags::Own;
                message.attributes.push(NeighbourAttribute::LinkLayerAddress(f.mac.0.to_vec()));
                message.attributes.push(NeighbourAttribute::Destination(f.destination.into()));
                match op {
                    Op::ReplaceFdb(_) => (RouteNetlinkMessage::NewNeighbour(message), REPLACE),
                    _ => (RouteNetlinkMessage::DelNeighbour(message), NLM_F_REQUEST),
                }
            }
            Op::ReplaceRoute(route) => {
                (RouteNetlinkMessage::NewRoute(self.route_message(op, route, indexes).await?), REPLACE)
            }
            Op::DeleteRoute(route) => {
                (RouteNetlinkMessage::DelRoute(self.route_message(op, route, indexes).await?), NLM_F_REQUEST)
            }
            Op::ReplaceNexthop(n) => {
                let oif = self.index(op, &n.device, indexes).await?;
                let payload = wire::new_nexthop(n.id, n.gateway, oif, ROUTE_PROTOCOL);
                return Ok(Change::Netlink(Request::Raw { kind: RTM_NEWNEXTHOP, flags: REPLACE, payload }));
            }
            Op::DeleteNexthop(n) => {
                let payload = wire::delete_nexthop(n.id);
                return Ok(Change::Netlink(Request::Raw { kind: RTM_DELNEXTHOP, flags: NLM_F_REQUEST, payload }));
            }
            Op::WriteSysctl(sysctl) => return Ok(Change::Sysctl(sysctl)),
        };
        let mut message = NetlinkMessage::from(message);
        message.header.flags = flags;
        Ok(Change::Netlink(Request::Route(message)))
    }

    /// Sends the pending requests and records their outcomes in `results`.
    async fn flush(
        &mut self,
        ops: &[Op],
        pending: &mut Vec<(usize, Request)>,
        results: &mut [Result<(), NetlinkError>],
    ) {
        if pending.is_empty() {
            return;
        }
        let (positions, requests): (Vec<usize>, Vec<_>) = pending.drain(..).unzip();
        let notifications = &mut self.notifications;
        let drain = || notifications.iter_mut().for_each(Notifications::drain);
        for (position, outcome) in positions.into_iter().zip(self.batch.send(requests, drain).await) {
            if let (Err(source), Some(result), Some(op)) = (outcome, results.get_mut(position), ops.get(position)) {
                *result = Err(NetlinkError::Apply { op: describe(op), source });
            }
        }
    }
}

/// The netlink family of an address.
fn family(address: &IpAddr) -> AddressFamily {
    if address.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 }
}

/// An address on a device (to add or delete). An IPv6 one skips duplicate address detection.
fn address_message(address: IpNet, index: u32) -> AddressMessage {
    let ip = address.addr();
    let mut message = AddressMessage::default();
    message.header.family = family(&ip);
    message.header.index = index;
    message.header.prefix_len = address.prefix_len();
    if ip.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
    }
    message.attributes.push(AddressAttribute::Local(ip));
    message.attributes.push(AddressAttribute::Address(ip));
    message
}

/// A permanent neighbour or FDB entry on a device, without addresses yet.
fn neighbour(family: AddressFamily, index: u32) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = family;
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    message
}

/// The link of a new tunnel device, up. VXLAN sends no outer UDP checksum (the kernel's default
/// is to compute one): RFC 7348 says it SHOULD be zero, the inner packet carries its own, and
/// computing it costs CPU per byte on a node without tunnel checksum offload (bench 2).
fn tunnel_message(tunnel: &TunnelSpec) -> LinkMessage {
    match &tunnel.kind {
        TunnelKind::Vxlan { vni, port, local } => {
            let builder = LinkVxlan::new(&tunnel.name, *vni);
            let builder = match local {
                IpAddr::V4(local) => builder.local(*local),
                IpAddr::V6(local) => builder.local6(*local),
            };
            let mut builder = builder.port(*port).learning(false).udp_csum(false).mtu(tunnel.mtu).up();
            if let Some(mac) = tunnel.mac {
                builder = builder.address(mac.0.to_vec());
            }
            builder.build()
        }
        TunnelKind::Ipip => rtnetlink::LinkIpIp::new(IPIP_DEVICE).mtu(tunnel.mtu).up().build(),
    }
}

fn link_state(message: &LinkMessage) -> Option<LinkState> {
    let mut name = None;
    let mut mtu = 0;
    let mut mac = None;
    let mut tunnel = None;
    let mut vxlan = (None, None, None);
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::IpIp) => tunnel = Some(TunnelKind::Ipip),
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            for item in data {
                                match item {
                                    InfoVxlan::Id(id) => vxlan.0 = Some(*id),
                                    InfoVxlan::Port(port) => vxlan.1 = Some(*port),
                                    InfoVxlan::Local(local) => vxlan.2 = Some(IpAddr::V4(*local)),
                                    InfoVxlan::Local6(local) => vxlan.2 = Some(IpAddr::V6(*local)),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(vni), Some(port), Some(local)) = vxlan {
        tunnel = Some(TunnelKind::Vxlan { vni, port, local });
    }
    Some(LinkState {
        index: message.header.index,
        name: name?,
        tunnel,
        mtu,
        mac,
        up: message.header.flags.contains(LinkFlags::Up),
    })
}

fn named(names: &[(u32, String)], index: u32) -> Option<String> {
    names.iter().find(|(i, _)| *i == index).map(|(_, n)| n.clone())
}

/// The destination of an IPv4 or IPv6 route in the main table, and whether it carries our
/// protocol. Cloned (exception) routes are not routes anyone added.
fn main_route(message: &RouteMessage) -> Option<(IpNet, bool)> {
    let header = &message.header;
    let mut table = u32::from(header.table);
    let mut destination = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = Some(IpAddr::V6(*a)),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let destination = destination.unwrap_or(unspecified);
    if family(&destination) != header.address_family {
        return None;
    }
    let destination = IpNet::new(destination, header.destination_prefix_length).ok()?;
    Some((destination, header.protocol == RouteProtocol::from(ROUTE_PROTOCOL)))
}

fn route_spec(message: &RouteMessage, names: &[(u32, String)]) -> Option<RouteSpec> {
    let (destination, true) = main_route(message)? else { return None };
    let (mut gateway, mut oif, mut nexthop) = (None, None, None);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(index) => oif = named(names, *index),
            RouteAttribute::NhId(id) => nexthop = Some(*id),
            _ => {}
        }
    }
    // An IPv6 blackhole is reported through `lo`: its type says what it is.
    let target = match (message.header.kind, nexthop, gateway) {
        (RouteType::BlackHole, _, _) => RouteTarget::Blackhole,
        (_, Some(id), _) => RouteTarget::Nexthop(id),
        (_, None, Some(gateway)) => RouteTarget::Via { gateway, device: oif },
        (_, None, None) => RouteTarget::Device(oif?),
    };
    Some(RouteSpec { destination, target })
}

/// An IPv4 or IPv6 address (`IFA_LOCAL`, else `IFA_ADDRESS`) on a named device.
fn address_spec(message: &AddressMessage, names: &[(u32, String)]) -> Option<AddressSpec> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip = local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    if family(&ip) != message.header.family {
        return None;
    }
    let address = IpNet::new(ip, message.header.prefix_len).ok()?;
    Some(AddressSpec { device: named(names, message.header.index)?, address })
}

fn neighbour_parts(message: &NeighbourMessage) -> (Option<IpAddr>, Option<Mac>) {
    let (mut ip, mut mac) = (None, None);
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(IpAddr::V6(*a)),
            // An FDB entry's (AF_BRIDGE) destination is not decoded by netlink-packet-route.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(|b| IpAddr::V4(b.into())),
                    16 => <[u8; 16]>::try_from(bytes.as_slice()).ok().map(|b| IpAddr::V6(b.into())),
                    _ => None,
                };
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac);
            }
            _ => {}
        }
    }
    (ip, mac)
}

/// A permanent IPv4 (ARP) or IPv6 (NDP) neighbour.
fn neighbour_spec(message: &NeighbourMessage, names: &[(u32, String)]) -> Option<NeighbourSpec> {
    let (Some(address), Some(mac)) = neighbour_parts(message) else { return None };
    let permanent = family(&address) == message.header.family && message.header.state == NeighbourState::Permanent;
    permanent.then(|| Some(NeighbourSpec { device: named(names, message.header.ifindex)?, address, mac }))?
}

/// A permanent FDB entry with a destination.
fn fdb_spec(message: &NeighbourMessage, names: &[(u32, String)]) -> Option<FdbSpec> {
    let (Some(destination), Some(mac)) = neighbour_parts(message) else { return None };
    let permanent = message.header.family == AddressFamily::Bridge && message.header.state == NeighbourState::Permanent;
    permanent.then(|| Some(FdbSpec { device: named(names, message.header.ifindex)?, mac, destination }))?
}

/// A nexthop of ours as a spec, or the id of someone else's.
fn nexthop_of(nexthop: &wire::WireNexthop, names: &[(u32, String)]) -> Result<NexthopSpec, u32> {
    let device = nexthop.oif.and_then(|index| named(names, index));
    match (nexthop.protocol == ROUTE_PROTOCOL, nexthop.gateway, device) {
        (true, Some(gateway), Some(device)) => Ok(NexthopSpec { id: nexthop.id, gateway, device }),
        _ => Err(nexthop.id),
    }
}

/// What one notification says, for the kinds the dataplane manages (links update `names`).
fn notice(raw: &wire::Raw<'_>, names: &mut Vec<(u32, String)>) -> Option<Notice> {
    if matches!(raw.kind, RTM_NEWNEXTHOP | RTM_DELNEXTHOP) {
        let nexthop = wire::decode_nexthop(raw.payload)?;
        return Some(match (raw.kind, nexthop_of(&nexthop, names)) {
            (RTM_DELNEXTHOP, _) => Notice::NexthopGone(nexthop.id),
            (_, Ok(ours)) => Notice::Nexthop(ours),
            (_, Err(id)) => Notice::ForeignNexthop(id),
        });
    }
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw.bytes).ok()?;
    let replace = message.header.flags & NLM_F_REPLACE != 0;
    let NetlinkPayload::InnerMessage(inner) = message.payload else { return None };
    let gone_neighbour = |m: &NeighbourMessage, names: &[(u32, String)]| {
        let device = named(names, m.header.ifindex)?;
        match (m.header.family, neighbour_parts(m)) {
            (AddressFamily::Inet | AddressFamily::Inet6, (Some(address), _)) => {
                Some(Notice::NeighbourGone { device, address })
            }
            (AddressFamily::Bridge, (_, Some(mac))) => Some(Notice::FdbGone { device, mac }),
            _ => None,
        }
    };
    match inner {
        RouteNetlinkMessage::NewLink(m) => {
            let link = link_state(&m)?;
            names.retain(|(index, _)| *index != link.index);
            names.push((link.index, link.name.clone()));
            Some(Notice::Link(link))
        }
        RouteNetlinkMessage::DelLink(m) => Some(Notice::LinkGone(m.header.index)),
        RouteNetlinkMessage::NewAddress(m) => address_spec(&m, names).map(Notice::Address),
        RouteNetlinkMessage::DelAddress(m) => address_spec(&m, names).map(Notice::AddressGone),
        RouteNetlinkMessage::NewRoute(m) => match (route_spec(&m, names), main_route(&m)) {
            (Some(route), _) => Some(Notice::Route(route)),
            (None, Some((destination, false))) if replace => Some(Notice::RouteTaken(destination)),
            _ => None,
        },
        RouteNetlinkMessage::DelRoute(m) => route_spec(&m, names).map(Notice::RouteGone),
        RouteNetlinkMessage::NewNeighbour(m) => neighbour_spec(&m, names)
            .map(Notice::Neighbour)
            .or_else(|| fdb_spec(&m, names).map(Notice::Fdb))
            .or_else(|| gone_neighbour(&m, names)),
        RouteNetlinkMessage::DelNeighbour(m) => gone_neighbour(&m, names),
        _ => None,
    }
}

impl Netlink for RtNetlink {
    async fn links(&mut self) -> Result<Vec<LinkState>, NetlinkError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::List { what: "links", source })?;
        let links: Vec<LinkState> = messages.iter().filter_map(link_state).collect();
        self.names = Some(links.iter().map(|l| (l.index, l.name.clone())).collect());
        Ok(links)
    }

    async fn addresses(&mut self) -> Result<BTreeSet<AddressSpec>, NetlinkError> {
        let names = self.name_of().await?;
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::List { what: "addresses", source })?;
        Ok(messages.iter().filter_map(|m| address_spec(m, &names)).collect())
    }

    async fn routes(&mut self) -> Result<BTreeSet<RouteSpec>, NetlinkError> {
        let names = self.name_of().await?;
        let mut routes = BTreeSet::new();
        for (family, what) in [(AddressFamily::Inet, "IPv4 routes"), (AddressFamily::Inet6, "IPv6 routes")] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let messages: Vec<RouteMessage> = self
                .handle
                .route()
                .get(request)
                .execute()
                .try_collect()
                .await
                .map_err(|source| NetlinkError::List { what, source })?;
            routes.extend(messages.iter().filter_map(|m| route_spec(m, &names)));
        }
        Ok(routes)
    }

    async fn neighbours(&mut self) -> Result<BTreeSet<NeighbourSpec>, NetlinkError> {
        let names = self.name_of().await?;
        let mut neighbours = BTreeSet::new();
        for (family, what) in [(AddressFamily::Inet, "IPv4 neighbours"), (AddressFamily::Inet6, "IPv6 neighbours")] {
            let messages: Vec<NeighbourMessage> = self
                .handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute()
                .try_collect()
                .await
                .map_err(|source| NetlinkError::List { what, source })?;
            neighbours.extend(messages.iter().filter_map(|m| neighbour_spec(m, &names)));
        }
        Ok(neighbours)
    }

    async fn fdb(&mut self) -> Result<BTreeSet<FdbSpec>, NetlinkError> {
        let names = self.name_of().await?;
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::List { what: "fdb entries", source })?;
        Ok(messages.iter().filter_map(|m| fdb_spec(m, &names)).collect())
    }

    async fn nexthops(&mut self) -> Result<Nexthops, NetlinkError> {
        let names = self.name_of().await?;
        let messages = self
            .batch
            .dump(RTM_GETNEXTHOP, &wire::dump_nexthops())
            .await
            .map_err(|source| NetlinkError::Apply { op: "list nexthops".into(), source })?;
        let mut found = Nexthops::default();
        for bytes in &messages {
            let decoded = wire::messages(bytes).first().and_then(|raw| wire::decode_nexthop(raw.payload));
            match decoded.as_ref().map(|n| nexthop_of(n, &names)) {
                Some(Ok(ours)) => {
                    found.ours.insert(ours);
                }
                Some(Err(id)) => {
                    found.foreign.insert(id);
                }
                None => {}
            }
        }
        Ok(found)
    }

    async fn notices(&mut self) -> Vec<Notice> {
        let Some(notifications) = self.notifications.as_mut() else { return vec![Notice::Lost] };
        let received = notifications.take();
        let mut names = self.names.take().unwrap_or_default();
        let mut notices: Vec<Notice> = received
            .datagrams
            .iter()
            .flat_map(|datagram| wire::messages(datagram))
            .filter_map(|raw| notice(&raw, &mut names))
            .collect();
        self.names = Some(names);
        if received.lost {
            notices.push(Notice::Lost);
        }
        notices
    }

    fn sysctl(&mut self, path: &str) -> Option<String> {
        std::fs::read_to_string(format!("/proc/sys/{path}")).ok().map(|v| v.trim().to_string())
    }

    async fn capabilities(&mut self) -> NodeCapabilities {
        let links = self.links().await.unwrap_or_default();
        let has = |name: &str, module: &str| {
            links.iter().any(|l| l.name == name) || std::path::Path::new("/sys/module").join(module).exists()
        };
        let nexthops = match self.nexthops().await {
            Ok(_) => true,
            Err(error) => {
                warn!(%error, "no nexthop objects");
                false
            }
        };
        NodeCapabilities { ipip: has(IPIP_DEVICE, "ipip"), vxlan: has(VXLAN_DEVICE, "vxlan"), nexthops }
    }

    /// Netlink changes go out in [`Batch`]es, which the kernel handles in order; a sysctl, or a
    /// change after a link was created or deleted (whose interface index it may need), first
    /// sends what is pending.
    async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), NetlinkError>> {
        let mut results: Vec<Result<(), NetlinkError>> = Vec::with_capacity(ops.len());
        let mut pending = Vec::new();
        let mut indexes = Indexes::new();
        for (position, op) in ops.iter().enumerate() {
            match self.request(op, &mut indexes).await {
                Ok(Change::Netlink(request)) => {
                    pending.push((position, request));
                    results.push(Ok(()));
                }
                Ok(Change::Sysctl(s)) => {
                    self.flush(ops, &mut pending, &mut results).await;
                    let written = std::fs::write(format!("/proc/sys/{}", s.path), &s.value);
                    results.push(written.map_err(|source| NetlinkError::Sysctl {
                        path: s.path.clone(),
                        value: s.value.clone(),
                        source,
                    }));
                }
                Err(error) => results.push(Err(error)),
            }
            if matches!(op, Op::CreateTunnel(_) | Op::DeleteLink(_)) {
                self.flush(ops, &mut pending, &mut results).await;
                indexes.clear();
            }
        }
        self.flush(ops, &mut pending, &mut results).await;
        results
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ipv6_route(destination: &str, kind: RouteType, protocol: u8) -> RouteMessage {
        let net: IpNet = destination.parse().unwrap();
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet6;
        message.header.destination_prefix_length = net.prefix_len();
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::from(protocol);
        message.header.kind = kind;
        message.attributes.push(RouteAttribute::Destination(net.addr().into()));
        message.attributes.push(RouteAttribute::Priority(1024));
        message
    }

    #[test]
    fn ipv6_routes_decode_as_gingham_wrote_them_and_the_kernels_own_are_not_ours() {
        let names = vec![(1, "lo".to_string()), (7, "vxlan6.gingham".to_string())];
        // The kernel reports an IPv6 blackhole through lo, with a metric.
        let mut blackhole = ipv6_route("fd00:100::/122", RouteType::BlackHole, ROUTE_PROTOCOL);
        blackhole.attributes.push(RouteAttribute::Oif(1));
        assert_eq!(route_spec(&blackhole, &names).unwrap().to_string(), "blackhole fd00:100::/122");
        let mut via = ipv6_route("fd00:100:0:1::/122", RouteType::Unicast, ROUTE_PROTOCOL);
        via.attributes.push(RouteAttribute::Gateway("fd00:100:0:1::".parse::<IpAddr>().unwrap().into()));
        via.attributes.push(RouteAttribute::Oif(7));
        assert_eq!(
            route_spec(&via, &names).unwrap().to_string(),
            "fd00:100:0:1::/122 via fd00:100:0:1:: dev vxlan6.gingham onlink"
        );
        let kernel = ipv6_route("fe80::/64", RouteType::Unicast, 2);
        assert_eq!(main_route(&kernel).map(|(net, ours)| (net.to_string(), ours)), Some(("fe80::/64".into(), false)));
        assert_eq!(route_spec(&kernel, &names), None);
        let mut cloned = ipv6_route("fd00:100:0:1::5/128", RouteType::Unicast, ROUTE_PROTOCOL);
        cloned.header.flags.insert(RouteFlags::Cloned);
        assert_eq!(main_route(&cloned), None, "an exception route is nobody's");
    }

    #[test]
    fn ipv6_addresses_and_fdb_destinations_decode() {
        let names = vec![(7, "vxlan6.gingham".to_string())];
        let message = address_message("fd00:100::/128".parse().unwrap(), 7);
        assert_eq!(message.header.flags, AddressHeaderFlags::Nodad, "no duplicate address detection");
        let spec = address_spec(&message, &names).unwrap();
        assert_eq!((spec.device.as_str(), spec.address.to_string()), ("vxlan6.gingham", "fd00:100::/128".into()));
        let mut fdb = neighbour(AddressFamily::Bridge, 7);
        fdb.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 1, 0xb]));
        let destination: Ipv6Addr = "fd00:10::3".parse().unwrap();
        fdb.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Other(destination.octets().to_vec())));
        let entry = fdb_spec(&fdb, &names).unwrap();
        assert_eq!(entry.destination, IpAddr::V6(destination));
    }
}
