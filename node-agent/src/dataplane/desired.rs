//! The desired kernel state for one node, computed purely from a [`NodeView`] (its decoded
//! [`super::plan::NodePlan`]) and what the host can do ([`HostFacts`]). No I/O happens here.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use gingham_crds::api::common::EncapsulationMode;
use ipnet::Ipv4Net;

use super::NodeView;
use super::model::{
    AddressSpec, FdbSpec, IPIP_DEVICE, IPIP_OVERHEAD, Mac, NeighbourSpec, RouteSpec, RouteTarget, SysctlSpec,
    TunnelKind, TunnelSpec, VXLAN_DEVICE, VXLAN_OVERHEAD,
};
use super::nexthop::RemoteRoute;
use super::plan::{PoolPlan, RemoteBlock};

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

/// Facts about this node that every decision needs.
struct Local {
    address: Ipv4Net,
    tunnel_address: Option<Ipv4Addr>,
    vtep_mac: Option<Mac>,
}

impl Local {
    fn of(view: &NodeView<'_>) -> Option<Self> {
        Some(Self {
            address: view.plan.address?,
            tunnel_address: view.tunnel_address,
            vtep_mac: view.plan.tunnel.vtep_mac,
        })
    }
}

fn pool_for<'a>(view: &'a NodeView<'_>, block: &Ipv4Net) -> Option<&'a PoolPlan> {
    view.plan.pools.iter().find(|pool| pool.cidr.contains(block))
}

fn path(pool: &PoolPlan, same_subnet: bool) -> Path {
    let choose = |mode: EncapsulationMode, encapsulated: Path| match mode {
        EncapsulationMode::Always => Some(encapsulated),
        EncapsulationMode::CrossSubnet if same_subnet => Some(Path::Direct),
        EncapsulationMode::CrossSubnet => Some(encapsulated),
        EncapsulationMode::Never => None,
    };
    choose(pool.vxlan_mode, Path::Vxlan).or_else(|| choose(pool.ipip_mode, Path::Ipip)).unwrap_or(Path::Bgp)
}

/// A remote block with the way to reach it.
struct Remote<'a> {
    block: &'a RemoteBlock,
    path: Path,
}

fn remotes<'a>(view: &'a NodeView<'_>, local: &Local) -> Vec<Remote<'a>> {
    view.plan
        .remotes
        .iter()
        .filter_map(|block| {
            let pool = pool_for(view, &block.cidr)?;
            Some(Remote { block, path: path(pool, local.address.contains(&block.node_ip)) })
        })
        .collect()
}

/// Which tunnel devices some pool needs.
fn needs(view: &NodeView<'_>) -> (bool, bool) {
    let pools = &view.plan.pools;
    let vxlan = pools.iter().any(|p| p.vxlan_mode.is_enabled());
    let ipip = pools.iter().any(|p| p.ipip_mode.is_enabled() && !p.vxlan_mode.is_enabled());
    (vxlan, ipip)
}

/// Why part of the spec cannot be programmed (each is reported; the rest is still applied). The
/// values that did not decode are the plan's to report ([`super::plan::NodePlan::report`]).
pub fn problems(view: &NodeView<'_>, facts: &HostFacts) -> Vec<String> {
    let mut problems = Vec::new();
    let (vxlan, ipip) = needs(view);
    if ipip && !facts.ipip {
        problems.push(
            "a pool uses IPIP but this kernel has no IP-in-IP: its remote blocks are not routed; use VXLAN".into(),
        );
    }
    let Some(local) = Local::of(view) else {
        problems.push("spec.address is not an IPv4 address with prefix length: no remote block is routed".into());
        return problems;
    };
    if vxlan && !vxlan_ready(&local) {
        problems.push("a pool uses VXLAN but the node has no tunnel address (see the IPAM error, or spec.tunnel.blocks is empty) or spec.tunnel.vtepMAC is missing or invalid: no VXLAN device".into());
        return problems;
    }
    for remote in remotes(view, &local).iter().filter(|r| r.path == Path::Vxlan) {
        if vtep(remote.block).is_none() {
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

/// A remote node's VTEP: its tunnel address and MAC, when it has both.
fn vtep(block: &RemoteBlock) -> Option<(Ipv4Addr, Mac)> {
    Some((block.tunnel_address?, block.vtep_mac?))
}

/// Every route gingham should own on this node as plain routes: pods, owned blocks and
/// encapsulated remote blocks (the fallback when the kernel has no nexthop objects).
pub fn desired_routes(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<RouteSpec> {
    let mut routes = local_routes(view);
    routes.extend(remote_routes(view, facts).into_iter().map(|r| r.route));
    routes
}

/// The routes of this node's own pods and blocks.
pub fn local_routes(view: &NodeView<'_>) -> BTreeSet<RouteSpec> {
    let mut routes = BTreeSet::new();
    // An IPv6-only pod has no IPv4 route.
    for (endpoint, address) in view.endpoints.iter().filter_map(|e| Some((e, e.address?))) {
        let destination = Ipv4Net::from(address);
        routes.insert(RouteSpec { destination, target: RouteTarget::Device(endpoint.interface.clone()) });
    }
    for destination in &view.plan.blocks {
        routes.insert(RouteSpec { destination: *destination, target: RouteTarget::Blackhole });
    }
    routes
}

/// A plain route to each remote block this node routes itself (encapsulated, or direct in
/// CrossSubnet), with the node that owns the block.
pub fn remote_routes(view: &NodeView<'_>, facts: &HostFacts) -> Vec<RemoteRoute> {
    let Some(local) = Local::of(view) else { return Vec::new() };
    let mut routes = Vec::new();
    for remote in remotes(view, &local) {
        let node_ip = remote.block.node_ip;
        let target = match remote.path {
            Path::Vxlan if vxlan_ready(&local) => {
                let Some((gateway, _)) = vtep(remote.block) else { continue };
                RouteTarget::Via { gateway, device: Some(VXLAN_DEVICE.into()) }
            }
            Path::Ipip if facts.ipip => RouteTarget::Via { gateway: node_ip, device: Some(IPIP_DEVICE.into()) },
            Path::Direct => RouteTarget::Via { gateway: node_ip, device: None },
            Path::Vxlan | Path::Ipip | Path::Bgp => continue,
        };
        let route = RouteSpec { destination: remote.block.cidr, target };
        routes.push(RemoteRoute { node: remote.block.node.clone(), route });
    }
    routes
}

/// The tunnel devices some pool needs (IP-in-IP only when the kernel has it).
pub fn desired_tunnels(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<TunnelSpec> {
    let mut tunnels = BTreeSet::new();
    let Some(local) = Local::of(view) else { return tunnels };
    let (vxlan, ipip) = needs(view);
    let underlay = facts.underlay_mtu.unwrap_or(FALLBACK_UNDERLAY_MTU);
    let tunnel = &view.plan.tunnel;
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
        let (address, mac) = vtep(remote.block)?;
        Some((address, mac, remote.block.node_ip))
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
