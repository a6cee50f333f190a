#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::nodenetwork::{EndpointPolicy, EndpointToHostAction, NodeNetworkSpec};
use gingham_crds::api::span::NodeSpan;

use super::*;
use crate::dataplane::fixtures::{TUNNEL, endpoint, plan, policy_span, policy_spec, rules};
use crate::dataplane::nft::render::{self, transaction};

fn rendered(spec: &NodeNetworkSpec, span: &NodeSpan, pods: &[&str]) -> String {
    let endpoints: Vec<_> = pods.iter().enumerate().map(|(i, pod)| endpoint(pod, [10, 0, 0, 5 + i as u8])).collect();
    transaction(&rules(spec, span, &endpoints))
}

#[test]
fn golden_empty_node() {
    insta::assert_snapshot!(rendered(&crate::dataplane::fixtures::spec(), &NodeSpan::default(), &[]));
}

#[test]
fn golden_policies_sets_and_failsafes() {
    insta::assert_snapshot!(rendered(&policy_spec(), &policy_span(), &["web", "db", "pending"]));
}

#[test]
fn golden_endpoint_to_host_accept() {
    let mut spec = policy_spec();
    spec.policy.default_endpoint_to_host_action = EndpointToHostAction::Accept;
    spec.policy.failsafe_inbound.clear();
    insta::assert_snapshot!(rendered(&spec, &policy_span(), &["web"]));
}

#[test]
fn rendering_is_deterministic() {
    let render = || rendered(&policy_spec(), &policy_span(), &["web", "db"]);
    assert_eq!(render(), render());
}

#[test]
fn membership_changes_keep_the_structure() {
    let endpoints = [endpoint("web", [10, 0, 0, 5]), endpoint("db", [10, 0, 0, 6]), endpoint("web2", [10, 0, 0, 7])];
    let (spec, span) = (policy_spec(), policy_span());
    let before = rules(&spec, &span, &endpoints[..2]);
    let mut changed = span.clone();
    changed.ip_sets[0].members.push("10.0.3.3".into());
    let web2 = EndpointPolicy { name: "default/web2".into(), ..changed.endpoints[0].clone() };
    changed.endpoints.push(web2);
    let after = rules(&spec, &changed, &endpoints);
    assert_eq!(
        render::fingerprint(&before),
        render::fingerprint(&after),
        "a new pod with known policies and a new member"
    );
    assert_ne!(before.elements(), after.elements());

    let mut new_policy = span.clone();
    new_policy.endpoints[1].ingress = vec!["default/allow-http".into()];
    let restructured = rules(&spec, &new_policy, &endpoints);
    assert_ne!(render::fingerprint(&after), render::fingerprint(&restructured), "a new policy list is structure");
}

#[test]
fn endpoints_without_known_policy_are_left_to_the_default_drop() {
    let endpoints = [endpoint("web", [10, 0, 0, 5]), endpoint("pending", [10, 0, 0, 7])];
    let rules = rules(&policy_spec(), &policy_span(), &endpoints);
    let from = &rules.maps.iter().find(|m| m.name == FROM_ENDPOINT).unwrap().elements;
    assert!(from.contains_key(&endpoints[0].interface));
    assert!(!from.contains_key(&endpoints[1].interface));
    let forward = rules.chains.iter().find(|c| c.name == "forward").unwrap();
    let texts: Vec<String> = forward.rules.iter().map(render::rule_text).collect();
    assert!(texts.contains(&"iifname \"gh*\" meta mark & 0x10000 == 0 drop".to_string()), "{texts:#?}");
    assert!(texts.contains(&"oifname \"gh*\" meta mark & 0x10000 == 0 drop".to_string()), "{texts:#?}");
}

