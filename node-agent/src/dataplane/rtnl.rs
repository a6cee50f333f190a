//! [`Netlink`] over rtnetlink: the real kernel, in the network namespace of the thread that
//! connected.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use gingham_crds::api::nodenetwork::NodeCapabilities;
use ipnet::Ipv4Net;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use super::diff::Op;
use super::model::{
    AddressSpec, FdbSpec, IPIP_DEVICE, LinkState, Mac, NeighbourSpec, ROUTE_PROTOCOL, RouteSpec, RouteTarget,
    TunnelKind, TunnelSpec, VXLAN_DEVICE,
};
use super::netlink::{Netlink, NetlinkError, describe};

/// The kernel's netlink, bound to the network namespace of the thread that called [`Self::connect`].
#[derive(Clone, Debug)]
pub struct RtNetlink {
    handle: Handle,
}

impl RtNetlink {
    /// Opens a netlink socket and spawns its connection task on the current tokio runtime.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    async fn index(&self, op: &Op, name: &str) -> Result<u32, NetlinkError> {
        let found = self.handle.link().get().match_name(name.to_string()).execute().try_next().await;
        match found {
            Ok(Some(message)) => Ok(message.header.index),
            _ => Err(NetlinkError::MissingLink { op: describe(op), link: name.into() }),
        }
    }

    async fn name_of(&mut self) -> Result<Vec<(u32, String)>, NetlinkError> {
        Ok(self.links().await?.into_iter().map(|l| (l.index, l.name)).collect())
    }

    async fn route_message(&self, op: &Op, route: &RouteSpec) -> Result<RouteMessage, NetlinkError> {
        let builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.destination.addr(), route.destination.prefix_len())
            .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
        let builder = match &route.target {
            RouteTarget::Device(device) => {
                builder.output_interface(self.index(op, device).await?).scope(RouteScope::Link)
            }
            RouteTarget::Blackhole => builder.kind(RouteType::BlackHole),
            RouteTarget::Via { gateway, device: Some(device) } => {
                builder.gateway(*gateway).output_interface(self.index(op, device).await?).onlink()
            }
            RouteTarget::Via { gateway, device: None } => builder.gateway(*gateway),
        };
        Ok(builder.build())
    }

    async fn change(&mut self, op: &Op) -> Result<(), NetlinkError> {
        let handle = &self.handle;
        let done = match op {
            Op::CreateTunnel(tunnel) => create_tunnel(handle, tunnel).await,
            Op::SetLink { name, mtu, mac } => {
                let mut builder = LinkUnspec::new_with_name(name).up();
                if let Some(mtu) = mtu {
                    builder = builder.mtu(*mtu);
                }
                if let Some(mac) = mac {
                    builder = builder.address(mac.0.to_vec());
                }
                handle.link().set(builder.build()).execute().await
            }
            Op::DeleteLink(name) => {
                let message = LinkUnspec::new_with_name(name).build();
                handle.link().del_with_message(message).execute().await
            }
            Op::AddAddress(a) | Op::DeleteAddress(a) => {
                let index = self.index(op, &a.device).await?;
                let ip = IpAddr::V4(a.address.addr());
                if let Op::AddAddress(_) = op {
                    handle.address().add(index, ip, a.address.prefix_len()).replace().execute().await
                } else {
                    let mut message = AddressMessage::default();
                    message.header.family = AddressFamily::Inet;
                    message.header.index = index;
                    message.header.prefix_len = a.address.prefix_len();
                    message.attributes.push(AddressAttribute::Local(ip));
                    message.attributes.push(AddressAttribute::Address(ip));
                    handle.address().del(message).execute().await
                }
            }
            Op::ReplaceNeighbour(n) => {
                let index = self.index(op, &n.device).await?;
                handle
                    .neighbours()
                    .add(index, IpAddr::V4(n.address))
                    .link_layer_address(&n.mac.0)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
            }
            Op::DeleteNeighbour(n) => {
                let mut message = NeighbourMessage::default();
                message.header.family = AddressFamily::Inet;
                message.header.ifindex = self.index(op, &n.device).await?;
                message.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(n.address)));
                handle.neighbours().del(message).execute().await
            }
            Op::ReplaceFdb(f) => {
                let index = self.index(op, &f.device).await?;
                handle
                    .neighbours()
                    .add_bridge(index, &f.mac.0)
                    .destination(IpAddr::V4(f.destination))
                    .flags(NeighbourFlags::Own)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
            }
            Op::DeleteFdb(f) => {
                let mut message = NeighbourMessage::default();
                message.header.family = AddressFamily::Bridge;
                message.header.ifindex = self.index(op, &f.device).await?;
                message.header.flags = NeighbourFlags::Own;
                message.attributes.push(NeighbourAttribute::LinkLayerAddress(f.mac.0.to_vec()));
                message.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(f.destination)));
                handle.neighbours().del(message).execute().await
            }
            Op::ReplaceRoute(route) => {
                let message = self.route_message(op, route).await?;
                handle.route().add(message).replace().execute().await
            }
            Op::DeleteRoute(route) => {
                let message = self.route_message(op, route).await?;
                handle.route().del(message).execute().await
            }
            Op::WriteSysctl(s) => {
                return std::fs::write(format!("/proc/sys/{}", s.path), &s.value)
                    .map_err(|source| NetlinkError::Sysctl { path: s.path.clone(), value: s.value.clone(), source });
            }
        };
        done.map_err(|source| NetlinkError::Apply { op: describe(op), source })
    }
}

