#![allow(clippy::unwrap_used)]

use super::*;

fn via(destination: &str, gateway: &str, device: Option<&str>) -> RouteSpec {
    RouteSpec {
        destination: destination.parse().unwrap(),
        target: RouteTarget::Via { gateway: gateway.parse().unwrap(), device: device.map(Into::into) },
    }
}

const ETH0: Underlay<'static> = Underlay { v4: Some("eth0"), v6: Some("eth1") };

fn remote(node: &str, route: RouteSpec) -> RemoteRoute {
    RemoteRoute { node: node.into(), route }
}

#[test]
fn ids_are_stable_in_range_and_skip_what_is_taken() {
    let first = preferred_id("node-b", IpFamily::IPv4);
    assert_eq!(first, preferred_id("node-b", IpFamily::IPv4), "the same node and family, the same id");
    assert_ne!(first, preferred_id("node-b", IpFamily::IPv6), "each family has its own nexthop");
    assert!(ID_RANGE.contains(&first));
    let keys = [("node-b", IpFamily::IPv4), ("node-c", IpFamily::IPv4)];
    let free = assign_ids(keys, &BTreeSet::new());
    assert_eq!(free[&keys[0]], first);
    let taken = assign_ids(keys, &[first].into());
    assert_eq!(taken[&keys[0]], first + 1, "an id another owner holds is skipped");
    assert_eq!(next_id(ID_RANGE.end - 1), ID_RANGE.start, "probing wraps in the range");
}

#[test]
fn two_nodes_with_the_same_preferred_id_get_two_ids_in_key_order() {
    // A real collision, found by brute force (the hash is fixed, so this finds the same pair each run).
    let mut seen = BTreeMap::new();
    let (a, b) = (0..1_000_000u32)
        .find_map(|i| {
            let name = format!("n{i}");
            seen.insert(preferred_id(&name, IpFamily::IPv4), name.clone()).map(|other| (other, name))
        })
        .unwrap();
    let keys = [(a.as_str(), IpFamily::IPv4), (b.as_str(), IpFamily::IPv4)];
    let ids = assign_ids(keys, &BTreeSet::new());
    assert_eq!(
        (ids[&keys[0]], ids[&keys[1]]),
        (preferred_id(&a, IpFamily::IPv4), preferred_id(&a, IpFamily::IPv4) + 1)
    );
}

#[test]
fn each_node_gets_one_nexthop_that_its_routes_name() {
    let remote = vec![
        remote("node-b", via("10.0.1.0/26", "10.0.1.0", Some("vxlan.gingham"))),
        remote("node-b", via("10.0.1.64/26", "10.0.1.0", Some("vxlan.gingham"))),
        remote("node-c", via("10.0.2.0/26", "10.0.2.0", Some("vxlan.gingham"))),
    ];
    let (routes, nexthops) = through_nexthops(&remote, ETH0, &BTreeSet::new());
    let b = preferred_id("node-b", IpFamily::IPv4);
    let c = preferred_id("node-c", IpFamily::IPv4);
    assert_eq!(
        nexthops,
        [
            NexthopSpec { id: b, gateway: "10.0.1.0".parse().unwrap(), device: "vxlan.gingham".into() },
            NexthopSpec { id: c, gateway: "10.0.2.0".parse().unwrap(), device: "vxlan.gingham".into() },
        ]
        .into()
    );
    let targets: Vec<_> = routes.iter().map(|r| (r.destination.to_string(), r.target.clone())).collect();
    assert_eq!(
        targets,
        [
            ("10.0.1.0/26".to_string(), RouteTarget::Nexthop(b)),
            ("10.0.1.64/26".to_string(), RouteTarget::Nexthop(b)),
            ("10.0.2.0/26".to_string(), RouteTarget::Nexthop(c)),
        ]
    );
}