#[test]
fn a_missing_policy_fails_closed() {
    let mut span = policy_span();
    span.endpoints[0].ingress = vec!["default/gone".into()];
    let endpoints = [endpoint("web", [10, 0, 0, 5])];
    let rules = rules(&policy_spec(), &span, &endpoints);
    let to = &rules.maps.iter().find(|m| m.name == TO_ENDPOINT).unwrap().elements;
    let chain = rules.chains.iter().find(|c| Some(&c.name) == to.get(&endpoints[0].interface)).unwrap();
    let texts: Vec<String> = chain.rules.iter().map(render::rule_text).collect();
    assert_eq!(texts[1], "drop comment \"policy default/gone is not in the span\"");
}

#[test]
fn ipv6_nets_never_break_the_ipv4_table() {
    use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledRule};
    let rule = |nets: &[&str], not_nets: &[&str]| CompiledRule {
        action: gingham_crds::api::policy::Action::Allow,
        source: CompiledMatch {
            nets: nets.iter().map(|n| (*n).into()).collect(),
            not_nets: not_nets.iter().map(|n| (*n).into()).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (&["::/0"], &[], &[]),
        (&["::/0", "0.0.0.0/0"], &[], &["ip saddr { 0.0.0.0/0 } meta mark set meta mark | 0x10000 return"]),
        (&[], &["fd00::/8"], &["meta mark set meta mark | 0x10000 return"]),
    ];
    for (nets, not_nets, expected) in cases {
        let texts: Vec<String> = policy_rules("p", &rule(nets, not_nets)).iter().map(render::rule_text).collect();
        assert_eq!(texts, *expected, "{nets:?} {not_nets:?}");
    }
}

#[test]
fn sets_a_rule_names_but_the_span_lacks_are_created_empty() {
    let mut span = policy_span();
    span.ip_sets.clear();
    let endpoints = [endpoint("web", [10, 0, 0, 5])];
    let rules = rules(&policy_spec(), &span, &endpoints);
    let sets: Vec<(&str, SetType, usize)> =
        rules.sets.iter().map(|s| (s.name.as_str(), s.kind, s.elements.len())).collect();
    assert_eq!(
        sets,
        vec![
            (ALL_POOLS, SetType::Addresses, 1),
            (NAT_POOLS, SetType::Addresses, 1),
            ("s_clients", SetType::Addresses, 0),
            ("s_web_http", SetType::AddressPorts, 0)
        ]
    );
}

/// A compiled endpoint policy is dispatched to the pod's interface only when it was compiled for
/// that Pod: a predecessor's (same name, another UID) is left out, so the pod's traffic is dropped
/// until its own policy arrives.
#[test]
fn an_endpoint_policy_applies_only_to_the_pod_it_was_compiled_for() {
    let cases: [(&str, Option<&str>, Option<&str>, bool); 5] = [
        ("same uid", Some("u1"), Some("u1"), true),
        ("a predecessor's policy", Some("u1"), Some("u2"), false),
        ("the runtime passed no uid", Some("u1"), None, true),
        ("an operator that sends no uid", None, Some("u2"), true),
        ("no endpoint yet: compiled ahead of ADD", Some("u1"), None, true),
    ];
    let interface = gingham_crds::naming::endpoint_interface_name("default", "web");
    for (case, compiled, local, dispatched_here) in cases {
        let mut span = policy_span();
        span.endpoints[0].uid = compiled.map(str::to_string);
        let mut web = endpoint("web", [10, 0, 0, 5]);
        web.uid = local.map(str::to_string);
        let endpoints = if case.starts_with("no endpoint") { vec![] } else { vec![web] };
        let plan = plan(&policy_spec(), &span);
        let (view, policy) = (
            NodeView { plan: &plan, endpoints: &endpoints, tunnel_address: TUNNEL, tunnel_address6: None },
            plan.policy.as_ref().unwrap(),
        );
        for map in &ruleset(&view, policy).maps {
            assert_eq!(map.elements.contains_key(&interface), dispatched_here, "{case}: {}", map.name);
        }
        assert_eq!(dispatched(&view, policy).any(|e| e.name == "default/web"), dispatched_here, "{case}");
    }
}
