#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Each attachment belongs to its CNI container id: a stale DEL of an older sandbox leaves the
//! newer sandbox of the same pod alone, a newer sandbox's ADD says whose attachment it replaces,
//! and whatever a half-made ADD left is taken over by a retried ADD or removed by DEL.

mod cni_support;

use std::time::{Duration, Instant};

use cni_support::{Invoke, Netns, TestAgent, config, require_root};
use gingham_crds::naming::endpoint_interface_name;
use serde_json::Value;

fn invoke<'a>(node: &'a Netns, command: &'a str, container: &'a str, netns: String, config: Value) -> Invoke<'a> {
    Invoke { node, command, container, netns, pod: "web", config }
}

fn add(node: &Netns, container: &str, pod: &Netns, agent: &TestAgent) -> (std::process::Output, Value) {
    let (output, result) = invoke(node, "ADD", container, pod.path(), config(&agent.socket)).run();
    assert!(output.status.success(), "ADD {container}: {result} {}", String::from_utf8_lossy(&output.stderr));
    (output, result)
}

fn alias(node: &Netns, interface: &str) -> String {
    let link = node.json(&["ip", "-j", "link", "show", "dev", interface]);
    link[0]["ifalias"].as_str().unwrap_or_default().to_string()
}

/// ADD sandbox-a, then sandbox-b for the same pod; then DEL sandbox-a, with its network namespace
/// still there or already gone (as after a reboot). Sandbox-b keeps its veth, its address and a
/// passing CHECK.
#[test]
fn a_stale_del_of_an_older_sandbox_leaves_the_newer_one_alone() {
    require_root();
    for (case, netns_gone) in [("the older netns still exists", false), ("the older netns is gone", true)] {
        let agent = TestAgent::start(&["10.66.20.0/26"]);
        let node = Netns::new("own-node");
        let (older, newer) = (Netns::new("own-a"), Netns::new("own-b"));
        let host = endpoint_interface_name("default", "web");
        add(&node, "sandbox-a", &older, &agent);
        assert_eq!(alias(&node, &host), "sandbox-a", "{case}: the host veth carries its owner");
        let (output, result) = add(&node, "sandbox-b", &newer, &agent);
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(
            log.contains("replaces the older sandbox") && log.contains("sandbox-a") && log.contains("sandbox-b"),
            "{case}: replacing a live older sandbox is logged, naming both: {log}"
        );
        assert_eq!(alias(&node, &host), "sandbox-b", "{case}");

        let older_path = older.path();
        if netns_gone {
            drop(older);
        }
        let (output, out) = invoke(&node, "DEL", "sandbox-a", older_path, config(&agent.socket)).run();
        assert!(output.status.success(), "{case}: DEL sandbox-a: {out}");

        assert!(node.has_link(&host), "{case}: the newer sandbox's host veth is still there");
        assert!(newer.has_link("eth0"), "{case}: the newer sandbox's eth0 is still there");
        let mut check = config(&agent.socket);
        check["prevResult"] = result.clone();
        let (output, error) = invoke(&node, "CHECK", "sandbox-b", newer.path(), check).run();
        assert!(output.status.success(), "{case}: CHECK on sandbox-b after the stale DEL: {error}");
        let owners: Vec<String> = agent.ipam.list().unwrap().into_iter().map(|a| a.container_id).collect();
        assert_eq!(owners, ["sandbox-b"], "{case}: the newer sandbox keeps its address");

        let (output, out) = invoke(&node, "DEL", "sandbox-b", newer.path(), config(&agent.socket)).run();
        assert!(output.status.success(), "{case}: DEL sandbox-b: {out}");
        assert!(!node.has_link(&host) && !newer.has_link("eth0"), "{case}: its own DEL removes it");
    }
}

/// Without an allocation for the container, DEL removes only a host veth marked with its id.
#[test]
fn del_without_an_allocation_removes_only_what_carries_its_mark() {
    require_root();
    let agent = TestAgent::start(&["10.66.21.0/26"]);
    let (node, pod) = (Netns::new("mark-node"), Netns::new("mark-pod"));
    let host = endpoint_interface_name("default", "web");
    node.run(&["ip", "link", "add", &host, "type", "veth", "peer", "name", "other-peer"]);
    node.run(&["ip", "link", "set", &host, "alias", "someone-else"]);
    let (output, out) = invoke(&node, "DEL", "sandbox-x", pod.path(), config(&agent.socket)).run();
    assert!(output.status.success(), "{out}");
    assert!(node.has_link(&host), "another container's veth stays");
    node.run(&["ip", "link", "set", &host, "alias", "sandbox-x"]);
    let (output, out) = invoke(&node, "DEL", "sandbox-x", pod.path(), config(&agent.socket)).run();
    assert!(output.status.success(), "{out}");
    assert!(!node.has_link(&host), "the container's own veth goes");
}

/// An ADD killed while it waits for `ready` (a runtime's timeout): veth, route, address and a
/// pending allocation are left behind.
fn half_add(node: &Netns, pod: &Netns, agent: &TestAgent) {
    agent.hold(true);
    let mut child = invoke(node, "ADD", "c1", pod.path(), config(&agent.socket)).spawn();
    let started = Instant::now();
    while !(pod.has_link("eth0") && pod.run(&["ip", "-4", "route", "show"]).contains("default")) {
        assert!(started.elapsed() < Duration::from_secs(10), "the ADD never plumbed the pod");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    agent.hold(false);
    assert!(pod.has_link("eth0"), "the killed ADD left the pod's eth0");
}

#[test]
fn a_retried_add_after_a_half_made_one_succeeds_without_a_del() {
    require_root();
    let agent = TestAgent::start(&["10.66.22.0/26"]);
    let (node, pod) = (Netns::new("retry-node"), Netns::new("retry-pod"));
    half_add(&node, &pod, &agent);
    let (_, result) = add(&node, "c1", &pod, &agent);
    assert_eq!(result["ips"][0]["address"], "10.66.22.0/32", "the same address: {result}");
    let mut check = config(&agent.socket);
    check["prevResult"] = result;
    let (output, error) = invoke(&node, "CHECK", "c1", pod.path(), check).run();
    assert!(output.status.success(), "CHECK after the retried ADD: {error}");
    assert_eq!(agent.ipam.list().unwrap().len(), 1, "one allocation");
}

#[test]
fn del_after_a_half_made_add_leaves_nothing() {
    require_root();
    for stray in [false, true] {
        let agent = TestAgent::start(&["10.66.23.0/26"]);
        let (node, pod) = (Netns::new("half-node"), Netns::new("half-pod"));
        let host = endpoint_interface_name("default", "web");
        if stray {
            // An eth0 paired with nothing on the host (this kernel has no dummy links).
            pod.run(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "stray0"]);
        } else {
            half_add(&node, &pod, &agent);
        }
        let (output, out) = invoke(&node, "DEL", "c1", pod.path(), config(&agent.socket)).run();
        assert!(output.status.success(), "stray {stray}: DEL: {out}");
        assert!(!pod.has_link("eth0") && !pod.has_link("stray0"), "stray {stray}: the pod's eth0 is gone");
        assert!(!node.has_link(&host), "stray {stray}: the host veth is gone");
        assert!(node.run(&["ip", "-4", "route", "show", "proto", "249"]).is_empty(), "stray {stray}: no route");
        assert!(agent.ipam.list().unwrap().is_empty(), "stray {stray}: the address is released");
    }
}
