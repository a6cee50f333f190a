//! Two operator replicas on the lab's one datastore (docs/stream.md): both compute and serve the
//! stream, the agents spread over them, and the one holding the datastore's leader lock writes.
//! The leader is killed with SIGKILL and a policy is changed while it is down: every agent that
//! followed it fails over to the other replica, resyncs by content (no snapshot), says so in its
//! status, and the whole pod-to-pod matrix, three pods per node, follows the new policy; the other
//! replica takes over the writing. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::stream::{stream_status, wait_for_stream, wait_until};
use common::{up, wrong_pairs};
use gingham_e2e::state::LabState;
use gingham_e2e::{lab, process, stream};
use nix::sys::signal::Signal;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// Three nodes with three pods each, roles a, b and c; two operator replicas on unix sockets.
fn scenario() -> String {
    let mut text = String::from(
        "lab: {prefix: tt, operator: {replicas: 2}}\nsubnets:\n  - {name: a, cidr: 10.231.1.0/24}\nnodes:\n",
    );
    for node in NODES {
        text.push_str(&format!("  - {{name: {node}, subnet: a}}\n"));
    }
    text.push_str("pods:\n");
    for node in NODES {
        for role in ["a", "b", "c"] {
            text.push_str(&format!("  - {{name: {role}-{node}, node: {node}, labels: {{role: {role}}}}}\n"));
        }
    }
    text.push_str(
        "objects:\n  - apiVersion: gingham.dev/v1\n    kind: IPPool\n    metadata: {name: pool}\n    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never}\n",
    );
    text
}

/// Ingress is denied to every pod of `default` except those of `role`.
fn open_to(role: &str) -> String {
    format!(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny, namespace: default}}
spec: {{podSelector: {{}}, policyTypes: [Ingress]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: open, namespace: default}}
spec:
  podSelector: {{matchLabels: {{role: {role}}}}}
  ingress: [{{}}]
"
    )
}

/// Whether `to` (`default/<role>-<node>`) is open while `role` is.
fn open(role: &'static str) -> impl Fn(&str, &str) -> bool {
    move |_, to| to.strip_prefix("default/").is_some_and(|pod| pod.starts_with(&format!("{role}-")))
}

#[test]
fn a_policy_changed_while_the_leader_is_down_is_enforced_everywhere_through_the_other_replica() {
    let mut lab = up(&scenario(), "ghrepl");
    lab.apply(&open_to("a")).unwrap();
    let wrong = wrong_pairs(&lab, open("a"));
    assert!(wrong.is_empty(), "with both replicas:\n{}", wrong.join("\n"));

    let servers: Vec<String> = (0..2).map(|replica| stream::endpoint(&lab.state, replica).1).collect();
    let leading =
        |state: &LabState, replica| !stream::log_lines(state, replica, "leading: this replica writes").is_empty();
    let leader = (0..2).find(|replica| leading(&lab.state, *replica)).expect("one replica leads");
    assert!(!leading(&lab.state, 1 - leader), "and only one");
    let survivor = &servers[1 - leader];
    let followed: BTreeMap<&str, String> =
        NODES.iter().map(|node| (*node, stream_status(&lab, node).1.unwrap_or_default())).collect();
    let moved: Vec<&str> = NODES.iter().copied().filter(|node| followed[node] != *survivor).collect();
    assert!(!moved.is_empty() && moved.len() < NODES.len(), "the agents spread over both replicas: {followed:?}");

    let before = stream::syncs(&lab.state, 1 - leader).len();
    let name = stream::replica_name(leader);
    let record = lab.state.processes.iter().find(|p| p.name == name).cloned().unwrap();
    assert!(process::signal(&record, Signal::SIGKILL), "the leader runs");
    lab.state.processes.retain(|p| p.name != name);
    // While it is down, role b opens and role a closes.
    for object in gingham_e2e::datastore::parse_manifests(&open_to("b"), "<test>").unwrap() {
        gingham_e2e::datastore::put(&lab.datastore(), &object).unwrap();
    }
    wait_for_stream(&lab, &NODES, "Streaming", Some(survivor));
    wait_until("the new policy on every node", Duration::from_secs(30), || {
        let wrong = wrong_pairs(&lab, open("b"));
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join("\n")) }
    });

    let syncs = stream::syncs(&lab.state, 1 - leader);
    let failed_over = &syncs[before..];
    let mut nodes: Vec<&str> = failed_over.iter().map(|(node, _)| node.as_str()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, moved, "each agent of the dead leader subscribed once to the other: {syncs:?}");
    assert!(failed_over.iter().all(|(_, how)| how == "content"), "by content, not by snapshot: {syncs:?}");
    assert!(leading(&lab.state, 1 - leader), "the other replica took over the writing");
    lab::wait_converged(&lab.state, Duration::from_secs(30)).unwrap();
    let wrong = wrong_pairs(&lab, open("b"));
    assert!(wrong.is_empty(), "after the fail-over:\n{}", wrong.join("\n"));
}
