#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::GlobalNetworkPolicy;
use gingham_crds::api::policy::{PolicyRule, PolicyType};
use gingham_crds::netpolapi::v1alpha1::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use gingham_crds::netpolapi::v1alpha2::ClusterNetworkPolicy;
use serde_json::{Value, json};

use super::normalize::{from_anp, from_banp, from_cnp};
use super::translate::{NodePeer, translate};
use super::{ClusterPolicy, is_translated_name};
use crate::core::engine::Engine;
use crate::core::engine::store::{Event, Kind, Object};
use crate::core::testkit::{Meta, node};
use crate::core::{ObjectProblem, OperatorSettings};

fn cnp(name: &str, spec: Value) -> ClusterNetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": spec})).unwrap()
}

fn anp(name: &str, spec: Value) -> AdminNetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn banp(name: &str, spec: Value) -> BaselineAdminNetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn nodes() -> Vec<NodePeer> {
    vec![
        NodePeer::of(&node("n1", "192.168.0.1/24,fd00:ff::1/64").label("role", "infra")),
        NodePeer::of(&node("n2", "192.168.0.2/24").label("role", "worker")),
    ]
}

/// Normalizes and translates; the problems of both steps.
fn run(normalized: (Option<ClusterPolicy>, Vec<ObjectProblem>)) -> (Option<GlobalNetworkPolicy>, Vec<String>) {
    let (policy, mut problems) = normalized;
    let translated = policy.and_then(|p| {
        let (_, policy, more) = translate(&p, &nodes());
        problems.extend(more);
        policy
    });
    (translated, problems.into_iter().map(|p| p.message).collect())
}

fn rules(policy: &GlobalNetworkPolicy, ingress: bool) -> Vec<Value> {
    let rules: &[PolicyRule] =
        if ingress { policy.spec.ingress.as_deref() } else { policy.spec.egress.as_deref() }.unwrap_or_default();
    rules
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap();
            v.as_object_mut().unwrap().remove("metadata");
            v
        })
        .collect()
}