async fn create_tunnel(handle: &Handle, tunnel: &TunnelSpec) -> Result<(), rtnetlink::Error> {
    match &tunnel.kind {
        TunnelKind::Vxlan { vni, port, local } => {
            let mut builder =
                LinkVxlan::new(&tunnel.name, *vni).port(*port).local(*local).learning(false).mtu(tunnel.mtu).up();
            if let Some(mac) = tunnel.mac {
                builder = builder.address(mac.0.to_vec());
            }
            handle.link().add(builder.build()).execute().await
        }
        TunnelKind::Ipip => {
            let builder = rtnetlink::LinkIpIp::new(IPIP_DEVICE).mtu(tunnel.mtu).up();
            handle.link().add(builder.build()).execute().await
        }
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
                                    InfoVxlan::Local(local) => vxlan.2 = Some(*local),
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

fn route_spec(message: &RouteMessage, names: &[(u32, String)]) -> Option<RouteSpec> {
    let header = &message.header;
    let mut table = u32::from(header.table);
    let (mut destination, mut gateway, mut oif) = (None, None, None);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = Some(*a),
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
            RouteAttribute::Oif(index) => oif = named(names, *index),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || header.protocol != RouteProtocol::from(ROUTE_PROTOCOL) {
        return None;
    }
    let destination =
        Ipv4Net::new(destination.unwrap_or(Ipv4Addr::UNSPECIFIED), header.destination_prefix_length).ok()?;
    let target = match (header.kind, gateway) {
        (RouteType::BlackHole, _) => RouteTarget::Blackhole,
        (_, Some(gateway)) => RouteTarget::Via { gateway, device: oif },
        (_, None) => RouteTarget::Device(oif?),
    };
    Some(RouteSpec { destination, target })
}

fn neighbour_parts(message: &NeighbourMessage) -> (Option<Ipv4Addr>, Option<Mac>) {
    let (mut ip, mut mac) = (None, None);
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac);
            }
            _ => {}
        }
    }
    (ip, mac)
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
        Ok(messages.iter().filter_map(link_state).collect())
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
        let mut out = BTreeSet::new();
        for message in messages.iter().filter(|m| m.header.family == AddressFamily::Inet) {
            let local = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let (Some(ip), Some(device)) = (local, named(&names, message.header.index)) else { continue };
            if let Ok(address) = Ipv4Net::new(ip, message.header.prefix_len) {
                out.insert(AddressSpec { device, address });
            }
        }
        Ok(out)
    }

    async fn routes(&mut self) -> Result<BTreeSet<RouteSpec>, NetlinkError> {
        let names = self.name_of().await?;
        let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::List { what: "routes", source })?;
        Ok(messages.iter().filter_map(|m| route_spec(m, &names)).collect())
    }

    async fn neighbours(&mut self) -> Result<BTreeSet<NeighbourSpec>, NetlinkError> {
        let names = self.name_of().await?;
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetlinkError::List { what: "neighbours", source })?;
        let permanent = messages.iter().filter(|m| m.header.state == NeighbourState::Permanent);
        Ok(permanent
            .filter_map(|m| {
                let (Some(address), Some(mac)) = neighbour_parts(m) else { return None };
                Some(NeighbourSpec { device: named(&names, m.header.ifindex)?, address, mac })
            })
            .collect())
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
        let permanent = messages.iter().filter(|m| m.header.state == NeighbourState::Permanent);
        Ok(permanent
            .filter_map(|m| {
                let (Some(destination), Some(mac)) = neighbour_parts(m) else { return None };
                Some(FdbSpec { device: named(&names, m.header.ifindex)?, mac, destination })
            })
            .collect())
    }

    fn sysctl(&mut self, path: &str) -> Option<String> {
        std::fs::read_to_string(format!("/proc/sys/{path}")).ok().map(|v| v.trim().to_string())
    }

    async fn capabilities(&mut self) -> NodeCapabilities {
        let links = self.links().await.unwrap_or_default();
        let has = |name: &str, module: &str| {
            links.iter().any(|l| l.name == name) || std::path::Path::new("/sys/module").join(module).exists()
        };
        NodeCapabilities { ipip: has(IPIP_DEVICE, "ipip"), vxlan: has(VXLAN_DEVICE, "vxlan") }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), NetlinkError> {
        self.change(op).await
    }
}
