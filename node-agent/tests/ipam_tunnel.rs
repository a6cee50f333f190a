#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The tunnel address is an IPAM allocation under its own handle: never a pod's address, kept
//! across restarts, released when no pool encapsulates, and moved (not the pod) when an older
//! version left it on a pod's address.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

mod ipam_support;

use gingham_crds::api::IpFamily::{self, IPv4, IPv6};
use gingham_node_agent::ipam::{IpamError, IpamStore, tunnel_handle};
use ipam_support::{blocks, request};

const HANDLE: &str = "tunnel-addr-node-a";

fn address(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn the_handle_names_the_node() {
    assert_eq!(tunnel_handle(IPv4, "node-a"), HANDLE);
    assert_eq!(tunnel_handle(IPv6, "node-a"), "tunnel-addr-v6-node-a");
}

#[test]
fn turning_encapsulation_on_after_pods_takes_a_free_address() {
    // The bug this replaces: the tunnel took the block's second address, which a pod held.
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let plain = blocks(&["10.232.0.0/26"], &[]);
    let pods: Vec<IpAddr> =
        (0..3).flat_map(|i| store.allocate(&plain, &request(&i.to_string())).unwrap().addresses()).collect();
    assert_eq!(pods, vec![address("10.232.0.0"), address("10.232.0.1"), address("10.232.0.2")]);
    assert_eq!(store.ensure_tunnel(&plain, IPv4, HANDLE).unwrap(), None, "no pool encapsulates: no tunnel");
    let vxlan = blocks(&["10.232.0.0/26"], &["10.232.0.0/26"]);
    let tunnel = store.ensure_tunnel(&vxlan, IPv4, HANDLE).unwrap();
    assert_eq!(tunnel, Some(address("10.232.0.3")));
    let next_pod = store.allocate(&vxlan, &request("after")).unwrap();
    assert_eq!(next_pod.addresses(), [address("10.232.0.4")], "a pod never gets the tunnel address");
    let held = store.tunnel(IPv4).unwrap().unwrap();
    assert_eq!((held.handle.as_str(), held.address), (HANDLE, address("10.232.0.3")));
}

#[test]
fn the_tunnel_address_survives_restarts_and_is_released_when_encapsulation_stops() {
    let dir = tempfile::tempdir().unwrap();
    let vxlan = blocks(&["10.232.0.0/26"], &["10.232.0.0/26"]);
    let first = IpamStore::open(dir.path()).unwrap().ensure_tunnel(&vxlan, IPv4, HANDLE).unwrap();
    let reopened = IpamStore::open(dir.path()).unwrap();
    assert_eq!(reopened.ensure_tunnel(&vxlan, IPv4, HANDLE).unwrap(), first, "same address after a restart");
    reopened.allocate(&vxlan, &request("a")).unwrap();
    assert_eq!(reopened.ensure_tunnel(&vxlan, IPv4, HANDLE).unwrap(), first, "stable while pods come and go");
    let plain = blocks(&["10.232.0.0/26"], &[]);
    assert_eq!(reopened.ensure_tunnel(&plain, IPv4, HANDLE).unwrap(), None);
    assert_eq!(reopened.tunnel(IPv4).unwrap(), None, "released to the block");
    assert_eq!(reopened.usage(&plain).unwrap().allocated, 1, "only the pod is left");
    assert_eq!(
        reopened.allocate(&plain, &request("b")).unwrap().addresses(),
        [first.unwrap()],
        "its address is free again"
    );
}

#[test]
fn a_tunnel_address_a_pod_holds_moves_and_the_pod_keeps_it() {
    // An older version's table: the pod holds 10.232.0.1, and the tunnel record says the same.
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let vxlan = blocks(&["10.232.0.0/26"], &["10.232.0.0/26"]);
    let pod = store.allocate(&vxlan, &request("a")).unwrap();
    store.allocate(&vxlan, &request("b")).unwrap();
    let path = dir.path().join("ipam/allocations.json");
    let mut table: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    table["tunnel"] =
        serde_json::json!({ "handle": HANDLE, "address": pod.address.unwrap().to_string(), "allocated_at": 0 });
    std::fs::write(&path, serde_json::to_vec(&table).unwrap()).unwrap();
    let moved = store.ensure_tunnel(&vxlan, IPv4, HANDLE).unwrap().unwrap();
    assert_eq!(moved, address("10.232.0.2"));
    assert!(store.list().unwrap().iter().any(|a| a.container_id == "a" && a.address == pod.address), "the pod stays");
}

#[test]
fn the_tunnel_moves_out_of_a_block_that_no_longer_encapsulates() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let first = blocks(&["10.232.0.0/26", "10.233.0.0/26"], &["10.232.0.0/26"]);
    assert_eq!(store.ensure_tunnel(&first, IPv4, HANDLE).unwrap(), Some(address("10.232.0.0")));
    let other = blocks(&["10.232.0.0/26", "10.233.0.0/26"], &["10.233.0.0/26"]);
    assert_eq!(store.ensure_tunnel(&other, IPv4, HANDLE).unwrap(), Some(address("10.233.0.0")));
    let mut releasing = other.clone();
    releasing.releasing.insert("10.233.0.0/26".parse().unwrap());
    let error = store.ensure_tunnel(&releasing, IPv4, HANDLE).unwrap_err();
    assert!(matches!(error, IpamError::Exhausted { .. }), "{error}");
}

