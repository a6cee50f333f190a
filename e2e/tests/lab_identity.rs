//! A pod deleted and re-created under the same name with other labels is another Pod (another
//! UID): right after its CNI ADD returns, the whole pod-to-pod matrix follows its new labels, never
//! its predecessor's compiled policy. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::up;
use gingham_e2e::pods;
use gingham_e2e::probe::{self, Probe};
use gingham_e2e::scenario::PodSpec;

const SCENARIO: &str = "lab: {prefix: tt}
subnets:
  - {name: a, cidr: 10.231.1.0/24}
nodes:
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
  - {name: n3, subnet: a}
pods:
  - {name: x1, node: n1, labels: {role: a}}
  - {name: y1, node: n1, labels: {role: b}}
  - {name: x2, node: n2, labels: {role: a}}
  - {name: y2, node: n2, labels: {role: b}}
  - {name: x3, node: n3, labels: {role: a}}
  - {name: y3, node: n3, labels: {role: b}}
objects:
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool}
    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never}
";

/// Ingress is denied to every pod of `default` except those labelled `role: a`.
const POLICY: &str = "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a, namespace: default}
spec:
  podSelector: {matchLabels: {role: a}}
  ingress: [{}]
";

/// Every pair whose reachability is not what the destination's current label says.
fn wrong_pairs(lab: &gingham_e2e::harness::LabGuard, roles: &BTreeMap<String, String>) -> Vec<String> {
    common::wrong_pairs(lab, |_, to| roles[to] == "a")
}

#[test]
fn a_pod_recreated_with_other_labels_never_runs_under_its_predecessors_policy() {
    let mut lab = up(SCENARIO, "ghident");
    lab.apply(POLICY).unwrap();
    let mut roles: BTreeMap<String, String> =
        lab.scenario.pods.iter().map(|p| (format!("{}/{}", p.namespace, p.name), p.labels["role"].clone())).collect();
    let before = wrong_pairs(&lab, &roles);
    assert!(before.is_empty(), "before the re-creation:\n{}", before.join("\n"));

    // Each way: an allowed pod comes back denied, a denied pod comes back allowed.
    for (name, role) in [("x2", "b"), ("y3", "a")] {
        let old = lab.scenario.pods.iter().find(|p| p.name == name).unwrap().clone();
        let old_uid = lab.state.pods.iter().find(|p| p.name == name).unwrap().uid.clone();
        pods::remove(&mut lab.state, "default", name).unwrap();
        let spec = PodSpec { labels: BTreeMap::from([("role".to_string(), role.to_string())]), ..old };
        let record = pods::add(&mut lab.state, &spec).unwrap();
        assert_ne!(record.uid, old_uid, "a new Pod object has a new UID");
        roles.insert(format!("default/{name}"), role.to_string());
        // At once: no waiting loop. ADD returns only once the pod's own policy is in force.
        let wrong = wrong_pairs(&lab, &roles);
        assert!(
            wrong.is_empty(),
            "right after {name} was re-created with role {role}:\n{}\n{}",
            wrong.join("\n"),
            probe::render(&lab.state, &probe::matrix(&lab.state, Probe::Icmp))
        );
    }
}
