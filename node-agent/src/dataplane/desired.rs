//! The desired kernel state for one node, computed purely from a [`NodeView`] and what the host can
//! do ([`HostFacts`]). No I/O happens here.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use gingham_crds::api::IPAMBlockSpec;
use gingham_crds::api::common::EncapsulationMode;
use gingham_crds::api::nodenetwork::PoolRouting;
use ipnet::Ipv4Net;
use tracing::warn;

use super::NodeView;
use super::model::{
    AddressSpec, FdbSpec, IPIP_DEVICE, IPIP_OVERHEAD, Mac, NeighbourSpec, RouteSpec, RouteTarget, SysctlSpec,
    TunnelKind, TunnelSpec, VXLAN_DEVICE, VXLAN_OVERHEAD,
};

/// The underlay MTU assumed when it cannot be detected.
pub const FALLBACK_UNDERLAY_MTU: u32 = 1500;

/// Facts about the host that shape the desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// The MTU of the device holding the node's address, if found.
    pub underlay_mtu: Option<u32>,
    /// The kernel supports IP-in-IP.
    pub ipip: bool,
}

/// How traffic to one remote block travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Vxlan,
    Ipip,
    Direct,
    Bgp,
}

/// Parsed facts about this node that every decision needs.
struct Local {
    address: Ipv4Net,
    tunnel_address: Option<Ipv4Addr>,
    vtep_mac: Option<Mac>,
}

impl Local {
    fn of(view: &NodeView<'_>) -> Option<Self> {
        let address = view.spec.address.parse::<Ipv4Net>().ok()?;
        Some(Self {
            address,
            tunnel_address: view.tunnel_address,
            vtep_mac: view.spec.tunnel.vtep_mac.as_deref().and_then(Mac::parse),
        })
    }
}

fn pool_for<'a>(view: &'a NodeView<'_>, block: &Ipv4Net) -> Option<&'a PoolRouting> {
    view.spec.pools.iter().find(|pool| pool.cidr.parse::<Ipv4Net>().is_ok_and(|cidr| cidr.contains(block)))
}

fn path(pool: &PoolRouting, same_subnet: bool) -> Path {
    let choose = |mode: EncapsulationMode, encapsulated: Path| match mode {
        EncapsulationMode::Always => Some(encapsulated),
        EncapsulationMode::CrossSubnet if same_subnet => Some(Path::Direct),
        EncapsulationMode::CrossSubnet => Some(encapsulated),
        EncapsulationMode::Never => None,
    };
    choose(pool.vxlan_mode, Path::Vxlan).or_else(|| choose(pool.ipip_mode, Path::Ipip)).unwrap_or(Path::Bgp)
}

/// A remote block with everything needed to route to it.
struct Remote<'a> {
    cidr: Ipv4Net,
    node_ip: Ipv4Addr,
    block: &'a IPAMBlockSpec,
    path: Path,
}

fn remotes<'a>(view: &'a NodeView<'_>, local: &Local) -> Vec<Remote<'a>> {
    let mut out = Vec::new();
    for block in view.blocks.iter().filter(|b| b.node != view.node_name) {
        // The node address normally carries its prefix length; a bare address is accepted too.
        let node = block
            .node_address
            .parse::<Ipv4Net>()
            .or_else(|_| block.node_address.parse::<Ipv4Addr>().map(Ipv4Net::from));
        let (Ok(cidr), Ok(node)) = (block.cidr.parse::<Ipv4Net>(), node) else {
            warn!(cidr = %block.cidr, node = %block.node, "skipping an IPAMBlock with an unparsable cidr or nodeAddress");
            continue;
        };
        let Some(pool) = pool_for(view, &cidr) else { continue };
        let path = path(pool, local.address.contains(&node.addr()));
        out.push(Remote { cidr, node_ip: node.addr(), block, path });
    }
    out
}

/// Which tunnel devices some pool needs.
fn needs(view: &NodeView<'_>) -> (bool, bool) {
    let vxlan = view.spec.pools.iter().any(|p| p.vxlan_mode.is_enabled());
    let ipip = view.spec.pools.iter().any(|p| p.ipip_mode.is_enabled() && !p.vxlan_mode.is_enabled());
    (vxlan, ipip)
}

/// Why part of the spec cannot be programmed (each is reported; the rest is still applied).
pub fn problems(view: &NodeView<'_>, facts: &HostFacts) -> Vec<String> {
    let mut problems = Vec::new();
    let (vxlan, ipip) = needs(view);
    if ipip && !facts.ipip {
        problems.push(
            "a pool uses IPIP but this kernel has no IP-in-IP: its remote blocks are not routed; use VXLAN".into(),
        );
    }
    let Some(local) = Local::of(view) else {
        problems.push(format!("spec.address {:?} is not an IPv4 address with prefix length", view.spec.address));
        return problems;
    };
    if vxlan && !vxlan_ready(&local) {
        problems.push("a pool uses VXLAN but the node has no tunnel address (see the IPAM error, or spec.tunnel.blocks is empty) or spec.tunnel.vtepMAC is missing or invalid: no VXLAN device".into());
        return problems;
    }
    for remote in remotes(view, &local).iter().filter(|r| r.path == Path::Vxlan) {
        let address = remote.block.tunnel_address.as_deref().and_then(|a| a.parse::<Ipv4Addr>().ok());
        let mac = remote.block.vtep_mac.as_deref().and_then(Mac::parse);
        if address.is_none() || mac.is_none() {
            problems.push(format!(
                "IPAMBlock {} of node {} lacks a valid tunnelAddress or vtepMAC: it is not routed over VXLAN",
                remote.block.cidr, remote.block.node
            ));
        }
    }
    problems
}

