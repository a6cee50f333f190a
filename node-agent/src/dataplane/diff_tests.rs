#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::dataplane::model::{RouteTarget, TunnelKind};

fn route(text: &str) -> RouteSpec {
    let (destination, rest) = text.split_once(' ').unwrap_or((text, ""));
    let destination = destination.parse().unwrap();
    let words: Vec<&str> = rest.split_whitespace().collect();
    let target = match words.as_slice() {
        ["blackhole"] => RouteTarget::Blackhole,
        ["dev", device] => RouteTarget::Device((*device).into()),
        ["via", gateway] => RouteTarget::Via { gateway: gateway.parse().unwrap(), device: None },
        ["via", gateway, "dev", device] => {
            RouteTarget::Via { gateway: gateway.parse().unwrap(), device: Some((*device).into()) }
        }
        other => panic!("bad route fixture {other:?}"),
    };
    RouteSpec { destination, target }
}

fn vxlan(vni: u32, mtu: u32) -> TunnelSpec {
    TunnelSpec {
        name: VXLAN_DEVICE.into(),
        kind: TunnelKind::Vxlan { vni, port: 4789, local: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)) },
        mtu,
        mac: gingham_crds::api::Decode::decode("02:00:00:00:00:0a"),
    }
}

fn link(tunnel: &TunnelSpec, up: bool) -> LinkState {
    LinkState {
        index: 7,
        name: tunnel.name.clone(),
        tunnel: Some(tunnel.kind.clone()),
        mtu: tunnel.mtu,
        mac: tunnel.mac,
        up,
    }
}

fn shown(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::ReplaceRoute(r) => format!("replace {r}"),
            Op::DeleteRoute(r) => format!("delete {r}"),
            Op::CreateTunnel(t) => format!("create {}", t.name),
            Op::DeleteLink(name) => format!("delete link {name}"),
            Op::SetLink { name, mtu, .. } => format!("set {name} mtu {mtu:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn routes_are_replaced_in_place_added_and_deleted() {
    let cases: &[(&str, &[&str], &[&str], &[&str])] = &[
        ("nothing to do", &["10.0.0.0/26 blackhole"], &["10.0.0.0/26 blackhole"], &[]),
        ("add", &[], &["10.0.0.5/32 dev gh1"], &["replace 10.0.0.5/32 dev gh1 scope link"]),
        ("delete", &["10.0.0.5/32 dev gh1"], &[], &["delete 10.0.0.5/32 dev gh1 scope link"]),
        (
            "mode change replaces, never deletes",
            &["10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham"],
            &["10.0.1.0/26 via 192.168.1.3"],
            &["replace 10.0.1.0/26 via 192.168.1.3"],
        ),
        (
            "direct route resolved to a device is right",
            &["10.0.1.0/26 via 192.168.1.3 dev eth0"],
            &["10.0.1.0/26 via 192.168.1.3"],
            &[],
        ),
        (
            "replacements come before deletions",
            &["10.0.9.0/26 blackhole"],
            &["10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham"],
            &["replace 10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham onlink", "delete blackhole 10.0.9.0/26"],
        ),
    ];
    for (name, current, desired, expected) in cases {
        let current = KernelState { routes: current.iter().map(|r| route(r)).collect(), ..KernelState::default() };
        let desired = DesiredState { routes: desired.iter().map(|r| route(r)).collect(), ..DesiredState::default() };
        assert_eq!(shown(&diff(&current, &desired)), *expected, "{name}");
    }
}

#[test]
fn tunnels_are_created_updated_recreated_and_removed() {
    let want = vxlan(4096, 1450);
    let cases: Vec<(&str, Vec<LinkState>, Vec<TunnelSpec>, Vec<&str>)> = vec![
        ("create", vec![], vec![want.clone()], vec!["create vxlan.gingham"]),
        ("right already", vec![link(&want, true)], vec![want.clone()], vec![]),
        ("down", vec![link(&want, false)], vec![want.clone()], vec!["set vxlan.gingham mtu None"]),
        ("mtu", vec![link(&vxlan(4096, 1400), true)], vec![want.clone()], vec!["set vxlan.gingham mtu Some(1450)"]),
        (
            "vni changes",
            vec![link(&vxlan(7, 1450), true)],
            vec![want.clone()],
            vec!["delete link vxlan.gingham", "create vxlan.gingham"],
        ),
        ("not needed", vec![link(&want, true)], vec![], vec!["delete link vxlan.gingham"]),
    ];
    for (name, links, tunnels, expected) in cases {
        let current = KernelState { links, ..KernelState::default() };
        let desired = DesiredState { tunnels: tunnels.into_iter().collect(), ..DesiredState::default() };
        assert_eq!(shown(&diff(&current, &desired)), expected, "{name}");
    }
}

#[test]
fn a_recreated_device_gets_its_routes_and_entries_back() {
    let want = vxlan(4096, 1450);
    let via = route("10.0.1.0/26 via 10.0.1.0 dev vxlan.gingham");
    let neighbour = NeighbourSpec {
        device: VXLAN_DEVICE.into(),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 0)),
        mac: Mac([2, 0, 0, 0, 0, 0xb]),
    };
    let current = KernelState {
        links: vec![link(&vxlan(7, 1450), true)],
        routes: [via.clone()].into(),
        neighbours: [neighbour.clone()].into(),
        ..KernelState::default()
    };
    let desired = DesiredState {
        tunnels: [want].into(),
        routes: [via.clone()].into(),
        neighbours: [neighbour.clone()].into(),
        ..DesiredState::default()
    };
    let ops = diff(&current, &desired);
    assert!(ops.contains(&Op::ReplaceRoute(via)), "{ops:?}");
    assert!(ops.contains(&Op::ReplaceNeighbour(neighbour)), "{ops:?}");
    assert!(!ops.iter().any(|op| matches!(op, Op::DeleteRoute(_) | Op::DeleteNeighbour(_))), "{ops:?}");
}

