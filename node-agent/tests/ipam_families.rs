#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Node-local IPAM in both families: one address per family a pod gets, from the pools it asks
//! for, all or nothing; and state files written before dual-stack read unchanged.

use std::net::IpAddr;

mod ipam_support;

use gingham_crds::api::IpFamily::{self, IPv4, IPv6};
use gingham_node_agent::ipam::{FamilyRequest, IpamError, IpamStore};
use ipam_support::{blocks, request_of};

fn addresses(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

/// A case: the node's blocks, the families asked for, the addresses the first three pods get.
type Case = (&'static [&'static str], &'static [IpFamily], [&'static [&'static str]; 3]);

#[test]
fn each_pod_gets_one_address_of_each_family_it_asks_for() {
    let dual = &["10.244.0.0/30", "fd00:244::/126"][..];
    let cases: [Case; 4] = [
        (
            dual,
            &[IPv4, IPv6],
            [&["10.244.0.0", "fd00:244::"], &["10.244.0.1", "fd00:244::1"], &["10.244.0.2", "fd00:244::2"]],
        ),
        (dual, &[IPv6], [&["fd00:244::"], &["fd00:244::1"], &["fd00:244::2"]]),
        (dual, &[IPv4], [&["10.244.0.0"], &["10.244.0.1"], &["10.244.0.2"]]),
        (&["fd00:244::/122"], &[IPv6], [&["fd00:244::"], &["fd00:244::1"], &["fd00:244::2"]]),
    ];
    for (set, families, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = IpamStore::open(dir.path()).unwrap();
        let set = blocks(set, &[]);
        for (index, want) in expected.iter().enumerate() {
            let allocation = store.allocate(&set, &request_of(&index.to_string(), families)).unwrap();
            assert_eq!(allocation.addresses(), addresses(want), "{families:?} pod {index}");
            assert_eq!(allocation.endpoint().addresses(), addresses(want), "the endpoint carries them all");
        }
        let usage = store.usage(&set).unwrap();
        assert_eq!(usage.allocated as usize, 3 * families.len(), "{families:?}: every address counts");
        let released = store.release("1", None).unwrap();
        assert_eq!(released[0].addresses(), addresses(expected[1]), "release frees every family");
        let again = store.allocate(&set, &request_of("again", families)).unwrap();
        assert_eq!(again.addresses(), addresses(expected[1]), "{families:?}: the freed addresses are handed out again");
    }
}

#[test]
fn a_family_without_a_free_address_allocates_nothing_and_names_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.244.0.0/28", "fd00:244::/127"], &[]);
    for id in ["a", "b"] {
        store.allocate(&set, &request_of(id, &[IPv4, IPv6])).unwrap();
    }
    let error = store.allocate(&set, &request_of("full", &[IPv4, IPv6])).unwrap_err();
    assert!(matches!(error, IpamError::Exhausted { family: IPv6, .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("no free IPv6 address") && text.contains("fd00:244::/127"), "{text}");
    assert_eq!(store.list().unwrap().len(), 2, "the IPv4 address was not taken either");
    let ipv4 = store.allocate(&set, &request_of("v4", &[IPv4])).unwrap();
    assert_eq!(ipv4.addresses(), addresses(&["10.244.0.2"]), "an IPv4-only pod still fits");
}

#[test]
fn an_address_comes_from_a_block_of_the_pools_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.244.0.0/30", "10.250.0.0/30", "fd00:244::/126", "fd00:250::/126"], &[]);
    let mut request = request_of("a", &[]);
    request.families = vec![
        FamilyRequest { family: IPv4, pools: vec!["10.250.0.0/16".parse().unwrap()] },
        FamilyRequest { family: IPv6, pools: vec!["fd00:250::/64".parse().unwrap()] },
    ];
    let allocation = store.allocate(&set, &request).unwrap();
    assert_eq!(allocation.addresses(), addresses(&["10.250.0.0", "fd00:250::"]));
}

/// A table an IPv4-only agent wrote (pods and the tunnel) reads as it was, and is written back the
/// same way: no `address6`, no `tunnel6`.
#[test]
fn a_state_file_written_before_dual_stack_reads_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("ipam/allocations.json");
    std::fs::create_dir_all(table.parent().unwrap()).unwrap();
    let before = serde_json::json!({
        "version": 1,
        "allocations": [{
            "container_id": "c1", "ifname": "eth0", "namespace": "default", "pod": "web",
            "interface": "gh0123456789a", "address": "10.244.0.1", "ready": true, "allocated_at": 1700000000u64,
        }],
        "tunnel": { "handle": "tunnel-addr-node-a", "address": "10.244.0.0", "allocated_at": 1700000000u64 },
    });
    std::fs::write(&table, serde_json::to_vec_pretty(&before).unwrap()).unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].addresses(), addresses(&["10.244.0.1"]));
    assert_eq!(list[0].endpoint().address, Some("10.244.0.1".parse().unwrap()));
    assert_eq!(store.tunnel(IPv4).unwrap().unwrap().address, "10.244.0.0".parse::<IpAddr>().unwrap());
    // A change writes the table back; the old entries keep their shape.
    let set = blocks(&["10.244.0.0/30"], &["10.244.0.0/30"]);
    store.allocate(&set, &request_of("c2", &[IPv4])).unwrap();
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&table).unwrap()).unwrap();
    assert_eq!(after["allocations"][0], before["allocations"][0], "the old allocation is written as it was");
    assert_eq!(after["tunnel"], before["tunnel"]);
    assert!(after.get("tunnel6").is_none(), "{after}");
    assert_eq!(after["allocations"][1]["address"], "10.244.0.2");
}
