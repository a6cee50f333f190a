//! The desired kernel state for one node, computed purely from a [`NodeView`] (its decoded
//! [`super::plan::NodePlan`]) and what the host can do ([`HostFacts`]). No I/O happens here.
//!
//! Each address family is planned on its own, from this node's facts of that family
//! ([`Local`]): its underlay address (`spec.address` or `spec.address6`), its VTEP address and
//! MAC, and the pools and remote blocks of the family. A node without an address of a family
//! routes nothing of it (an IPv6-only node has no IPv4 at all); IP-in-IP is IPv4 only.

use std::collections::BTreeSet;
use std::net::IpAddr;

use gingham_crds::api::IpFamily;
use gingham_crds::api::common::EncapsulationMode;
use ipnet::IpNet;

use super::NodeView;
use super::model::{
    AddressSpec, FdbSpec, IPIP_DEVICE, IPIP_OVERHEAD, Mac, NeighbourSpec, RouteSpec, RouteTarget, SysctlSpec,
    TunnelKind, TunnelSpec, vxlan_device, vxlan_overhead,
};
use super::nexthop::RemoteRoute;
use super::plan::{PoolPlan, RemoteBlock};

/// The underlay MTU assumed when it cannot be detected.
pub const FALLBACK_UNDERLAY_MTU: u32 = 1500;

/// Facts about the host that shape the desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// The MTU of the device holding the node's address (IPv4, else IPv6), if found.
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

/// Facts about this node, of one family, that every decision of that family needs.
struct Local {
    family: IpFamily,
    /// The underlay address with its subnet (CrossSubnet compares remote nodes with it).
    address: IpNet,
    tunnel_address: Option<IpAddr>,
    vtep_mac: Option<Mac>,
}

impl Local {
    /// This node's facts of `family`; `None` when it has no underlay address of that family.
    fn of(view: &NodeView<'_>, family: IpFamily) -> Option<Self> {
        let plan = view.plan;
        Some(match family {
            IpFamily::IPv4 => Self {
                family,
                address: plan.address?.into(),
                tunnel_address: view.tunnel_address.map(IpAddr::V4),
                vtep_mac: plan.tunnel.vtep_mac,
            },
            IpFamily::IPv6 => Self {
                family,
                address: plan.address6?.into(),
                tunnel_address: view.tunnel_address6.map(IpAddr::V6),
                vtep_mac: plan.tunnel.vtep_mac_v6,
            },
        })
    }

    /// The node has what its VXLAN device of this family needs: a VTEP address and MAC.
    fn vxlan_ready(&self) -> bool {
        self.tunnel_address.is_some() && self.vtep_mac.is_some()
    }
}

/// The spec's field paths of a family's settings, for problems.
struct Fields {
    address: &'static str,
    tunnel_blocks: &'static str,
    vtep_mac: &'static str,
}

fn fields(family: IpFamily) -> Fields {
    match family {
        IpFamily::IPv4 => {
            Fields { address: "spec.address", tunnel_blocks: "spec.tunnel.blocks", vtep_mac: "spec.tunnel.vtepMAC" }
        }
        IpFamily::IPv6 => {
            Fields { address: "spec.address6", tunnel_blocks: "spec.tunnel.blocks6", vtep_mac: "spec.tunnel.vtepMACV6" }
        }
    }
}

fn pools_of<'a>(view: &'a NodeView<'_>, family: IpFamily) -> impl Iterator<Item = &'a PoolPlan> {
    view.plan.pools.iter().filter(move |pool| IpFamily::of_net(&pool.cidr) == family)
}

fn pool_for<'a>(view: &'a NodeView<'_>, block: &IpNet) -> Option<&'a PoolPlan> {
    view.plan.pools.iter().find(|pool| pool.cidr.contains(block))
}

fn path(pool: &PoolPlan, family: IpFamily, same_subnet: bool) -> Path {
    let choose = |mode: EncapsulationMode, encapsulated: Path| match mode {
        EncapsulationMode::Always => Some(encapsulated),
        EncapsulationMode::CrossSubnet if same_subnet => Some(Path::Direct),
        EncapsulationMode::CrossSubnet => Some(encapsulated),
        EncapsulationMode::Never => None,
    };
    let ipip = || if family == IpFamily::IPv4 { choose(pool.ipip_mode, Path::Ipip) } else { None };
    choose(pool.vxlan_mode, Path::Vxlan).or_else(ipip).unwrap_or(Path::Bgp)
}

/// A remote block with the way to reach it.
struct Remote<'a> {
    block: &'a RemoteBlock,
    path: Path,
}

/// The remote blocks of `local`'s family, each with its path (CrossSubnet compares the remote
/// node's address with this node's address of the block's family).
fn remotes<'a>(view: &'a NodeView<'_>, local: &Local) -> Vec<Remote<'a>> {
    view.plan
        .remotes
        .iter()
        .filter(|block| IpFamily::of_net(&block.cidr) == local.family)
        .filter_map(|block| {
            let pool = pool_for(view, &block.cidr)?;
            Some(Remote { block, path: path(pool, local.family, local.address.contains(&block.node_ip)) })
        })
        .collect()
}