#[test]
fn neighbour_and_fdb_changes_replace_without_deleting_the_replacement() {
    let old = Mac([2, 0, 0, 0, 0, 1]);
    let new = Mac([2, 0, 0, 0, 0, 2]);
    let address = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 0));
    let gone = IpAddr::V4(Ipv4Addr::new(10, 0, 3, 0));
    let current = KernelState {
        neighbours: [
            NeighbourSpec { device: VXLAN_DEVICE.into(), address, mac: old },
            NeighbourSpec { device: VXLAN_DEVICE.into(), address: gone, mac: old },
            NeighbourSpec { device: "eth0".into(), address: gone, mac: old },
        ]
        .into(),
        fdb: [FdbSpec {
            device: VXLAN_DEVICE.into(),
            mac: new,
            destination: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 3)),
        }]
        .into(),
        ..KernelState::default()
    };
    let desired = DesiredState {
        neighbours: [NeighbourSpec { device: VXLAN_DEVICE.into(), address, mac: new }].into(),
        fdb: [FdbSpec {
            device: VXLAN_DEVICE.into(),
            mac: new,
            destination: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 4)),
        }]
        .into(),
        ..DesiredState::default()
    };
    let ops = diff(&current, &desired);
    assert_eq!(
        ops,
        vec![
            Op::ReplaceNeighbour(NeighbourSpec { device: VXLAN_DEVICE.into(), address, mac: new }),
            Op::ReplaceFdb(FdbSpec {
                device: VXLAN_DEVICE.into(),
                mac: new,
                destination: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 4))
            }),
            Op::DeleteNeighbour(NeighbourSpec { device: VXLAN_DEVICE.into(), address: gone, mac: old }),
        ]
    );
}

#[test]
fn sysctls_are_written_only_when_they_differ() {
    let spec = |path: &str, value: &str| SysctlSpec { path: path.into(), value: value.into() };
    let current = KernelState {
        sysctls: [("a".to_string(), Some("1".to_string())), ("b".to_string(), Some("0".to_string()))].into(),
        ..KernelState::default()
    };
    let desired =
        DesiredState { sysctls: [spec("a", "1"), spec("b", "1"), spec("c", "1")].into(), ..DesiredState::default() };
    assert_eq!(diff(&current, &desired), vec![Op::WriteSysctl(spec("b", "1")), Op::WriteSysctl(spec("c", "1"))]);
}

#[test]
fn addresses_only_change_on_managed_devices() {
    let address = |device: &str, text: &str| AddressSpec { device: device.into(), address: text.parse().unwrap() };
    let current = KernelState {
        addresses: [address("eth0", "192.168.1.2/24"), address(VXLAN_DEVICE, "10.0.9.0/32")].into(),
        ..KernelState::default()
    };
    let desired = DesiredState { addresses: [address(VXLAN_DEVICE, "10.0.0.0/32")].into(), ..DesiredState::default() };
    assert_eq!(
        diff(&current, &desired),
        vec![
            Op::AddAddress(address(VXLAN_DEVICE, "10.0.0.0/32")),
            Op::DeleteAddress(address(VXLAN_DEVICE, "10.0.9.0/32"))
        ]
    );
}

#[test]
fn the_kernels_link_local_addresses_on_tunnels_are_left_alone() {
    let address = |device: &str, text: &str| AddressSpec { device: device.into(), address: text.parse().unwrap() };
    let current = KernelState {
        addresses: [
            address(VXLAN6_DEVICE, "fe80::ff:fe00:10a/64"),
            address(VXLAN_DEVICE, "fe80::ff:fe00:a/64"),
            address(VXLAN6_DEVICE, "fd00:100::9/128"),
        ]
        .into(),
        ..KernelState::default()
    };
    let desired =
        DesiredState { addresses: [address(VXLAN6_DEVICE, "fd00:100::/128")].into(), ..DesiredState::default() };
    assert_eq!(
        diff(&current, &desired),
        vec![
            Op::AddAddress(address(VXLAN6_DEVICE, "fd00:100::/128")),
            Op::DeleteAddress(address(VXLAN6_DEVICE, "fd00:100::9/128"))
        ]
    );
}

#[test]
fn each_vxlan_device_drains_on_its_own() {
    let v4 = vxlan(4096, 1450);
    let v6 = TunnelSpec { name: VXLAN6_DEVICE.into(), ..vxlan(4096, 1430) };
    let current = KernelState {
        links: vec![link(&v4, true), LinkState { index: 8, ..link(&v6, true) }],
        ..KernelState::default()
    };
    let draining = DesiredState { keep_vxlan_devices: [VXLAN6_DEVICE.to_string()].into(), ..DesiredState::default() };
    assert_eq!(diff(&current, &draining), vec![Op::DeleteLink(VXLAN_DEVICE.into())]);
    let gone = diff(&current, &DesiredState::default());
    assert_eq!(gone, vec![Op::DeleteLink(VXLAN_DEVICE.into()), Op::DeleteLink(VXLAN6_DEVICE.into())]);
}
