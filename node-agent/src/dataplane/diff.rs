//! The minimal operations that turn the observed kernel state into the desired one.
//!
//! Order matters for a loss-free mode change: devices and addresses first, then neighbours and FDB
//! entries, then nexthops, then route replacements (a prefix that stays is replaced in place, never
//! deleted), and only at the end the deletions of what is no longer wanted: nexthops after the
//! routes (the kernel deletes the routes of a nexthop it deletes).

use std::collections::{BTreeMap, BTreeSet};

use super::model::{
    AddressSpec, FdbSpec, IPIP_DEVICE, LinkState, Mac, NeighbourSpec, NexthopSpec, RouteSpec, RouteTarget, SysctlSpec,
    TunnelSpec, VXLAN_DEVICE, VXLAN6_DEVICE, is_tunnel,
};

/// What the dataplane wants the kernel to hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Routes carrying our protocol, of both families.
    pub routes: BTreeSet<RouteSpec>,
    /// Nexthop objects carrying our protocol (none when the kernel has no nexthop objects).
    pub nexthops: BTreeSet<NexthopSpec>,
    /// Tunnel devices.
    pub tunnels: BTreeSet<TunnelSpec>,
    /// Addresses on tunnel devices.
    pub addresses: BTreeSet<AddressSpec>,
    /// Permanent neighbours on the VXLAN devices.
    pub neighbours: BTreeSet<NeighbourSpec>,
    /// Permanent FDB entries on the VXLAN devices.
    pub fdb: BTreeSet<FdbSpec>,
    /// Sysctl values.
    pub sysctls: BTreeSet<SysctlSpec>,
    /// Endpoint interfaces that must be up.
    pub endpoint_links: BTreeSet<String>,
    /// The VXLAN devices no longer needed that stay for now, without address, neighbours, FDB
    /// or routes: nodes that have not yet switched away from VXLAN still send to them.
    pub keep_vxlan_devices: BTreeSet<String>,
}

/// What the kernel holds, as far as the dataplane manages it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelState {
    /// Every link.
    pub links: Vec<LinkState>,
    /// IPv4 and IPv6 addresses on every link.
    pub addresses: BTreeSet<AddressSpec>,
    /// Routes carrying our protocol.
    pub routes: BTreeSet<RouteSpec>,
    /// Nexthop objects carrying our protocol.
    pub nexthops: BTreeSet<NexthopSpec>,
    /// The ids of every other nexthop object (never touched; gingham's ids avoid them).
    pub foreign_nexthops: BTreeSet<u32>,
    /// Permanent IPv4 and IPv6 neighbours.
    pub neighbours: BTreeSet<NeighbourSpec>,
    /// Permanent FDB entries with a destination.
    pub fdb: BTreeSet<FdbSpec>,
    /// The current value of each desired sysctl (`None`: unreadable).
    pub sysctls: BTreeMap<String, Option<String>>,
}

impl KernelState {
    /// The link with this name.
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|link| link.name == name)
    }
}

/// One change to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create a tunnel device, up, with its MTU and MAC.
    CreateTunnel(TunnelSpec),
    /// Set a link's MTU and MAC (when given) and bring it up.
    SetLink {
        /// The link name.
        name: String,
        /// A new MTU.
        mtu: Option<u32>,
        /// A new MAC.
        mac: Option<Mac>,
    },
    /// Delete a link.
    DeleteLink(String),
    /// Add an address.
    AddAddress(AddressSpec),
    /// Delete an address.
    DeleteAddress(AddressSpec),
    /// Create or replace a permanent neighbour.
    ReplaceNeighbour(NeighbourSpec),
    /// Delete a neighbour.
    DeleteNeighbour(NeighbourSpec),
    /// Create or replace a permanent FDB entry.
    ReplaceFdb(FdbSpec),
    /// Delete an FDB entry.
    DeleteFdb(FdbSpec),
    /// Create or replace a nexthop object (with our protocol).
    ReplaceNexthop(NexthopSpec),
    /// Delete a nexthop object (only ever one of ours); the kernel deletes the routes using it.
    DeleteNexthop(NexthopSpec),
    /// Create or replace a route (with our protocol).
    ReplaceRoute(RouteSpec),
    /// Delete a route (only ever one of ours).
    DeleteRoute(RouteSpec),
    /// Write a sysctl.
    WriteSysctl(SysctlSpec),
}

/// The VXLAN devices, whose neighbours and FDB entries gingham manages.
const VXLAN_DEVICES: [&str; 2] = [VXLAN_DEVICE, VXLAN6_DEVICE];

fn is_vxlan(device: &str) -> bool {
    VXLAN_DEVICES.contains(&device)
}

/// An address gingham manages: on one of its tunnels, and not the IPv6 link-local address the
/// kernel gives every device with a MAC.
fn managed(address: &AddressSpec) -> bool {
    is_tunnel(&address.device) && !address.is_link_local()
}

