//! The addresses and routes the plumbing wants, of either family, as netlink messages, and the
//! checks of what the kernel holds against them (pure; `plumbing` sends and dumps them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::RouteMessageBuilder;

use super::plumbing::{GATEWAY_ADDRESS, GATEWAY6_ADDRESS};
use crate::dataplane::model::ROUTE_PROTOCOL;

/// The pod's gateway of `address`'s family.
pub(crate) fn gateway_for(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(GATEWAY_ADDRESS),
        IpAddr::V6(_) => IpAddr::V6(GATEWAY6_ADDRESS),
    }
}

/// The prefix length of a single address of `address`'s family: 32 or 128.
pub(super) fn host_length(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ADDRESS/32 dev HOST scope link` (IPv4) or `ADDRESS/128 dev HOST` (IPv6), exactly as the agent
/// programs an endpoint's route (its protocol, main table), so the agent's next sync finds it in
/// place and leaves it.
pub(super) fn host_route(address: IpAddr, index: u32) -> RouteMessage {
    match address {
        IpAddr::V4(address) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(address, 32)
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
            .build(),
        IpAddr::V6(address) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(address, 128)
            .output_interface(index)
            .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
            .build(),
    }
}

/// `GATEWAY dev IFNAME` (IPv4: `scope link`) and `default via GATEWAY dev IFNAME`, as `ip route
/// add` makes them (protocol boot, main table), for the gateway of either family.
pub(super) fn pod_routes(index: u32, gateway: IpAddr) -> [RouteMessage; 2] {
    match gateway {
        IpAddr::V4(gateway) => {
            let route = || RouteMessageBuilder::<Ipv4Addr>::new().output_interface(index).protocol(RouteProtocol::Boot);
            [route().destination_prefix(gateway, 32).scope(RouteScope::Link).build(), route().gateway(gateway).build()]
        }
        IpAddr::V6(gateway) => {
            let route = || RouteMessageBuilder::<Ipv6Addr>::new().output_interface(index).protocol(RouteProtocol::Boot);
            [route().destination_prefix(gateway, 128).build(), route().gateway(gateway).build()]
        }
    }
}

pub(super) fn has_address(addresses: &[AddressMessage], address: IpAddr) -> bool {
    let length = host_length(address);
    addresses.iter().any(|a| {
        a.header.prefix_len == length
            && (a.attributes.contains(&AddressAttribute::Local(address))
                || a.attributes.contains(&AddressAttribute::Address(address)))
    })
}

/// Whether the main table has both [`pod_routes`] of `gateway` through the interface `index`.
pub(super) fn has_pod_routes(routes: &[RouteMessage], index: u32, gateway: IpAddr) -> bool {
    let (length, address) = match gateway {
        IpAddr::V4(a) => (32, RouteAddress::Inet(a)),
        IpAddr::V6(a) => (128, RouteAddress::Inet6(a)),
    };
    let via = RouteAttribute::Gateway(address.clone());
    let through = |r: &&RouteMessage| {
        r.header.table == RouteHeader::RT_TABLE_MAIN && r.attributes.contains(&RouteAttribute::Oif(index))
    };
    let to_gateway = routes.iter().filter(through).any(|r| {
        r.header.destination_prefix_length == length
            && r.attributes.contains(&RouteAttribute::Destination(address.clone()))
            && !r.attributes.contains(&via)
    });
    let default =
        routes.iter().filter(through).any(|r| r.header.destination_prefix_length == 0 && r.attributes.contains(&via));
    to_gateway && default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_the_routes_create_adds_and_nothing_less() {
        for gateway in [IpAddr::V4(GATEWAY_ADDRESS), IpAddr::V6(GATEWAY6_ADDRESS)] {
            let [to_gateway, default] = pod_routes(7, gateway);
            let elsewhere = pod_routes(8, gateway);
            let mut local_table = pod_routes(7, gateway);
            for route in &mut local_table {
                route.header.table = 255; // local
            }
            let other_family = match gateway {
                IpAddr::V4(_) => pod_routes(7, IpAddr::V6(GATEWAY6_ADDRESS)),
                IpAddr::V6(_) => pod_routes(7, IpAddr::V4(GATEWAY_ADDRESS)),
            };
            let cases: [(&str, Vec<RouteMessage>, bool); 6] = [
                ("both", vec![to_gateway.clone(), default.clone()], true),
                ("no default", vec![to_gateway.clone()], false),
                ("no route to the gateway", vec![default.clone()], false),
                ("through another interface", elsewhere.to_vec(), false),
                ("in another table", local_table.to_vec(), false),
                ("the other family's", other_family.to_vec(), false),
            ];
            for (case, routes, want) in cases {
                assert_eq!(has_pod_routes(&routes, 7, gateway), want, "{gateway}: {case}");
            }
        }
    }

    #[test]
    fn check_wants_each_address_as_a_single_address() {
        let message = |prefix_len: u8, local: &str| {
            let mut m = AddressMessage::default();
            m.header.prefix_len = prefix_len;
            m.attributes.push(AddressAttribute::Local(local.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))));
            m
        };
        let v4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        assert!(has_address(&[message(32, "10.0.0.5")], v4));
        assert!(!has_address(&[message(24, "10.0.0.5")], v4));
        assert!(!has_address(&[message(32, "10.0.0.6")], v4));
        let v6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5));
        // The kernel reports an IPv6 address as IFA_ADDRESS only.
        let mut only_address = AddressMessage::default();
        only_address.header.prefix_len = 128;
        only_address.attributes.push(AddressAttribute::Address(v6));
        assert!(has_address(&[only_address], v6));
        assert!(!has_address(&[message(64, "fd00::5")], v6));
        assert!(!has_address(&[message(128, "fd00::6")], v6));
    }
}