fn vxlan_ready(local: &Local) -> bool {
    local.tunnel_address.is_some() && local.vtep_mac.is_some()
}

/// Every route gingham should own on this node: pods, owned blocks and encapsulated remote blocks.
pub fn desired_routes(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<RouteSpec> {
    let mut routes = BTreeSet::new();
    for endpoint in view.endpoints {
        let destination = Ipv4Net::from(endpoint.address);
        routes.insert(RouteSpec { destination, target: RouteTarget::Device(endpoint.interface.clone()) });
    }
    for block in &view.spec.blocks {
        if let Ok(destination) = block.parse::<Ipv4Net>() {
            routes.insert(RouteSpec { destination, target: RouteTarget::Blackhole });
        }
    }
    let Some(local) = Local::of(view) else { return routes };
    for remote in remotes(view, &local) {
        let target = match remote.path {
            Path::Vxlan if vxlan_ready(&local) => {
                let mac = remote.block.vtep_mac.as_deref().and_then(Mac::parse);
                let gateway = remote.block.tunnel_address.as_deref().and_then(|a| a.parse().ok());
                let (Some(gateway), Some(_)) = (gateway, mac) else { continue };
                RouteTarget::Via { gateway, device: Some(VXLAN_DEVICE.into()) }
            }
            Path::Ipip if facts.ipip => RouteTarget::Via { gateway: remote.node_ip, device: Some(IPIP_DEVICE.into()) },
            Path::Direct => RouteTarget::Via { gateway: remote.node_ip, device: None },
            Path::Vxlan | Path::Ipip | Path::Bgp => continue,
        };
        routes.insert(RouteSpec { destination: remote.cidr, target });
    }
    routes
}

/// The tunnel devices some pool needs (IP-in-IP only when the kernel has it).
pub fn desired_tunnels(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<TunnelSpec> {
    let mut tunnels = BTreeSet::new();
    let Some(local) = Local::of(view) else { return tunnels };
    let (vxlan, ipip) = needs(view);
    let underlay = facts.underlay_mtu.unwrap_or(FALLBACK_UNDERLAY_MTU);
    let tunnel = &view.spec.tunnel;
    if vxlan && vxlan_ready(&local) {
        tunnels.insert(TunnelSpec {
            name: VXLAN_DEVICE.into(),
            kind: TunnelKind::Vxlan { vni: tunnel.vxlan_vni, port: tunnel.vxlan_port, local: local.address.addr() },
            mtu: tunnel.vxlan_mtu.filter(|m| *m > 0).unwrap_or(underlay.saturating_sub(VXLAN_OVERHEAD)),
            mac: local.vtep_mac,
        });
    }
    if ipip && facts.ipip {
        tunnels.insert(TunnelSpec {
            name: IPIP_DEVICE.into(),
            kind: TunnelKind::Ipip,
            mtu: tunnel.ipip_mtu.filter(|m| *m > 0).unwrap_or(underlay.saturating_sub(IPIP_OVERHEAD)),
            mac: None,
        });
    }
    tunnels
}

/// The tunnel address (`/32`) on every desired tunnel device.
pub fn desired_addresses(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<AddressSpec> {
    let Some(address) = Local::of(view).and_then(|local| local.tunnel_address) else { return BTreeSet::new() };
    desired_tunnels(view, facts)
        .into_iter()
        .map(|tunnel| AddressSpec { device: tunnel.name, address: Ipv4Net::from(address) })
        .collect()
}

/// A permanent neighbour entry per remote VTEP reached over VXLAN.
pub fn desired_neighbours(view: &NodeView<'_>) -> BTreeSet<NeighbourSpec> {
    vxlan_remotes(view).map(|(address, mac, _)| NeighbourSpec { device: VXLAN_DEVICE.into(), address, mac }).collect()
}

/// A permanent FDB entry per remote VTEP reached over VXLAN.
pub fn desired_fdb(view: &NodeView<'_>) -> BTreeSet<FdbSpec> {
    vxlan_remotes(view).map(|(_, mac, destination)| FdbSpec { device: VXLAN_DEVICE.into(), mac, destination }).collect()
}

/// (VTEP address, VTEP MAC, underlay address) of every remote node a VXLAN route goes to.
fn vxlan_remotes<'a>(view: &'a NodeView<'_>) -> impl Iterator<Item = (Ipv4Addr, Mac, Ipv4Addr)> + 'a {
    let local = Local::of(view);
    let remotes = match &local {
        Some(local) if vxlan_ready(local) => remotes(view, local),
        _ => Vec::new(),
    };
    remotes.into_iter().filter(|r| r.path == Path::Vxlan).filter_map(|remote| {
        let address = remote.block.tunnel_address.as_deref()?.parse().ok()?;
        let mac = Mac::parse(remote.block.vtep_mac.as_deref()?)?;
        Some((address, mac, remote.node_ip))
    })
}

/// IP forwarding, and proxy ARP without delay on each endpoint's host-side interface.
pub fn desired_sysctls(view: &NodeView<'_>) -> BTreeSet<SysctlSpec> {
    let mut sysctls = BTreeSet::from([SysctlSpec { path: "net/ipv4/ip_forward".into(), value: "1".into() }]);
    for endpoint in view.endpoints {
        let name = &endpoint.interface;
        sysctls.insert(SysctlSpec { path: format!("net/ipv4/conf/{name}/proxy_arp"), value: "1".into() });
        sysctls.insert(SysctlSpec { path: format!("net/ipv4/neigh/{name}/proxy_delay"), value: "0".into() });
    }
    sysctls
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
