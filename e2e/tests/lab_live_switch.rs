//! Encapsulation switched on a running lab the way users do it (`kubectl edit ippool`), checked on
//! every pod pair (issue 12): three pods per node, so that the low addresses of every block are
//! taken before the tunnel needs one; two subnets, so that CrossSubnet encapsulates some node pairs
//! and not others; the full matrix, no pod address on a node device and the tunnel address in
//! `gingham-lab status` after every switch, and a pod added after every switch. Runs as root.
//! IPIP, and IPIP ↔ VXLAN, run in the VM lab (`vm_ipip_lab.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::up;
use gingham_crds::api::IpFamily;
use gingham_e2e::live::{self, Encap, VXLAN_SWITCHES};
use gingham_e2e::scenario::DEFAULT_SCENARIO;

/// How long the matrix may take to settle after every node reported the change applied.
const SETTLE: Duration = Duration::from_secs(20);

/// Brings up `scenario` (its pool `pool` without encapsulation) and runs `switches` on it.
fn check_switches(scenario: &str, prefix: &str, pool: &str, switches: &[Encap]) {
    let mut lab = up(scenario, prefix);
    let problems = live::problems_through(&mut lab.state, pool, switches, SETTLE).unwrap();
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn every_vxlan_switch_each_way_keeps_every_pod_pair_with_three_pods_per_node_on_two_subnets() {
    check_switches(&live::scenario("tt", 3, Encap::NONE), "ghlive", "pool", VXLAN_SWITCHES);
}

/// The same table on an IPv6-only lab: `vxlan6.gingham` over the IPv6 underlay.
#[test]
fn every_vxlan_switch_each_way_keeps_every_ipv6_pod_pair_on_ipv6_only() {
    check_switches(&live::scenario_in("tt", 3, Encap::NONE, &[IpFamily::IPv6]), "ghlive6", "pool", VXLAN_SWITCHES);
}

/// The same table on a dual-stack lab, both pools switched together: every pair in both families.
#[test]
fn every_vxlan_switch_each_way_keeps_every_pod_pair_in_both_families_on_dual_stack() {
    let families = [IpFamily::IPv4, IpFamily::IPv6];
    check_switches(&live::scenario_in("tt", 3, Encap::NONE, &families), "ghlived", "pool", VXLAN_SWITCHES);
}

/// The acceptance scenario: the shipped default lab (two pods per node), its
/// `default-pool` switched to VXLAN Always, then CrossSubnet, then Never.
#[test]
fn the_default_lab_keeps_its_full_matrix_through_vxlan_always_cross_subnet_never() {
    let switches = [Encap::vxlan("Always"), Encap::vxlan("CrossSubnet"), Encap::NONE];
    check_switches(DEFAULT_SCENARIO, "ghdeflt", "default-pool", &switches);
}
