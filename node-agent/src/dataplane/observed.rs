//! What the kernel holds, kept up to date from its notifications (pure): a sync with nothing
//! changed dumps nothing. A dump fills a [`KernelState`]; every [`Notice`] received after it is
//! applied in order. Notices are keyed replacements, so a notice that a dump already reflects does
//! no harm when applied again. Both families are watched alike. What the kernel changes without
//! telling (IPv4 drops the routes of a link that goes down or away without a notification; IPv6
//! marks them dead) and lost notices end the cache instead: the next sync dumps again.

use std::net::IpAddr;

use ipnet::IpNet;

use super::diff::KernelState;
use super::model::{AddressSpec, FdbSpec, LinkState, Mac, NeighbourSpec, NexthopSpec, RouteSpec, RouteTarget};

/// One change the kernel announced, decoded and named (interfaces by name, as in a dump).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A link appeared or changed.
    Link(LinkState),
    /// A link went away.
    LinkGone(u32),
    /// An address was added.
    Address(AddressSpec),
    /// An address was deleted.
    AddressGone(AddressSpec),
    /// A route of ours was added or replaced.
    Route(RouteSpec),
    /// A route of ours was deleted.
    RouteGone(RouteSpec),
    /// Another owner's route replaced whatever was at this destination.
    RouteTaken(IpNet),
    /// A permanent neighbour was added or changed.
    Neighbour(NeighbourSpec),
    /// A neighbour stopped being permanent or was deleted.
    NeighbourGone {
        /// The device.
        device: String,
        /// The neighbour's address.
        address: IpAddr,
    },
    /// A permanent FDB entry was added or changed.
    Fdb(FdbSpec),
    /// An FDB entry stopped being permanent or was deleted.
    FdbGone {
        /// The device.
        device: String,
        /// The MAC.
        mac: Mac,
    },
    /// A nexthop of ours was added or replaced.
    Nexthop(NexthopSpec),
    /// Another owner's nexthop was added or replaced.
    ForeignNexthop(u32),
    /// A nexthop was deleted (the kernel deleted its routes with it).
    NexthopGone(u32),
    /// Notifications were lost (the socket's buffer overflowed): the state is unknown.
    Lost,
}