/// Which tunnel devices the pools of a family need: (VXLAN, IP-in-IP). IP-in-IP is IPv4 only.
fn needs(view: &NodeView<'_>, family: IpFamily) -> (bool, bool) {
    let vxlan = pools_of(view, family).any(|p| p.vxlan_mode.is_enabled());
    let ipip = family == IpFamily::IPv4
        && pools_of(view, family).any(|p| p.ipip_mode.is_enabled() && !p.vxlan_mode.is_enabled());
    (vxlan, ipip)
}

/// Why part of the spec cannot be programmed (each is reported, naming the field; the rest is
/// still applied). The values that did not decode are the plan's to report
/// ([`super::plan::NodePlan::report`]). A node without an address of a family is not a problem
/// (it routes nothing of that family), unless it owns blocks of it.
pub fn problems(view: &NodeView<'_>, facts: &HostFacts) -> Vec<String> {
    let mut problems = Vec::new();
    if needs(view, IpFamily::IPv4).1 && !facts.ipip {
        problems.push(
            "a pool uses IPIP but this kernel has no IP-in-IP: its remote blocks are not routed; use VXLAN".into(),
        );
    }
    for family in IpFamily::BOTH {
        let fields = fields(family);
        let Some(local) = Local::of(view, family) else {
            if view.plan.blocks.iter().any(|block| IpFamily::of_net(block) == family) {
                problems.push(format!(
                    "{} is not an {family} address with prefix length, yet the node owns {family} blocks: no {family} remote block is routed",
                    fields.address
                ));
            }
            continue;
        };
        if needs(view, family).0 && !local.vxlan_ready() {
            problems.push(format!(
                "an {family} pool uses VXLAN but the node has no {family} tunnel address (see the IPAM error, or {} is empty) or {} is missing or invalid: no {} device",
                fields.tunnel_blocks,
                fields.vtep_mac,
                vxlan_device(family)
            ));
            continue;
        }
        for remote in remotes(view, &local).iter().filter(|r| r.path == Path::Vxlan) {
            if vtep(remote.block).is_none() {
                problems.push(format!(
                    "IPAMBlock {} of node {} lacks a valid {family} tunnelAddress or vtepMAC: it is not routed over VXLAN",
                    remote.block.cidr, remote.block.node
                ));
            }
        }
    }
    problems
}

/// A remote node's VTEP: its tunnel address and MAC, when it has both.
fn vtep(block: &RemoteBlock) -> Option<(IpAddr, Mac)> {
    Some((block.tunnel_address?, block.vtep_mac?))
}

