//! Pod churn on the lab: 50 pods added and deleted through the real CNI plugin. No address is
//! given out twice, none leaks, and connectivity is right at every step. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{scenario, up};
use gingham_e2e::harness::LabGuard;
use gingham_e2e::probe::{self, Probe, Reach};
use gingham_e2e::scenario::PodSpec;
use gingham_e2e::{cmd, datastore, pods};

const CHURN: usize = 50;

fn allocated(lab: &LabGuard) -> u64 {
    lab.state
        .nodes
        .iter()
        .filter_map(|n| datastore::node_status(&lab.datastore(), &n.name).ok().flatten())
        .filter_map(|s| s.pointer("/ipam/allocated").and_then(serde_json::Value::as_u64))
        .sum()
}

fn pod_links(lab: &LabGuard) -> usize {
    lab.state
        .nodes
        .iter()
        .map(|n| cmd::ip(Some(&n.netns), &["-o", "link"]).unwrap().lines().filter(|l| l.contains(": gh")).count())
        .sum()
}

/// Probes `address` from every pod in `sources`, 16 at a time.
fn reach_all(lab: &LabGuard, sources: &[String], address: &str) -> Vec<(String, Reach)> {
    let mut seen = Vec::new();
    for chunk in sources.chunks(16) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|key| {
                    let (netns, _) = lab.pod(key);
                    (key.clone(), scope.spawn(move || probe::reach(&lab.state, &netns, address, Probe::Icmp)))
                })
                .collect();
            seen.extend(handles.into_iter().map(|(k, h)| (k, h.join().unwrap())));
        });
    }
    seen
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn fifty_pods_added_and_deleted_keep_addresses_unique_and_leak_nothing() {
    let mut lab = up(&scenario(&[("n1", "a"), ("n2", "a")], "Never"), "ghchurn");
    let baseline = (allocated(&lab), pod_links(&lab));
    assert_eq!(baseline, (2, 2), "two pods to start with");
    let (_, anchor) = lab.pod("default/p-n1");
    let mut keys = Vec::new();
    for i in 0..CHURN {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        let spec = PodSpec {
            name: format!("churn-{i}"),
            namespace: "default".into(),
            node: node.into(),
            labels: [("app".to_string(), "churn".to_string())].into(),
            ports: Vec::new(),
            service_account: None,
        };
        let record = pods::add(&mut lab.state, &spec).unwrap();
        keys.push(record.key());
    }
    let addresses: BTreeSet<String> = lab.state.pods.iter().filter_map(|p| p.address.clone()).collect();
    assert_eq!(addresses.len(), CHURN + 2, "every pod has its own address");
    let unreachable: Vec<_> = reach_all(&lab, &keys, &anchor).into_iter().filter(|(_, r)| *r != Reach::Ok).collect();
    assert!(unreachable.is_empty(), "new pods must reach default/p-n1: {unreachable:?}");
    wait_for(|| allocated(&lab) == baseline.0 + CHURN as u64, "IPAM to count the 50 pods");

    // Delete every other pod: the rest still reach the anchor, the deleted addresses answer no more.
    let gone: Vec<String> = keys.iter().step_by(2).cloned().collect();
    let kept: Vec<String> = keys.iter().skip(1).step_by(2).cloned().collect();
    let gone_addresses: Vec<String> = gone.iter().map(|k| lab.pod(k).1).collect();
    for key in &gone {
        let (namespace, name) = key.split_once('/').unwrap();
        pods::remove(&mut lab.state, namespace, name).unwrap();
    }
    let unreachable: Vec<_> = reach_all(&lab, &kept, &anchor).into_iter().filter(|(_, r)| *r != Reach::Ok).collect();
    assert!(unreachable.is_empty(), "remaining pods must still reach the anchor: {unreachable:?}");
    let (anchor_netns, _) = lab.pod("default/p-n1");
    for address in gone_addresses.iter().take(5) {
        assert_eq!(probe::reach(&lab.state, &anchor_netns, address, Probe::Icmp), Reach::Blocked, "{address} is gone");
    }
    for key in &kept {
        let (namespace, name) = key.split_once('/').unwrap();
        pods::remove(&mut lab.state, namespace, name).unwrap();
    }
    wait_for(|| (allocated(&lab), pod_links(&lab)) == baseline, "every churn address and interface to be released");
    common::assert_full_mesh(&lab);
}