#[test]
fn an_admin_cnp_goes_into_kube_admin_named_after_it_ordered_by_priority_and_owned_by_it() {
    let (policy, problems) = run(from_cnp(&cnp(
        "pass-example",
        json!({"tier": "Admin", "priority": 10, "subject": {"namespaces": {"matchLabels": {"house": "gryffindor"}}},
               "ingress": [{"name": "from-slytherin", "action": "Deny", "from": [{"namespaces": {"matchLabels": {"house": "slytherin"}}}]}]}),
    )));
    assert_eq!(problems, Vec::<String>::new());
    let policy = policy.unwrap();
    assert_eq!(policy.metadata.name.as_deref(), Some("kube-admin.cnp.pass-example"));
    assert_eq!(policy.spec.tier.as_deref(), Some("kube-admin"));
    assert_eq!(policy.spec.order, Some(10.0));
    assert_eq!(policy.spec.selector.as_deref(), Some("all()"));
    assert_eq!(policy.spec.namespace_selector.as_deref(), Some(r#"house == "gryffindor""#));
    assert_eq!(policy.spec.types, Some(vec![PolicyType::Ingress]), "no egress rules: egress is not affected");
    assert_eq!(policy.spec.egress, None);
    assert_eq!(
        rules(&policy, true),
        vec![json!({"action": "Deny", "source": {"namespaceSelector": r#"house == "slytherin""#}})]
    );
    let owner = &policy.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy", "uid-pass-example", Some(true))
    );
    let rule_name = policy.spec.ingress.as_ref().unwrap()[0].metadata.clone().unwrap().annotations.unwrap();
    assert_eq!(rule_name.values().next().map(String::as_str), Some("from-slytherin"));
}

#[test]
fn tiers_and_names_of_every_kind() {
    let subject = json!({"namespaces": {}});
    let egress = json!([{"action": "Allow", "to": [{"namespaces": {}}]}]);
    let cases = [
        (run(from_cnp(&cnp("b", json!({"tier": "Baseline", "priority": 7, "subject": subject, "egress": [{"action": "Accept", "to": [{"namespaces": {}}]}]})))).0, "kube-baseline.cnp.b", "kube-baseline", 7.0),
        (run(from_anp(&anp("a", json!({"priority": 3, "subject": subject, "egress": egress})))).0, "kube-admin.anp.a", "kube-admin", 3.0),
        (run(from_banp(&banp("default", json!({"subject": subject, "egress": egress})))).0, "kube-baseline.banp.default", "kube-baseline", 1001.0),
    ];
    for (policy, name, tier, order) in cases {
        let policy = policy.unwrap();
        assert_eq!(policy.metadata.name.as_deref(), Some(name));
        assert!(is_translated_name(name));
        assert_eq!((policy.spec.tier.as_deref(), policy.spec.order), (Some(tier), Some(order)), "{name}");
        assert_eq!(policy.spec.types, Some(vec![PolicyType::Egress]), "{name}");
        assert_eq!(policy.spec.namespace_selector.as_deref(), Some("all()"), "empty namespaces: every namespace");
        assert_eq!(
            rules(&policy, false),
            vec![json!({"action": "Allow", "destination": {"namespaceSelector": "all()"}})]
        );
    }
    assert!(
        !is_translated_name("kube-admin.mine") && !is_translated_name("default.cnp.x") && !is_translated_name("knp.x")
    );
}

#[test]
fn a_policy_without_rules_has_no_translation() {
    let (policy, problems) =
        run(from_cnp(&cnp("idle", json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}}))));
    assert!(policy.is_none() && problems.is_empty());
}

#[test]
fn peers_and_ports_become_one_rule_per_peer_and_protocol() {
    let (policy, problems) = run(from_cnp(&cnp(
        "p",
        json!({"tier": "Admin", "priority": 1, "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}},
               "egress": [{"action": "Pass",
                 "to": [{"pods": {"namespaceSelector": {"matchLabels": {"env": "dev"}}, "podSelector": {}}}, {"networks": ["10.9.0.0/16", "fd00:9::/64"]}],
                 "protocols": [{"tcp": {"destinationPort": {"number": 80}}}, {"tcp": {"destinationPort": {"range": {"start": 8000, "end": 8080}}}}, {"udp": {}}]},
                 {"action": "Accept", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {}}}], "protocols": [{"destinationNamedPort": "http"}]}]}),
    )));
    assert_eq!(problems, Vec::<String>::new());
    let policy = policy.unwrap();
    assert_eq!(policy.spec.selector.as_deref(), Some(r#"app == "web""#));
    assert_eq!(policy.spec.namespace_selector.as_deref(), Some("all()"));
    let pods = json!({"namespaceSelector": r#"env == "dev""#, "selector": "all()"});
    let nets = json!({"nets": ["10.9.0.0/16", "fd00:9::/64"]});
    let with = |peer: &Value, ports: Option<Value>| {
        let mut d = peer.clone();
        if let Some(p) = ports {
            d["ports"] = p;
        }
        d
    };
    assert_eq!(
        rules(&policy, false),
        vec![
            json!({"action": "Pass", "protocol": "TCP", "destination": with(&pods, Some(json!([80, "8000:8080"])))}),
            json!({"action": "Pass", "protocol": "UDP", "destination": pods}),
            json!({"action": "Pass", "protocol": "TCP", "destination": with(&nets, Some(json!([80, "8000:8080"])))}),
            json!({"action": "Pass", "protocol": "UDP", "destination": nets}),
            json!({"action": "Allow", "destination": {"namespaceSelector": "all()", "selector": "all()", "ports": ["http"]}}),
        ]
    );
}

#[test]
fn ingress_ports_go_on_the_destination_and_v1alpha1_ports_default_to_tcp() {
    let (policy, problems) = run(from_anp(&anp(
        "a",
        json!({"priority": 5, "subject": {"namespaces": {"matchLabels": {"env": "prod"}}},
               "ingress": [{"action": "Deny", "from": [{"namespaces": {}}],
                 "ports": [{"portNumber": {"port": 5432}}, {"portRange": {"protocol": "UDP", "start": 50, "end": 60}}, {"namedPort": "pg"}]}]}),
    )));
    assert_eq!(problems, Vec::<String>::new());
    let source = json!({"namespaceSelector": "all()"});
    assert_eq!(
        rules(&policy.unwrap(), true),
        vec![
            json!({"action": "Deny", "source": source, "destination": {"ports": ["pg"]}}),
            json!({"action": "Deny", "protocol": "TCP", "source": source, "destination": {"ports": [5432]}}),
            json!({"action": "Deny", "protocol": "UDP", "source": source, "destination": {"ports": ["50:60"]}}),
        ]
    );
}

#[test]
fn nodes_peers_are_the_selected_nodes_addresses_and_match_nothing_when_none_is_selected() {
    let spec = |labels: Value| {
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
               "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": labels}}]}, {"action": "Accept", "to": [{"nodes": {}}]}]})
    };
    let (policy, _) = run(from_cnp(&cnp("n", spec(json!({"role": "infra"})))));
    assert_eq!(
        rules(&policy.unwrap(), false),
        vec![
            json!({"action": "Deny", "destination": {"nets": ["192.168.0.1/32", "fd00:ff::1/128"]}}),
            json!({"action": "Allow", "destination": {"nets": ["192.168.0.1/32", "192.168.0.2/32", "fd00:ff::1/128"]}}),
        ]
    );
    let (policy, _) = run(from_cnp(&cnp("n", spec(json!({"role": "gpu"})))));
    let egress = rules(&policy.unwrap(), false);
    assert_eq!(egress.len(), 1, "the Deny to no node is gone, not widened: {egress:?}");
    assert_eq!(egress[0]["action"], "Allow");
}