/// Applies a notice. Returns false when the state can no longer be trusted and must be dumped.
pub fn apply(state: &mut KernelState, notice: Notice) -> bool {
    match notice {
        Notice::Link(link) => {
            let was_up = state.links.iter().find(|l| l.index == link.index).is_some_and(|l| l.up);
            if was_up && !link.up {
                return false; // its IPv4 routes went without a notification
            }
            state.links.retain(|l| l.index != link.index && l.name != link.name);
            state.links.push(link);
        }
        Notice::LinkGone(_) | Notice::Lost => return false,
        Notice::Address(address) => {
            state.addresses.insert(address);
        }
        Notice::AddressGone(address) => {
            state.addresses.remove(&address);
        }
        Notice::Route(route) => {
            state.routes.retain(|r| r.destination != route.destination);
            state.routes.insert(route);
        }
        Notice::RouteGone(route) => {
            state.routes.remove(&route);
        }
        Notice::RouteTaken(destination) => state.routes.retain(|r| r.destination != destination),
        Notice::Neighbour(n) => {
            state.neighbours.retain(|seen| (&seen.device, seen.address) != (&n.device, n.address));
            state.neighbours.insert(n);
        }
        Notice::NeighbourGone { device, address } => {
            state.neighbours.retain(|seen| (&seen.device, seen.address) != (&device, address));
        }
        Notice::Fdb(f) => {
            state.fdb.retain(|seen| (&seen.device, seen.mac) != (&f.device, f.mac));
            state.fdb.insert(f);
        }
        Notice::FdbGone { device, mac } => state.fdb.retain(|seen| (&seen.device, seen.mac) != (&device, mac)),
        Notice::Nexthop(nexthop) => {
            state.foreign_nexthops.remove(&nexthop.id);
            state.nexthops.retain(|n| n.id != nexthop.id);
            state.nexthops.insert(nexthop);
        }
        Notice::ForeignNexthop(id) => {
            state.nexthops.retain(|n| n.id != id);
            state.foreign_nexthops.insert(id);
        }
        Notice::NexthopGone(id) => {
            state.nexthops.retain(|n| n.id != id);
            state.foreign_nexthops.remove(&id);
            state.routes.retain(|r| r.target != RouteTarget::Nexthop(id));
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn link(index: u32, name: &str, up: bool) -> LinkState {
        LinkState { index, name: name.into(), tunnel: None, mtu: 1500, mac: None, up }
    }

    fn route(destination: &str, target: RouteTarget) -> RouteSpec {
        RouteSpec { destination: destination.parse().unwrap(), target }
    }

    #[test]
    fn notices_replace_by_key_and_replaying_them_changes_nothing() {
        let nexthop = NexthopSpec { id: 7, gateway: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)), device: "x".into() };
        let notices = vec![
            Notice::Link(link(3, "x", true)),
            Notice::Nexthop(nexthop.clone()),
            Notice::Route(route("10.1.0.0/26", RouteTarget::Blackhole)),
            Notice::Route(route("10.1.0.0/26", RouteTarget::Nexthop(7))),
            Notice::Route(route("10.1.1.0/26", RouteTarget::Nexthop(7))),
            Notice::RouteGone(route("10.1.1.0/26", RouteTarget::Nexthop(7))),
            Notice::ForeignNexthop(9),
        ];
        let mut state = KernelState::default();
        for notice in notices.iter().cloned() {
            assert!(apply(&mut state, notice));
        }
        let once = state.clone();
        assert_eq!(once.routes, [route("10.1.0.0/26", RouteTarget::Nexthop(7))].into());
        assert_eq!(once.nexthops, [nexthop].into());
        assert_eq!(once.foreign_nexthops, [9].into());
        for notice in notices {
            apply(&mut state, notice);
        }
        assert_eq!(state, once, "a dump that already holds a notice's effect is not changed by it");
    }

    #[test]
    fn a_deleted_nexthop_takes_its_routes_and_a_foreign_replacement_takes_ours() {
        let mut state = KernelState::default();
        state.routes.insert(route("10.1.0.0/26", RouteTarget::Nexthop(7)));
        state.routes.insert(route("10.1.1.0/26", RouteTarget::Blackhole));
        assert!(apply(&mut state, Notice::NexthopGone(7)));
        assert!(apply(&mut state, Notice::RouteTaken("10.1.1.0/26".parse().unwrap())));
        assert!(state.routes.is_empty(), "{:?}", state.routes);
    }

    #[test]
    fn ipv6_notices_are_keyed_like_ipv4_ones() {
        let mut state = KernelState::default();
        let address: IpAddr = "fd00:100:0:1::".parse().unwrap();
        let neighbour = |mac: [u8; 6]| NeighbourSpec { device: "vxlan6.gingham".into(), address, mac: Mac(mac) };
        state.routes.insert(route("fd00:100::/122", RouteTarget::Blackhole));
        for notice in [
            Notice::Route(route("fd00:100:0:1::/122", RouteTarget::Nexthop(7))),
            Notice::Neighbour(neighbour([2, 0, 0, 0, 1, 1])),
            Notice::Neighbour(neighbour([2, 0, 0, 0, 1, 2])),
            Notice::RouteTaken("fd00:100::/122".parse().unwrap()),
        ] {
            assert!(apply(&mut state, notice));
        }
        assert_eq!(state.routes, [route("fd00:100:0:1::/122", RouteTarget::Nexthop(7))].into());
        assert_eq!(state.neighbours, [neighbour([2, 0, 0, 0, 1, 2])].into(), "replaced by its address");
        assert!(apply(&mut state, Notice::NeighbourGone { device: "vxlan6.gingham".into(), address }));
        assert!(state.neighbours.is_empty());
    }

    #[test]
    fn what_the_kernel_does_silently_ends_the_cache() {
        let mut state = KernelState { links: vec![link(3, "x", true)], ..KernelState::default() };
        assert!(apply(&mut state, Notice::Link(link(4, "y", false))), "a new link that is down drops nothing");
        assert!(!apply(&mut state.clone(), Notice::Link(link(3, "x", false))), "a link going down drops routes");
        assert!(!apply(&mut state.clone(), Notice::LinkGone(3)));
        assert!(!apply(&mut state, Notice::Lost));
    }
}