#[test]
fn moving_a_node_changes_its_nexthop_and_none_of_its_routes() {
    let before = vec![
        remote("node-b", via("10.0.1.0/26", "10.0.1.0", Some("vxlan.gingham"))),
        remote("node-b", via("10.0.1.64/26", "10.0.1.0", Some("vxlan.gingham"))),
    ];
    // CrossSubnet: node-b moved into this node's subnet, so it is now reached directly.
    let after = vec![
        remote("node-b", via("10.0.1.0/26", "192.168.1.9", None)),
        remote("node-b", via("10.0.1.64/26", "192.168.1.9", None)),
    ];
    let (routes_before, hops_before) = through_nexthops(&before, ETH0, &BTreeSet::new());
    let (routes_after, hops_after) = through_nexthops(&after, ETH0, &BTreeSet::new());
    assert_eq!(routes_before, routes_after);
    let hop = hops_after.first().unwrap();
    assert_eq!((hop.gateway.to_string(), hop.device.as_str()), ("192.168.1.9".to_string(), "eth0"));
    assert_eq!(hops_before.first().map(|h| h.id), Some(hop.id));
}

#[test]
fn routes_a_nexthop_cannot_carry_stay_plain() {
    let remote = vec![
        remote("node-b", via("10.0.1.0/26", "10.0.1.0", Some("vxlan.gingham"))),
        // Another pool of node-b's, over IPIP: not the node's nexthop.
        remote("node-b", via("10.1.1.0/26", "192.168.2.3", Some("tunl0"))),
        // Direct, with no underlay device known.
        remote("node-c", via("10.0.2.0/26", "192.168.1.4", None)),
    ];
    let (routes, nexthops) = through_nexthops(&remote, Underlay::default(), &BTreeSet::new());
    assert_eq!(nexthops.len(), 1, "{nexthops:?}");
    assert!(routes.contains(&remote[1].route) && routes.contains(&remote[2].route), "{routes:?}");
}

#[test]
fn a_dual_stack_node_gets_one_nexthop_per_family_through_its_family_underlay() {
    let remote = vec![
        remote("node-b", via("10.0.1.0/26", "10.0.1.0", Some("vxlan.gingham"))),
        remote("node-b", via("fd00:1::/122", "fd00:1::", Some("vxlan6.gingham"))),
        remote("node-b", via("fd00:1::40/122", "fd00:1::", Some("vxlan6.gingham"))),
        // CrossSubnet, direct: out of the IPv6 underlay device.
        remote("node-c", via("fd00:2::/122", "fd00:10::3", None)),
    ];
    let (routes, nexthops) = through_nexthops(&remote, ETH0, &BTreeSet::new());
    let (b4, b6, c6) = (
        preferred_id("node-b", IpFamily::IPv4),
        preferred_id("node-b", IpFamily::IPv6),
        preferred_id("node-c", IpFamily::IPv6),
    );
    let hops: Vec<_> = nexthops.iter().map(|n| (n.id, n.gateway.to_string(), n.device.as_str())).collect();
    let mut expected = vec![
        (b4, "10.0.1.0".to_string(), "vxlan.gingham"),
        (b6, "fd00:1::".to_string(), "vxlan6.gingham"),
        (c6, "fd00:10::3".to_string(), "eth1"),
    ];
    expected.sort();
    assert_eq!(hops, expected);
    let targets: BTreeMap<String, RouteTarget> =
        routes.iter().map(|r| (r.destination.to_string(), r.target.clone())).collect();
    assert_eq!(targets["fd00:1::/122"], RouteTarget::Nexthop(b6));
    assert_eq!(targets["fd00:1::40/122"], RouteTarget::Nexthop(b6));
    assert_eq!(targets["fd00:2::/122"], RouteTarget::Nexthop(c6));
    assert_eq!(targets["10.0.1.0/26"], RouteTarget::Nexthop(b4));

    let (plain, none) = through_nexthops(&remote[3..], Underlay { v4: Some("eth0"), v6: None }, &BTreeSet::new());
    assert!(none.is_empty() && plain.contains(&remote[3].route), "no IPv6 underlay device known: a plain route");
}
