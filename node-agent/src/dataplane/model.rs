//! Typed kernel state the dataplane manages: routes, links, addresses, neighbours, FDB entries and
//! sysctls, of both address families. Desired and observed state use the same types, so a diff is
//! a comparison of sets.

use std::fmt;
use std::net::IpAddr;

use gingham_crds::api::IpFamily;
use ipnet::IpNet;

/// The route protocol number that marks routes as gingham's. Only routes with it are ever deleted.
pub const ROUTE_PROTOCOL: u8 = 249;

/// The VXLAN device gingham creates for IPv4 (Calico's `vxlan.calico`).
pub const VXLAN_DEVICE: &str = "vxlan.gingham";

/// The VXLAN device gingham creates for IPv6 (Calico's `vxlan-v6.calico`): same VNI and port,
/// IPv6 underlay. Not `vxlan-v6.gingham`: that is 16 bytes, and the kernel takes interface names
/// of at most 15 (`IFNAMSIZ` less its NUL).
pub const VXLAN6_DEVICE: &str = "vxlan6.gingham";

/// The IP-in-IP fallback device.
pub const IPIP_DEVICE: &str = "tunl0";

/// Bytes of VXLAN overhead (outer IPv4, UDP, VXLAN and Ethernet headers).
pub const VXLAN_OVERHEAD: u32 = 50;

/// Bytes of VXLAN overhead over IPv6 (the outer header is 20 bytes longer).
pub const VXLAN6_OVERHEAD: u32 = 70;

/// A family's VXLAN device.
pub fn vxlan_device(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => VXLAN_DEVICE,
        IpFamily::IPv6 => VXLAN6_DEVICE,
    }
}

/// A family's VXLAN overhead.
pub fn vxlan_overhead(family: IpFamily) -> u32 {
    match family {
        IpFamily::IPv4 => VXLAN_OVERHEAD,
        IpFamily::IPv6 => VXLAN6_OVERHEAD,
    }
}

/// Whether a device is one of gingham's tunnels (whose addresses, neighbours and FDB entries it
/// manages).
pub fn is_tunnel(device: &str) -> bool {
    matches!(device, VXLAN_DEVICE | VXLAN6_DEVICE | IPIP_DEVICE)
}

/// Bytes of IP-in-IP overhead (the outer IPv4 header).
pub const IPIP_OVERHEAD: u32 = 20;

/// What a route does with matching packets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteTarget {
    /// `dev <device> scope link`: the destination is directly on the device (a local pod).
    Device(String),
    /// `blackhole`: a block this node owns; unallocated addresses go nowhere.
    Blackhole,
    /// `via <gateway> [dev <device> onlink]`; without a device the kernel picks the interface.
    Via {
        /// The next hop, of the destination's family.
        gateway: IpAddr,
        /// The output device, with `onlink`; `None` to let the kernel resolve the gateway.
        device: Option<String>,
    },
    /// `nhid <id>`: through a kernel nexthop object gingham owns ([`NexthopSpec`]).
    Nexthop(u32),
}

/// One IPv4 or IPv6 route in the main table, carrying [`ROUTE_PROTOCOL`]. Its metric is not
/// part of it: gingham never sets one (IPv6 routes get the kernel's default, 1024), and one
/// found with another is still the route to its destination.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSpec {
    /// The destination prefix.
    pub destination: IpNet,
    /// Where matching packets go.
    pub target: RouteTarget,
}

impl RouteSpec {
    /// The device the route names, if any (a blackhole and a deviceless `via` name none).
    pub fn device(&self) -> Option<&str> {
        match &self.target {
            RouteTarget::Device(device) | RouteTarget::Via { device: Some(device), .. } => Some(device),
            RouteTarget::Blackhole | RouteTarget::Via { device: None, .. } | RouteTarget::Nexthop(_) => None,
        }
    }

    /// Whether an observed route (which always names a device) fulfils this desired one. A deviceless
    /// `via` is the direct route of CrossSubnet: the kernel picks the underlay device, so any device
    /// but our tunnels fulfils it (the same gateway through `tunl0` is still encapsulated).
    pub fn satisfied_by(&self, observed: &RouteSpec) -> bool {
        match (&self.target, &observed.target) {
            (RouteTarget::Via { gateway, device: None }, RouteTarget::Via { gateway: seen, device }) => {
                let through_tunnel = device.as_deref().is_some_and(is_tunnel);
                self.destination == observed.destination && gateway == seen && !through_tunnel
            }
            _ => self == observed,
        }
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            RouteTarget::Device(device) => write!(f, "{} dev {device} scope link", self.destination),
            RouteTarget::Blackhole => write!(f, "blackhole {}", self.destination),
            RouteTarget::Via { gateway, device: Some(device) } => {
                write!(f, "{} via {gateway} dev {device} onlink", self.destination)
            }
            RouteTarget::Via { gateway, device: None } => write!(f, "{} via {gateway}", self.destination),
            RouteTarget::Nexthop(id) => write!(f, "{} nhid {id}", self.destination),
        }
    }
}

/// A kernel nexthop object gingham owns (it carries [`ROUTE_PROTOCOL`]): `id <id> via <gateway>
/// dev <device> onlink`. One per remote node and address family; routes name it by id. The
/// gateway's family is the nexthop's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NexthopSpec {
    /// The kernel's id for it, stable for a node and family (see [`super::nexthop`]).
    pub id: u32,
    /// The next hop: the remote VTEP or the remote node's underlay address.
    pub gateway: IpAddr,
    /// The output device (always `onlink`).
    pub device: String,
}

