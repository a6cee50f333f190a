#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The tunnel address is an IPAM allocation under its own handle: never a pod's address, kept
//! across restarts, released when no pool encapsulates, and moved (not the pod) when an older
//! version left it on a pod's address.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

mod ipam_support;

use gingham_node_agent::ipam::{IpamError, IpamStore, tunnel_handle};
use ipam_support::{blocks, request};

const HANDLE: &str = "tunnel-addr-node-a";

fn address(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

#[test]
fn the_handle_names_the_node() {
    assert_eq!(tunnel_handle("node-a"), HANDLE);
}

#[test]
fn turning_encapsulation_on_after_pods_takes_a_free_address() {
    // The bug this replaces: the tunnel took the block's second address, which a pod held.
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let plain = blocks(&["10.232.0.0/26"], &[]);
    let pods: Vec<Ipv4Addr> =
        (0..3).map(|i| store.allocate(&plain, &request(&i.to_string())).unwrap().address).collect();
    assert_eq!(pods, vec![address("10.232.0.0"), address("10.232.0.1"), address("10.232.0.2")]);
    assert_eq!(store.ensure_tunnel(&plain, HANDLE).unwrap(), None, "no pool encapsulates: no tunnel");
    let vxlan = blocks(&["10.232.0.0/26"], &["10.232.0.0/26"]);
    let tunnel = store.ensure_tunnel(&vxlan, HANDLE).unwrap();
    assert_eq!(tunnel, Some(address("10.232.0.3")));
    let next_pod = store.allocate(&vxlan, &request("after")).unwrap();
    assert_eq!(next_pod.address, address("10.232.0.4"), "a pod never gets the tunnel address");
    let held = store.tunnel().unwrap().unwrap();
    assert_eq!((held.handle.as_str(), held.address), (HANDLE, address("10.232.0.3")));
}

#[test]
fn the_tunnel_address_survives_restarts_and_is_released_when_encapsulation_stops() {
    let dir = tempfile::tempdir().unwrap();
    let vxlan = blocks(&["10.232.0.0/26"], &["10.232.0.0/26"]);
    let first = IpamStore::open(dir.path()).unwrap().ensure_tunnel(&vxlan, HANDLE).unwrap();
    let reopened = IpamStore::open(dir.path()).unwrap();
    assert_eq!(reopened.ensure_tunnel(&vxlan, HANDLE).unwrap(), first, "same address after a restart");
    reopened.allocate(&vxlan, &request("a")).unwrap();
    assert_eq!(reopened.ensure_tunnel(&vxlan, HANDLE).unwrap(), first, "stable while pods come and go");
    let plain = blocks(&["10.232.0.0/26"], &[]);
    assert_eq!(reopened.ensure_tunnel(&plain, HANDLE).unwrap(), None);
    assert_eq!(reopened.tunnel().unwrap(), None, "released to the block");
    assert_eq!(reopened.usage(&plain).unwrap().allocated, 1, "only the pod is left");
    assert_eq!(reopened.allocate(&plain, &request("b")).unwrap().address, first.unwrap(), "its address is free again");
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
    table["tunnel"] = serde_json::json!({ "handle": HANDLE, "address": pod.address.to_string(), "allocated_at": 0 });
    std::fs::write(&path, serde_json::to_vec(&table).unwrap()).unwrap();
    let moved = store.ensure_tunnel(&vxlan, HANDLE).unwrap().unwrap();
    assert_eq!(moved, address("10.232.0.2"));
    assert!(store.list().unwrap().iter().any(|a| a.container_id == "a" && a.address == pod.address), "the pod stays");
}

#[test]
fn the_tunnel_moves_out_of_a_block_that_no_longer_encapsulates() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let first = blocks(&["10.232.0.0/26", "10.233.0.0/26"], &["10.232.0.0/26"]);
    assert_eq!(store.ensure_tunnel(&first, HANDLE).unwrap(), Some(address("10.232.0.0")));
    let other = blocks(&["10.232.0.0/26", "10.233.0.0/26"], &["10.233.0.0/26"]);
    assert_eq!(store.ensure_tunnel(&other, HANDLE).unwrap(), Some(address("10.233.0.0")));
    let mut releasing = other.clone();
    releasing.releasing.insert("10.233.0.0/26".parse().unwrap());
    let error = store.ensure_tunnel(&releasing, HANDLE).unwrap_err();
    assert!(matches!(error, IpamError::Exhausted { .. }), "{error}");
}

#[test]
fn a_full_tunnel_block_is_an_error_that_names_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.232.0.0/31"], &["10.232.0.0/31"]);
    store.allocate(&set, &request("a")).unwrap();
    store.allocate(&set, &request("b")).unwrap();
    let error = store.ensure_tunnel(&set, HANDLE).unwrap_err();
    assert!(error.to_string().contains("10.232.0.0/31"), "{error}");
}

#[test]
fn pods_and_the_tunnel_allocating_at_once_never_collide() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let set = Arc::new(blocks(&["10.244.0.0/26"], &["10.244.0.0/26"]));
    let tunnel = {
        let (dir, set) = (Arc::clone(&dir), Arc::clone(&set));
        std::thread::spawn(move || IpamStore::open(dir.path()).unwrap().ensure_tunnel(&set, HANDLE).unwrap())
    };
    let pods: Vec<_> = (0..16)
        .map(|index| {
            let (dir, set) = (Arc::clone(&dir), Arc::clone(&set));
            std::thread::spawn(move || {
                IpamStore::open(dir.path()).unwrap().allocate(&set, &request(&format!("c{index}"))).unwrap().address
            })
        })
        .collect();
    let tunnel = tunnel.join().unwrap().unwrap();
    let pods: BTreeSet<Ipv4Addr> = pods.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(pods.len(), 16);
    assert!(!pods.contains(&tunnel), "tunnel {tunnel} is also a pod's address");
}