/// Every route gingham should own on this node as plain routes: pods, owned blocks and
/// encapsulated remote blocks of both families (the fallback when the kernel has no nexthop
/// objects).
pub fn desired_routes(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<RouteSpec> {
    let mut routes = local_routes(view);
    routes.extend(vtep_routes(view));
    routes.extend(remote_routes(view, facts).into_iter().map(|r| r.route));
    routes
}

/// A `/128` route onto the IPv6 VXLAN device for each remote IPv6 VTEP. The kernel checks an IPv6
/// `onlink` nexthop's gateway against its routes: without these, the VTEP would route through the
/// BGP-learned route of its block (via the underlay device) and the nexthop would be refused.
pub fn vtep_routes(view: &NodeView<'_>) -> BTreeSet<RouteSpec> {
    vxlan_remotes(view)
        .into_iter()
        .filter(|(_, address, _, _)| address.is_ipv6())
        .map(|(device, address, _, _)| RouteSpec {
            destination: IpNet::from(address),
            target: RouteTarget::Device(device.into()),
        })
        .collect()
}

/// The routes of this node's own pods (`/32` and `/128` to their veth) and blocks (blackholes).
pub fn local_routes(view: &NodeView<'_>) -> BTreeSet<RouteSpec> {
    let mut routes = BTreeSet::new();
    for endpoint in view.endpoints {
        for address in endpoint.addresses() {
            let target = RouteTarget::Device(endpoint.interface.clone());
            routes.insert(RouteSpec { destination: IpNet::from(address), target });
        }
    }
    for destination in &view.plan.blocks {
        routes.insert(RouteSpec { destination: *destination, target: RouteTarget::Blackhole });
    }
    routes
}

/// A plain route to each remote block this node routes itself (encapsulated, or direct in
/// CrossSubnet), of both families, with the node that owns the block.
pub fn remote_routes(view: &NodeView<'_>, facts: &HostFacts) -> Vec<RemoteRoute> {
    let mut routes = Vec::new();
    for local in IpFamily::BOTH.into_iter().filter_map(|family| Local::of(view, family)) {
        for remote in remotes(view, &local) {
            let node_ip = remote.block.node_ip;
            let target = match remote.path {
                Path::Vxlan if local.vxlan_ready() => {
                    let Some((gateway, _)) = vtep(remote.block) else { continue };
                    RouteTarget::Via { gateway, device: Some(vxlan_device(local.family).into()) }
                }
                Path::Ipip if facts.ipip => RouteTarget::Via { gateway: node_ip, device: Some(IPIP_DEVICE.into()) },
                Path::Direct => RouteTarget::Via { gateway: node_ip, device: None },
                Path::Vxlan | Path::Ipip | Path::Bgp => continue,
            };
            let route = RouteSpec { destination: remote.block.cidr, target };
            routes.push(RemoteRoute { node: remote.block.node.clone(), route });
        }
    }
    routes
}

/// The tunnel devices some pool needs: `vxlan.gingham` and `vxlan6.gingham` (each with the
/// node's underlay address of its family as `local`), and `tunl0` (only when the kernel has it).
pub fn desired_tunnels(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<TunnelSpec> {
    let mut tunnels = BTreeSet::new();
    let underlay = facts.underlay_mtu.unwrap_or(FALLBACK_UNDERLAY_MTU);
    let tunnel = &view.plan.tunnel;
    for local in IpFamily::BOTH.into_iter().filter_map(|family| Local::of(view, family)) {
        let (vxlan, ipip) = needs(view, local.family);
        if vxlan && local.vxlan_ready() {
            let mtu = match local.family {
                IpFamily::IPv4 => tunnel.vxlan_mtu,
                IpFamily::IPv6 => tunnel.vxlan_mtu_v6,
            };
            tunnels.insert(TunnelSpec {
                name: vxlan_device(local.family).into(),
                kind: TunnelKind::Vxlan { vni: tunnel.vxlan_vni, port: tunnel.vxlan_port, local: local.address.addr() },
                mtu: mtu.filter(|m| *m > 0).unwrap_or(underlay.saturating_sub(vxlan_overhead(local.family))),
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
    }
    tunnels
}

/// The family of a tunnel device: its underlay's (IP-in-IP is IPv4).
fn tunnel_family(tunnel: &TunnelSpec) -> IpFamily {
    match &tunnel.kind {
        TunnelKind::Vxlan { local, .. } => IpFamily::of(*local),
        TunnelKind::Ipip => IpFamily::IPv4,
    }
}

/// The tunnel address of its family on every desired tunnel device: `/32` on `vxlan.gingham`
/// and `tunl0`, `/128` on `vxlan6.gingham`.
pub fn desired_addresses(view: &NodeView<'_>, facts: &HostFacts) -> BTreeSet<AddressSpec> {
    desired_tunnels(view, facts)
        .into_iter()
        .filter_map(|tunnel| {
            let address = Local::of(view, tunnel_family(&tunnel))?.tunnel_address?;
            Some(AddressSpec { device: tunnel.name, address: IpNet::from(address) })
        })
        .collect()
}

/// A permanent neighbour (ARP or NDP) entry per remote VTEP reached over VXLAN, on the VXLAN
/// device of its family.
pub fn desired_neighbours(view: &NodeView<'_>) -> BTreeSet<NeighbourSpec> {
    vxlan_remotes(view)
        .into_iter()
        .map(|(device, address, mac, _)| NeighbourSpec { device: device.into(), address, mac })
        .collect()
}

/// A permanent FDB entry per remote VTEP reached over VXLAN, whose destination is the remote
/// node's underlay address of the device's family.
pub fn desired_fdb(view: &NodeView<'_>) -> BTreeSet<FdbSpec> {
    vxlan_remotes(view)
        .into_iter()
        .map(|(device, _, mac, destination)| FdbSpec { device: device.into(), mac, destination })
        .collect()
}

/// (VXLAN device, VTEP address, VTEP MAC, underlay address) of every remote node a VXLAN route
/// goes to, of both families.
fn vxlan_remotes(view: &NodeView<'_>) -> Vec<(&'static str, IpAddr, Mac, IpAddr)> {
    let mut out = Vec::new();
    let locals = IpFamily::BOTH.into_iter().filter_map(|family| Local::of(view, family));
    for local in locals.filter(Local::vxlan_ready) {
        for remote in remotes(view, &local).into_iter().filter(|r| r.path == Path::Vxlan) {
            if let Some((address, mac)) = vtep(remote.block) {
                out.push((vxlan_device(local.family), address, mac, remote.block.node_ip));
            }
        }
    }
    out
}

/// IP forwarding (IPv4 always, IPv6 when the node has an IPv6 address), and proxy ARP without
/// delay on the host-side interface of each endpoint with an IPv4 address.
pub fn desired_sysctls(view: &NodeView<'_>) -> BTreeSet<SysctlSpec> {
    let mut sysctls = BTreeSet::from([SysctlSpec { path: "net/ipv4/ip_forward".into(), value: "1".into() }]);
    if view.plan.address6.is_some() {
        sysctls.insert(SysctlSpec { path: "net/ipv6/conf/all/forwarding".into(), value: "1".into() });
    }
    for endpoint in view.endpoints.iter().filter(|e| e.addresses().iter().any(IpAddr::is_ipv4)) {
        let name = &endpoint.interface;
        sysctls.insert(SysctlSpec { path: format!("net/ipv4/conf/{name}/proxy_arp"), value: "1".into() });
        sysctls.insert(SysctlSpec { path: format!("net/ipv4/neigh/{name}/proxy_delay"), value: "0".into() });
    }
    sysctls
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