#[test]
fn a_full_tunnel_block_is_an_error_that_names_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.232.0.0/31"], &["10.232.0.0/31"]);
    store.allocate(&set, &request("a")).unwrap();
    store.allocate(&set, &request("b")).unwrap();
    let error = store.ensure_tunnel(&set, IPv4, HANDLE).unwrap_err();
    assert!(error.to_string().contains("10.232.0.0/31"), "{error}");
}

#[test]
fn pods_and_the_tunnel_allocating_at_once_never_collide() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let set = Arc::new(blocks(&["10.244.0.0/26"], &["10.244.0.0/26"]));
    let tunnel = {
        let (dir, set) = (Arc::clone(&dir), Arc::clone(&set));
        std::thread::spawn(move || IpamStore::open(dir.path()).unwrap().ensure_tunnel(&set, IPv4, HANDLE).unwrap())
    };
    let pods: Vec<_> = (0..16)
        .map(|index| {
            let (dir, set) = (Arc::clone(&dir), Arc::clone(&set));
            std::thread::spawn(move || {
                IpamStore::open(dir.path()).unwrap().allocate(&set, &request(&format!("c{index}"))).unwrap().addresses()
            })
        })
        .collect();
    let tunnel = tunnel.join().unwrap().unwrap();
    let pods: BTreeSet<IpAddr> = pods.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(pods.len(), 16);
    assert!(!pods.contains(&tunnel), "tunnel {tunnel} is also a pod's address");
}

/// The IPv6 VTEP address works exactly as the IPv4 tunnel address, under its own handle and from
/// `spec.tunnel.blocks6` only; both are kept in one call, and each is released on its own when no
/// pool of its family encapsulates.
#[test]
fn each_family_has_its_own_tunnel_address_kept_and_released_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let both = blocks(&["10.232.0.0/26", "fd00:232::/122"], &["10.232.0.0/26", "fd00:232::/122"]);
    let pod = store.allocate(&both, &ipam_support::request_of("a", &[IPv4, IPv6])).unwrap();
    assert_eq!(pod.addresses(), [address("10.232.0.0"), address("fd00:232::")]);
    let tunnels = store.ensure_tunnels(&both, "node-a").unwrap();
    assert_eq!(
        (tunnels.ipv4, tunnels.ipv6),
        (Some("10.232.0.1".parse().unwrap()), Some("fd00:232::1".parse().unwrap()))
    );
    let held: Vec<(IpFamily, String)> =
        [IPv4, IPv6].into_iter().map(|f| (f, store.tunnel(f).unwrap().unwrap().handle)).collect();
    assert_eq!(held, [(IPv4, HANDLE.to_string()), (IPv6, "tunnel-addr-v6-node-a".to_string())]);
    let next = store.allocate(&both, &ipam_support::request_of("b", &[IPv4, IPv6])).unwrap();
    assert_eq!(next.addresses(), [address("10.232.0.2"), address("fd00:232::2")], "no pod gets a tunnel address");

    let reopened = IpamStore::open(dir.path()).unwrap();
    assert_eq!(reopened.ensure_tunnels(&both, "node-a").unwrap(), tunnels, "kept across restarts");
    // The IPv6 pool stops encapsulating: only the IPv6 VTEP address goes back to its block.
    let ipv4_only = blocks(&["10.232.0.0/26", "fd00:232::/122"], &["10.232.0.0/26"]);
    let after = reopened.ensure_tunnels(&ipv4_only, "node-a").unwrap();
    assert_eq!((after.ipv4, after.ipv6), (tunnels.ipv4, None));
    assert_eq!(reopened.tunnel(IPv6).unwrap(), None);
    let c = reopened.allocate(&ipv4_only, &ipam_support::request_of("c", &[IPv6])).unwrap();
    assert_eq!(c.addresses(), [address("fd00:232::1")], "the released VTEP address is free again");
}

#[test]
fn a_full_ipv6_tunnel_block_is_an_error_that_names_the_family_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["fd00:232::/127"], &["fd00:232::/127"]);
    for id in ["a", "b"] {
        store.allocate(&set, &ipam_support::request_of(id, &[IPv6])).unwrap();
    }
    let error = store.ensure_tunnel(&set, IPv6, "tunnel-addr-v6-node-a").unwrap_err();
    assert!(matches!(error, IpamError::Exhausted { family: IPv6, .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("IPv6") && text.contains("fd00:232::/127"), "{text}");
}