#[test]
fn what_cannot_be_matched_fails_closed_and_is_reported_by_field() {
    let (policy, problems) = run(from_cnp(&cnp(
        "f",
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
               "egress": [{"action": "Accept", "to": [{"domainNames": ["*.example.com"]}]},
                          {"action": "Deny", "to": [{}]},
                          {"action": "Accept", "to": [{"networks": ["10.0.0.0/33"]}]},
                          {"action": "Pass", "to": [{"networks": ["10.0.0.0/8"]}], "protocols": [{"destinationNamedPort": "dns"}]}]}),
    )));
    assert_eq!(
        rules(&policy.unwrap(), false),
        vec![json!({"action": "Deny"}), json!({"action": "Deny"})],
        "Accept rules match nothing; Deny and Pass rules deny everything"
    );
    let fields: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        fields,
        ["spec.egress[0].to[0]", "spec.egress[1].to[0]", "spec.egress[2].to[0]", "spec.egress[3]"],
        "{problems:?}"
    );
    assert!(problems[0].contains("domainNames"));
}

#[test]
fn invalid_objects_are_problems_naming_the_field() {
    let (policy, problems) = run(from_banp(&banp("other", json!({"subject": {"namespaces": {}}}))));
    assert!(policy.is_none());
    assert!(problems[0].starts_with("metadata.name:"), "{problems:?}");

    let (policy, problems) = run(from_banp(&banp(
        "default",
        json!({"subject": {"namespaces": {}}, "ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]}),
    )));
    assert!(problems[0].starts_with("spec.ingress[0].action:"), "{problems:?}");
    assert_eq!(rules(&policy.unwrap(), true)[0]["action"], "Deny", "a baseline Pass fails closed");

    let (policy, problems) = run(from_anp(&anp("a", json!({"priority": 1001, "subject": {}}))));
    assert!(policy.is_none());
    assert!(problems.iter().any(|p| p.starts_with("spec.priority:")), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("spec.subject:")), "{problems:?}");

    let many: Vec<Value> = (0..26).map(|_| json!({"action": "Deny", "from": [{"namespaces": {}}]})).collect();
    let (_, problems) = run(from_cnp(&cnp(
        "m",
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}, "ingress": many}),
    )));
    assert!(problems.iter().any(|p| p.starts_with("spec.ingress:") && p.contains("at most 25")), "{problems:?}");
    let (_, problems) = run(from_cnp(&cnp(
        "r",
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
               "ingress": [{"action": "Deny", "from": [{"namespaces": {}}], "protocols": [{"tcp": {"destinationPort": {"range": {"start": 9, "end": 9}}}}]}]}),
    )));
    assert!(problems.iter().any(|p| p.starts_with("spec.ingress[0].ports[0]:")), "{problems:?}");
}

#[test]
fn the_engine_translates_again_when_nodes_change_and_moves_a_policy_between_tiers() {
    let settings = OperatorSettings::default();
    let mut engine = Engine::new(settings);
    let to_infra = json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
                          "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "infra"}}}]}]});
    engine.apply(Event::Upsert(Object::ClusterNetworkPolicy(cnp("n", to_infra.clone()))));
    let nets =
        |engine: &Engine, name: &str| engine.desired().translated_global_policies.get(name).map(|p| rules(p, false));
    assert_eq!(nets(&engine, "kube-admin.cnp.n"), Some(vec![]), "no node yet: the rule matches nothing");
    engine.take_changes();
    engine.apply(Event::Upsert(Object::Node(node("n1", "192.168.0.1/24").label("role", "infra"))));
    assert!(engine.take_changes().translated_global_policies.contains("kube-admin.cnp.n"));
    assert_eq!(
        nets(&engine, "kube-admin.cnp.n"),
        Some(vec![json!({"action": "Deny", "destination": {"nets": ["192.168.0.1/32"]}})])
    );

    let mut baseline = to_infra;
    baseline["tier"] = json!("Baseline");
    engine.apply(Event::Upsert(Object::ClusterNetworkPolicy(cnp("n", baseline))));
    let changes = engine.take_changes().translated_global_policies;
    assert!(changes.contains("kube-admin.cnp.n") && changes.contains("kube-baseline.cnp.n"));
    assert!(nets(&engine, "kube-admin.cnp.n").is_none());
    assert!(nets(&engine, "kube-baseline.cnp.n").is_some());

    engine.apply(Event::Delete(Kind::ClusterNetworkPolicy, (String::new(), "n".into())));
    assert!(engine.desired().translated_global_policies.is_empty());
}
