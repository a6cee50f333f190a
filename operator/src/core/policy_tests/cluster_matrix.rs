//! ClusterNetworkPolicy (v1alpha2) and AdminNetworkPolicy / BaselineAdminNetworkPolicy (v1alpha1)
//! with Kubernetes NetworkPolicy, end to end through translate → compile, checked by the reference
//! evaluator on every (source, destination, protocol, port) of the world. The cases follow the
//! upstream conformance suite's (network-policy-api `conformance/tests`): Admin over NetworkPolicy
//! over Baseline, Pass delegation, an Admin Deny overriding a NetworkPolicy allow, a Baseline
//! rule applying only where no NetworkPolicy selects the pod, priorities, ports and networks.

use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use serde_json::{Value, json};

use super::world::{Expect, P, TCP, UDP, is, mismatches, outside, serves, world};
use crate::core::{ClusterSnapshot, OperatorSettings, compute};

/// The NetworkPolicies every case runs with: prod's pods take ingress from dev only.
fn prod_from_dev() -> Value {
    json!({"namespace": "prod", "podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}]})
}

/// What [`prod_from_dev`] alone allows.
fn knp(s: P, d: P) -> bool {
    d.ns != "prod" || s.ns == "dev"
}

/// The objects of a case, by kind.
#[derive(Default)]
struct Objects {
    knps: Vec<Value>,
    cnps: Vec<Value>,
    anps: Vec<Value>,
    banp: Option<Value>,
}

fn world_with(objects: &Objects) -> ClusterSnapshot {
    let mut snapshot = world();
    for (i, spec) in objects.knps.iter().enumerate() {
        let mut spec = spec.clone();
        let ns = spec.as_object_mut().and_then(|o| o.remove("namespace")).unwrap_or_else(|| json!("prod"));
        let knp: KubeNetworkPolicy =
            serde_json::from_value(json!({"metadata": {"name": format!("k{i}"), "namespace": ns}, "spec": spec}))
                .expect("a Kubernetes NetworkPolicy");
        snapshot.kube_network_policies.push(knp);
    }
    let named =
        |prefix: &str, i: usize, spec: &Value| json!({"metadata": {"name": format!("{prefix}{i}")}, "spec": spec});
    for (i, spec) in objects.cnps.iter().enumerate() {
        snapshot.cluster_network_policies.push(serde_json::from_value(named("c", i, spec)).expect("a CNP"));
    }
    for (i, spec) in objects.anps.iter().enumerate() {
        snapshot.admin_network_policies.push(serde_json::from_value(named("a", i, spec)).expect("an ANP"));
    }
    if let Some(spec) = &objects.banp {
        let banp = json!({"metadata": {"name": "default"}, "spec": spec});
        snapshot.baseline_admin_network_policies.push(serde_json::from_value(banp).expect("a BANP"));
    }
    snapshot
}

fn from(peer: Value) -> Value {
    json!([peer])
}

fn ns(env: &str) -> Value {
    json!({"namespaces": {"matchLabels": {"env": env}}})
}

fn all_ns() -> Value {
    json!({"namespaces": {}})
}

fn cnp(tier: &str, priority: u32, subject: Value, ingress: Value, egress: Value) -> Value {
    json!({"tier": tier, "priority": priority, "subject": subject, "ingress": ingress, "egress": egress})
}

fn rule(action: &str, peers: Value) -> Value {
    json!({"action": action, "from": peers, "to": peers})
}

/// The v1alpha2 cases.
fn cnp_cases() -> Vec<(&'static str, Objects, Expect)> {
    let with_knp = |cnps: Vec<Value>| Objects { knps: vec![prod_from_dev()], cnps, ..Objects::default() };
    let ingress = |tier: &str, priority: u32, subject: Value, rules: Vec<Value>| {
        let rules: Vec<Value> = rules
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("to");
                r
            })
            .collect();
        cnp(tier, priority, subject, json!(rules), json!([]))
    };
    let egress = |tier: &str, priority: u32, subject: Value, rules: Vec<Value>| {
        let rules: Vec<Value> = rules
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("from");
                r
            })
            .collect();
        cnp(tier, priority, subject, json!([]), json!(rules))
    };
    vec![
        ("the NetworkPolicy alone", with_knp(vec![]), |s, d, _, _| knp(s, d)),
        (
            "an Admin Deny overrides the NetworkPolicy's allow",
            with_knp(vec![ingress("Admin", 10, ns("prod"), vec![rule("Deny", from(ns("dev")))])]),
            |_, d, _, _| d.ns != "prod",
        ),
        (
            "an Admin Accept overrides the NetworkPolicy's isolation",
            with_knp(vec![ingress(
                "Admin",
                10,
                ns("prod"),
                vec![rule(
                    "Accept",
                    from(json!({"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}})),
                )],
            )]),
            |s, d, _, _| knp(s, d) || (is(s, "prod", "api") && d.ns == "prod"),
        ),
        (
            "an Admin Pass at priority 5 skips the Admin Deny at 20: the NetworkPolicy decides",
            with_knp(vec![
                ingress("Admin", 5, ns("prod"), vec![rule("Pass", from(ns("dev")))]),
                ingress("Admin", 20, ns("prod"), vec![rule("Deny", from(ns("dev")))]),
            ]),
            |s, d, _, _| knp(s, d),
        ),
        (
            "an Admin Deny at priority 5 comes before the Pass at 20",
            with_knp(vec![
                ingress("Admin", 20, ns("prod"), vec![rule("Pass", from(ns("dev")))]),
                ingress("Admin", 5, ns("prod"), vec![rule("Deny", from(ns("dev")))]),
            ]),
            |_, d, _, _| d.ns != "prod",
        ),
        (
            "within one policy the first rule decides: Accept, then Deny, then Pass",
            with_knp(vec![ingress(
                "Admin",
                15,
                ns("prod"),
                vec![rule("Accept", from(ns("dev"))), rule("Deny", from(ns("dev"))), rule("Pass", from(all_ns()))],
            )]),
            |s, d, _, _| knp(s, d),
        ),
        (
            "the Baseline denies only where no NetworkPolicy selects the pod (and pods only)",
            with_knp(vec![ingress("Baseline", 10, all_ns(), vec![rule("Deny", from(all_ns()))])]),
            |s, d, _, _| match d.ns {
                "prod" => s.ns == "dev",
                "dev" => outside(s),
                _ => true,
            },
        ),
        (
            "an Admin Pass reaches the Baseline for pods no NetworkPolicy selects",
            with_knp(vec![
                ingress("Admin", 10, ns("dev"), vec![rule("Pass", from(all_ns()))]),
                ingress("Baseline", 10, ns("dev"), vec![rule("Deny", from(all_ns()))]),
            ]),
            |s, d, _, _| if d.ns == "dev" { outside(s) } else { knp(s, d) },
        ),
        (
            "Baseline priorities: an Accept at 1 beats the Deny at 2",
            with_knp(vec![
                ingress("Baseline", 2, ns("dev"), vec![rule("Deny", from(all_ns()))]),
                ingress("Baseline", 1, ns("dev"), vec![rule("Accept", from(ns("prod")))]),
            ]),
            |s, d, _, _| if d.ns == "dev" { s.ns == "prod" || outside(s) } else { knp(s, d) },
        ),
        (
            "an Admin Deny on ports and a named port leaves the others to the NetworkPolicy",
            with_knp(vec![cnp(
                "Admin",
                10,
                ns("prod"),
                json!([{"action": "Deny", "from": [ns("dev")],
                        "protocols": [{"tcp": {"destinationPort": {"number": 5432}}}, {"destinationNamedPort": "http"}]}]),
                json!([]),
            )]),
            |s, d, protocol, port| {
                knp(s, d)
                    && !(s.ns == "dev"
                        && d.ns == "prod"
                        && ((protocol == TCP && port == 5432) || serves(d, "http", protocol, port)))
            },
        ),
        (
            "a Baseline egress Deny to every network applies to pods without an egress NetworkPolicy",
            with_knp(vec![egress(
                "Baseline",
                10,
                ns("dev"),
                vec![rule("Deny", json!([{"networks": ["0.0.0.0/0", "::/0"]}]))],
            )]),
            |s, d, _, _| s.ns != "dev" && knp(s, d),
        ),
        (
            "an egress NetworkPolicy in dev decides instead of the Baseline",
            Objects {
                knps: vec![
                    prod_from_dev(),
                    json!({"namespace": "dev", "podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}),
                ],
                cnps: vec![egress(
                    "Baseline",
                    10,
                    ns("dev"),
                    vec![rule("Deny", json!([{"networks": ["0.0.0.0/0", "::/0"]}]))],
                )],
                ..Objects::default()
            },
            |s, d, protocol, port| knp(s, d) && (s.ns != "dev" || (protocol == UDP && port == 53)),
        ),
        (
            "an Admin egress Accept overrides a NetworkPolicy's egress isolation; the destination's ingress still applies",
            Objects {
                knps: vec![prod_from_dev(), json!({"namespace": "dev", "podSelector": {}, "policyTypes": ["Egress"]})],
                cnps: vec![egress("Admin", 10, ns("dev"), vec![rule("Accept", from(all_ns()))])],
                ..Objects::default()
            },
            |s, d, _, _| knp(s, d) && (s.ns != "dev" || (!outside(d))),
        ),
    ]
}

/// The v1alpha1 cases: the same semantics, Allow for Accept, one BaselineAdminNetworkPolicy.
fn anp_cases() -> Vec<(&'static str, Objects, Expect)> {
    let anp = |priority: u32, subject: Value, rules: Value| json!({"priority": priority, "subject": subject, "ingress": rules});
    let with = |anps: Vec<Value>, banp: Option<Value>| Objects {
        knps: vec![prod_from_dev()],
        anps,
        banp,
        ..Objects::default()
    };
    vec![
        (
            "an ANP Deny overrides the NetworkPolicy's allow",
            with(vec![anp(10, ns("prod"), json!([{"action": "Deny", "from": [ns("dev")]}]))], None),
            |_, d, _, _| d.ns != "prod",
        ),
        (
            "an ANP Allow overrides the NetworkPolicy's isolation",
            with(
                vec![anp(
                    10,
                    ns("prod"),
                    json!([{"action": "Allow", "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}}]}]),
                )],
                None,
            ),
            |s, d, _, _| knp(s, d) || (is(s, "prod", "api") && d.ns == "prod"),
        ),
        (
            "an ANP Pass at priority 5 skips the ANP Deny at 20",
            with(
                vec![
                    anp(20, ns("prod"), json!([{"action": "Deny", "from": [ns("dev")]}])),
                    anp(5, ns("prod"), json!([{"action": "Pass", "from": [ns("dev")]}])),
                ],
                None,
            ),
            |s, d, _, _| knp(s, d),
        ),
        (
            "the BANP denies only where no NetworkPolicy selects the pod",
            with(vec![], Some(json!({"subject": all_ns(), "ingress": [{"action": "Deny", "from": [all_ns()]}]}))),
            |s, d, _, _| match d.ns {
                "prod" => s.ns == "dev",
                "dev" => outside(s),
                _ => true,
            },
        ),
        (
            "an ANP Pass reaches the BANP; the BANP's first rule decides",
            with(
                vec![anp(1, ns("dev"), json!([{"action": "Pass", "from": [all_ns()]}]))],
                Some(json!({"subject": ns("dev"), "ingress": [
                    {"action": "Allow", "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}}]},
                    {"action": "Deny", "from": [all_ns()]}]})),
            ),
            |s, d, _, _| if d.ns == "dev" { s.name == "web" || outside(s) } else { knp(s, d) },
        ),
    ]
}

#[test]
fn cluster_network_policies_follow_the_tier_semantics() {
    let mut failures = Vec::new();
    for (case, objects, expect) in cnp_cases().into_iter().chain(anp_cases()) {
        let desired = compute(&world_with(&objects), &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        failures.extend(mismatches(case, &desired, expect));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
