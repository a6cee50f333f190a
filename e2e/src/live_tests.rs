#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use super::{Encap, IPIP_SWITCHES, VXLAN_SWITCHES, scenario};

fn transitions(switches: &[Encap]) -> BTreeSet<(String, String)> {
    let mut previous = Encap::NONE;
    let mut seen = BTreeSet::new();
    for encap in switches {
        seen.insert((previous.label(), encap.label()));
        previous = *encap;
    }
    seen
}

fn each_way(modes: &[&str]) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for a in modes {
        for b in modes.iter().filter(|b| *b != a) {
            all.insert(((*a).to_string(), (*b).to_string()));
        }
    }
    all
}

#[test]
fn the_vxlan_table_covers_every_transition_each_way_and_ends_where_it_started() {
    let wanted = each_way(&["Never", "VXLAN Always", "VXLAN CrossSubnet"]);
    assert_eq!(transitions(VXLAN_SWITCHES), wanted);
    assert_eq!(VXLAN_SWITCHES.last(), Some(&Encap::NONE));
}

#[test]
fn the_ipip_table_covers_every_ipip_transition_and_ipip_vxlan_each_way() {
    let seen = transitions(IPIP_SWITCHES);
    let mut wanted = each_way(&["Never", "IPIP Always", "IPIP CrossSubnet"]);
    for mode in ["Always", "CrossSubnet"] {
        wanted.extend(each_way(&[&format!("IPIP {mode}"), &format!("VXLAN {mode}")]));
    }
    let missing: Vec<_> = wanted.difference(&seen).collect();
    assert!(missing.is_empty(), "transitions missing from IPIP_SWITCHES: {missing:?}");
    assert_eq!(IPIP_SWITCHES.last(), Some(&Encap::NONE));
}

#[test]
fn the_live_scenario_is_valid_with_three_pods_per_node_on_two_subnets() {
    let parsed = crate::scenario::parse(&scenario("lv", 3, Encap::vxlan("CrossSubnet"))).unwrap();
    assert_eq!(parsed.pods.len(), 9);
    assert_eq!(parsed.subnets.len(), 2);
    for (node, _) in super::NODES {
        assert_eq!(parsed.pods.iter().filter(|p| p.node == node).count(), 3, "{node}");
    }
    let pool = &parsed.objects[0];
    assert_eq!(pool.pointer("/spec/vxlanMode").and_then(|v| v.as_str()), Some("CrossSubnet"));
    assert_eq!(pool.pointer("/spec/ipipMode").and_then(|v| v.as_str()), Some("Never"));
}

#[test]
fn encapsulations_are_labelled_as_a_reader_names_them() {
    let cases = [
        (Encap::NONE, "Never"),
        (Encap::vxlan("Always"), "VXLAN Always"),
        (Encap::ipip("CrossSubnet"), "IPIP CrossSubnet"),
    ];
    for (encap, label) in cases {
        assert_eq!(encap.label(), label);
    }
}

#[test]
fn the_dual_stack_live_scenario_has_both_underlays_and_a_pool_per_family() {
    use gingham_crds::api::IpFamily;
    let text = super::scenario_in("lv", 2, Encap::vxlan("Always"), &[IpFamily::IPv4, IpFamily::IPv6]);
    let parsed = crate::scenario::parse(&text).unwrap();
    assert!(parsed.subnets.iter().all(|s| s.v4.is_some() && s.v6.is_some()), "{:?}", parsed.subnets);
    let pools: Vec<(&str, &str)> = parsed
        .objects
        .iter()
        .map(|o| {
            (
                o.pointer("/spec/cidr").unwrap().as_str().unwrap(),
                o.pointer("/spec/vxlanMode").unwrap().as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(pools, [("10.232.0.0/16", "Always"), ("fd00:232::/48", "Always")]);
    let ipv6_only = crate::scenario::parse(&super::scenario_in("lv", 1, Encap::NONE, &[IpFamily::IPv6])).unwrap();
    assert!(ipv6_only.subnets.iter().all(|s| s.v4.is_none()));
    assert_eq!(ipv6_only.objects.len(), 1);
}