/// The operations that make `current` match `desired`, in a loss-minimising order.
pub fn diff(current: &KernelState, desired: &DesiredState) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut recreated = BTreeSet::new();
    for tunnel in &desired.tunnels {
        match current.link(&tunnel.name) {
            None => ops.push(Op::CreateTunnel(tunnel.clone())),
            Some(link) if link.tunnel.as_ref() != Some(&tunnel.kind) && tunnel.name != IPIP_DEVICE => {
                ops.push(Op::DeleteLink(tunnel.name.clone()));
                ops.push(Op::CreateTunnel(tunnel.clone()));
                recreated.insert(tunnel.name.as_str());
            }
            Some(link) => {
                let mtu = (link.mtu != tunnel.mtu).then_some(tunnel.mtu);
                let mac = tunnel.mac.filter(|mac| link.mac != Some(*mac));
                if mtu.is_some() || mac.is_some() || !link.up {
                    ops.push(Op::SetLink { name: tunnel.name.clone(), mtu, mac });
                }
            }
        }
    }
    for name in &desired.endpoint_links {
        if current.link(name).is_some_and(|link| !link.up) {
            ops.push(Op::SetLink { name: name.clone(), mtu: None, mac: None });
        }
    }
    let fresh = |device: &str| !recreated.contains(device);

    let addresses: BTreeSet<&AddressSpec> =
        current.addresses.iter().filter(|a| managed(a) && fresh(&a.device)).collect();
    ops.extend(desired.addresses.iter().filter(|a| !addresses.contains(a)).cloned().map(Op::AddAddress));

    let neighbours: BTreeSet<&NeighbourSpec> =
        current.neighbours.iter().filter(|n| is_vxlan(&n.device) && fresh(&n.device)).collect();
    ops.extend(desired.neighbours.iter().filter(|n| !neighbours.contains(n)).cloned().map(Op::ReplaceNeighbour));
    let fdb: BTreeSet<&FdbSpec> = current.fdb.iter().filter(|f| is_vxlan(&f.device) && fresh(&f.device)).collect();
    ops.extend(desired.fdb.iter().filter(|f| !fdb.contains(f)).cloned().map(Op::ReplaceFdb));

    for sysctl in &desired.sysctls {
        if current.sysctls.get(&sysctl.path).and_then(|v| v.as_deref()) != Some(sysctl.value.as_str()) {
            ops.push(Op::WriteSysctl(sysctl.clone()));
        }
    }

    // A recreated device took its nexthops, and their routes, with it.
    let nexthops: BTreeSet<&NexthopSpec> = current.nexthops.iter().filter(|n| fresh(&n.device)).collect();
    let nexthop_ops = desired.nexthops.iter().filter(|n| !nexthops.contains(n)).cloned().map(Op::ReplaceNexthop);
    let standing: BTreeSet<u32> = nexthops.iter().map(|n| n.id).collect();
    let present = |route: &&RouteSpec| match route.target {
        RouteTarget::Nexthop(id) => standing.contains(&id),
        _ => route.device().is_none_or(&fresh),
    };
    let routes: Vec<&RouteSpec> = current.routes.iter().filter(present).collect();
    let mut seen: BTreeMap<_, Vec<&RouteSpec>> = BTreeMap::new();
    for route in &routes {
        seen.entry(route.destination).or_default().push(route);
    }
    let mut wanted = BTreeMap::new();
    for route in &desired.routes {
        wanted.entry(route.destination).or_insert(route);
    }
    // A route is only ever satisfied by one with the same destination.
    let missing = wanted
        .values()
        .filter(|route| !seen.get(&route.destination).is_some_and(|same| same.iter().any(|r| route.satisfied_by(r))));
    // Routes onto a VXLAN device (the remote VTEPs of IPv6) go before the nexthops through them:
    // the kernel refuses an IPv6 `onlink` nexthop whose gateway it routes through another device.
    let (onto_vxlan, other): (Vec<&&RouteSpec>, Vec<&&RouteSpec>) =
        missing.partition(|route| matches!(&route.target, RouteTarget::Device(device) if is_vxlan(device)));
    ops.extend(onto_vxlan.into_iter().map(|route| Op::ReplaceRoute((**route).clone())));
    ops.extend(nexthop_ops);
    ops.extend(other.into_iter().map(|route| Op::ReplaceRoute((**route).clone())));
    // A prefix that stays was replaced in place above; only prefixes no longer wanted are deleted.
    ops.extend(routes.into_iter().filter(|r| !wanted.contains_key(&r.destination)).cloned().map(Op::DeleteRoute));
    let nexthop_ids: BTreeSet<u32> = desired.nexthops.iter().map(|n| n.id).collect();
    ops.extend(nexthops.into_iter().filter(|n| !nexthop_ids.contains(&n.id)).cloned().map(Op::DeleteNexthop));

    // Entries replaced under the same key above are not deleted: the replacement already overwrote them.
    let neighbour_keys: BTreeSet<_> = desired.neighbours.iter().map(|n| (&n.device, n.address)).collect();
    ops.extend(
        neighbours
            .into_iter()
            .filter(|n| !neighbour_keys.contains(&(&n.device, n.address)))
            .cloned()
            .map(Op::DeleteNeighbour),
    );
    let fdb_keys: BTreeSet<_> = desired.fdb.iter().map(|f| (&f.device, f.mac)).collect();
    ops.extend(fdb.into_iter().filter(|f| !fdb_keys.contains(&(&f.device, f.mac))).cloned().map(Op::DeleteFdb));
    ops.extend(addresses.into_iter().filter(|a| !desired.addresses.contains(a)).cloned().map(Op::DeleteAddress));
    for device in VXLAN_DEVICES {
        if current.link(device).is_some()
            && !desired.keep_vxlan_devices.contains(device)
            && !desired.tunnels.iter().any(|t| t.name == device)
        {
            ops.push(Op::DeleteLink(device.into()));
        }
    }
    ops
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