impl fmt::Display for NexthopSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id {} via {} dev {} onlink", self.id, self.gateway, self.device)
    }
}

pub use gingham_crds::api::Mac;

/// The kind of a tunnel device and the settings fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TunnelKind {
    /// A VXLAN device without learning.
    Vxlan {
        /// The VXLAN network identifier.
        vni: u32,
        /// The UDP destination port.
        port: u16,
        /// The underlay source address (`IFLA_VXLAN_LOCAL` or `IFLA_VXLAN_LOCAL6`).
        local: IpAddr,
    },
    /// The IP-in-IP fallback device `tunl0`.
    Ipip,
}

/// A tunnel device gingham owns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunnelSpec {
    /// The device name.
    pub name: String,
    /// Kind and creation-time settings.
    pub kind: TunnelKind,
    /// The MTU.
    pub mtu: u32,
    /// The MAC address (VXLAN only).
    pub mac: Option<Mac>,
}

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The tunnel kind, for VXLAN and IP-in-IP devices.
    pub tunnel: Option<TunnelKind>,
    /// The MTU.
    pub mtu: u32,
    /// The MAC address, if it has one.
    pub mac: Option<Mac>,
    /// Administratively up.
    pub up: bool,
}

/// An IPv4 or IPv6 address on a device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressSpec {
    /// The device name.
    pub device: String,
    /// The address and prefix length.
    pub address: IpNet,
}

impl AddressSpec {
    /// An IPv6 link-local address (`fe80::/10`): the kernel's own, never gingham's.
    pub fn is_link_local(&self) -> bool {
        match self.address.addr() {
            IpAddr::V6(address) => address.is_unicast_link_local(),
            IpAddr::V4(_) => false,
        }
    }
}

/// A permanent neighbour (ARP or NDP) entry: a remote VTEP address and its MAC.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourSpec {
    /// The device name.
    pub device: String,
    /// The neighbour's address.
    pub address: IpAddr,
    /// The neighbour's MAC.
    pub mac: Mac,
}

/// A permanent FDB entry: a remote VTEP MAC and the underlay address behind it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbSpec {
    /// The device name.
    pub device: String,
    /// The remote VTEP MAC.
    pub mac: Mac,
    /// The remote node's underlay address, of the device's family.
    pub destination: IpAddr,
}

/// A `/proc/sys` setting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlSpec {
    /// The path below `/proc/sys/`, e.g. `net/ipv4/conf/gh0/proxy_arp`.
    pub path: String,
    /// The value to write.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deviceless_route_is_satisfied_by_any_device_but_a_tunnel() {
        let families = [("10.0.1.0/26", "192.168.1.3", "127.0.0.1"), ("fd00:1::/122", "fd00:10::3", "::1")];
        for (destination, gateway, other) in families {
            let destination: IpNet = destination.parse().unwrap_or_else(|_| unreachable!());
            let gateway: IpAddr = gateway.parse().unwrap_or_else(|_| unreachable!());
            let desired = RouteSpec { destination, target: RouteTarget::Via { gateway, device: None } };
            let seen = RouteSpec { destination, target: RouteTarget::Via { gateway, device: Some("eth0".into()) } };
            assert!(desired.satisfied_by(&seen));
            let gateway_elsewhere = other.parse().unwrap_or_else(|_| unreachable!());
            let other =
                RouteSpec { destination, target: RouteTarget::Via { gateway: gateway_elsewhere, device: None } };
            assert!(!desired.satisfied_by(&other));
            assert!(!seen.satisfied_by(&desired));
            for tunnel in [IPIP_DEVICE, VXLAN_DEVICE, VXLAN6_DEVICE] {
                let encapsulated =
                    RouteSpec { destination, target: RouteTarget::Via { gateway, device: Some(tunnel.into()) } };
                assert!(!desired.satisfied_by(&encapsulated), "Always -> CrossSubnet must leave {tunnel}");
            }
        }
    }

    #[test]
    fn every_device_name_fits_the_kernels_interface_names() {
        for name in [VXLAN_DEVICE, VXLAN6_DEVICE, IPIP_DEVICE] {
            assert!(name.len() <= 15, "{name} is longer than IFNAMSIZ - 1");
        }
    }

    #[test]
    fn routes_of_both_families_display_as_ip_shows_them() {
        let route = |destination: &str, target| RouteSpec {
            destination: destination.parse().unwrap_or_else(|_| unreachable!()),
            target,
        };
        let gateway = "fd00:1::".parse().unwrap_or_else(|_| unreachable!());
        let shown = [
            route("fd00:2::5/128", RouteTarget::Device("gh1".into())).to_string(),
            route("fd00:2::/122", RouteTarget::Blackhole).to_string(),
            route("fd00:1::/122", RouteTarget::Via { gateway, device: Some(VXLAN6_DEVICE.into()) }).to_string(),
            route("10.0.1.0/26", RouteTarget::Nexthop(7)).to_string(),
        ];
        assert_eq!(
            shown,
            [
                "fd00:2::5/128 dev gh1 scope link",
                "blackhole fd00:2::/122",
                "fd00:1::/122 via fd00:1:: dev vxlan6.gingham onlink",
                "10.0.1.0/26 nhid 7",
            ]
        );
    }
}
