#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, CompiledRule, EndpointPolicy, EndpointToHostAction, IcmpMatch, IcmpProtocol, IpSet,
    IpSetKind, NodeNetworkSpec, TierPolicies,
};
use gingham_crds::api::policy::Action;
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
    new_policy.endpoints[1].ingress = vec![TierPolicies::default_tier(["default/allow-http"])];
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
    span.endpoints[0].ingress = vec![TierPolicies::default_tier(["default/gone"])];
    let endpoints = [endpoint("web", [10, 0, 0, 5])];
    let rules = rules(&policy_spec(), &span, &endpoints);
    let to = &rules.maps.iter().find(|m| m.name == TO_ENDPOINT).unwrap().elements;
    let chain = rules.chains.iter().find(|c| Some(&c.name) == to.get(&endpoints[0].interface)).unwrap();
    let texts: Vec<String> = tier_chain_of(&rules, chain).rules.iter().map(render::rule_text).collect();
    assert_eq!(texts[1], "drop comment \"policy default/gone is not in the span\"");
}

/// The chain of the first tier an endpoint chain jumps to.
fn tier_chain_of<'a>(rules: &'a Ruleset, endpoint_chain: &Chain) -> &'a Chain {
    let tier = endpoint_chain.rules.iter().find_map(|rule| match &rule.statements[..] {
        [Statement::Verdict(Verdict::Jump(tier))] => Some(tier),
        _ => None,
    });
    rules.chains.iter().find(|c| Some(&c.name) == tier).unwrap()
}

#[test]
fn rules_naming_sets_the_span_lacks_never_match_and_no_set_is_invented() {
    let mut span = policy_span();
    span.ip_sets.clear();
    let endpoints = [endpoint("web", [10, 0, 0, 5])];
    let rules = rules(&policy_spec(), &span, &endpoints);
    let sets: Vec<(&str, IpFamily, SetType, usize)> =
        rules.sets.iter().map(|s| (s.name.as_str(), s.family, s.kind, s.elements.len())).collect();
    assert_eq!(
        sets,
        vec![
            (ALL_POOLS, IpFamily::IPv4, SetType::Addresses, 1),
            (NAT_POOLS, IpFamily::IPv4, SetType::Addresses, 1),
            (ALL_POOLS6, IpFamily::IPv6, SetType::Addresses, 0),
            (NAT_POOLS6, IpFamily::IPv6, SetType::Addresses, 0),
        ]
    );
    let http = rules.chains.iter().find(|c| c.name.starts_with("pi_default_allow_http")).unwrap();
    let texts: Vec<String> = http.rules.iter().map(render::rule_text).collect();
    assert_eq!(
        texts,
        ["meta nfproto ipv4 meta l4proto 1 icmp type 8 meta mark set meta mark | 0x10000 return"],
        "the rules from the missing `clients` set are gone, the ping rule stays"
    );
}

/// A node with addresses of both families: pools of both with natOutgoing, a failsafe for an IPv6
/// network, and a policy whose selectors name the sets of both families.
fn dual_stack_spec() -> NodeNetworkSpec {
    let mut spec = policy_spec();
    spec.address6 = Some("fd00:192::2/64".into());
    spec.blocks.push("fd00:10::/122".into());
    let mut pool6 = spec.pools[0].clone();
    (pool6.name, pool6.cidr) = ("pool6".into(), "fd00:10::/48".into());
    spec.pools.push(pool6);
    let mut failsafe6 = spec.policy.failsafe_inbound[0].clone();
    failsafe6.net = Some("fd00:192::/64".into());
    spec.policy.failsafe_inbound.push(failsafe6);
    spec
}

fn set(name: &str, family: IpFamily, kind: IpSetKind, members: &[&str]) -> gingham_crds::api::Shared<IpSet> {
    IpSet { name: name.into(), family, kind, members: members.iter().map(|m| (*m).into()).collect() }.into()
}

/// The operator's shape of a dual-stack span: each selector is a set per family, each named port
/// too; one ICMPv6 rule, one IPv6-only deny, an IPv4 ping rule.
fn dual_stack_span() -> NodeSpan {
    let (v4, v6) = (IpFamily::IPv4, IpFamily::IPv6);
    let ip_sets = vec![
        set("gs_clients", v4, IpSetKind::Addresses, &["10.0.0.9", "10.0.1.0/26"]),
        set("gs6_clients", v6, IpSetKind::Addresses, &["fd00:10::9", "fd00:10:0:1::/64"]),
        set("gp_http", v4, IpSetKind::AddressPorts, &["10.0.0.5,TCP,8080"]),
        set("gp6_http", v6, IpSetKind::AddressPorts, &["fd00:10::5,TCP,8080"]),
    ];
    let http = CompiledRule {
        action: Action::Allow,
        protocol: Some(6),
        source: CompiledMatch { sets: vec!["gs_clients".into(), "gs6_clients".into()], ..Default::default() },
        destination: CompiledMatch {
            named_port_set: Some("gp_http".into()),
            named_port_set6: Some("gp6_http".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let icmp = |protocol, type_| Some(IcmpMatch { protocol, type_, code: None });
    let ping6 = CompiledRule {
        action: Action::Allow,
        protocol: Some(58),
        icmp: icmp(IcmpProtocol::ICMPv6, 128),
        ..Default::default()
    };
    let ping = CompiledRule {
        action: Action::Allow,
        protocol: Some(1),
        icmp: icmp(IcmpProtocol::ICMP, 8),
        ..Default::default()
    };
    let deny6 = CompiledRule {
        action: Action::Deny,
        ip_version: Some(v6),
        destination: CompiledMatch {
            nets: vec!["fd00:dead::/32".into()],
            not_nets: vec!["10.0.0.0/8".into(), "fd00:dead:1::/48".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let policies = vec![
        CompiledPolicy { name: "default/allow-http".into(), ingress: vec![http, ping6, ping], egress: vec![] }.into(),
        CompiledPolicy { name: "global/no-dead".into(), ingress: vec![], egress: vec![deny6] }.into(),
    ];
    let endpoints = vec![EndpointPolicy {
        name: "default/web".into(),
        ingress: vec![TierPolicies::default_tier(["default/allow-http"])],
        egress: vec![TierPolicies::default_tier(["global/no-dead"])],
        ..EndpointPolicy::default()
    }];
    NodeSpan { endpoints, policies, ip_sets, ..NodeSpan::default() }
}

#[test]
fn golden_dual_stack_policy() {
    insta::assert_snapshot!(rendered(&dual_stack_spec(), &dual_stack_span(), &["web"]));
}

/// An IPv6-only node: no IPv4 address, IPv6 blocks and pool; the operator still sends both sets
/// of each selector (the IPv4 ones empty).
#[test]
fn golden_ipv6_only_node() {
    let mut spec = dual_stack_spec();
    spec.address = None;
    spec.blocks.retain(|b| b.as_str().contains(':'));
    spec.pools.retain(|p| p.cidr.as_str().contains(':'));
    let mut span = dual_stack_span();
    for set in &mut span.ip_sets {
        if set.family == IpFamily::IPv4 {
            let mut emptied = (**set).clone();
            emptied.members.clear();
            *set = emptied.into();
        }
    }
    insta::assert_snapshot!(rendered(&spec, &span, &["web"]));
}

/// On an IPv4-only node the operator's empty IPv6 sets are not programmed, and the IPv4 rules are
/// exactly those of a table that holds them.
#[test]
fn empty_sets_of_a_family_the_node_has_no_address_of_are_not_programmed() {
    let mut span = dual_stack_span();
    for set in &mut span.ip_sets {
        if set.family == IpFamily::IPv6 {
            let mut emptied = (**set).clone();
            emptied.members.clear();
            *set = emptied.into();
        }
    }
    let web = [endpoint("web", [10, 0, 0, 5])];
    let ipv4_only = rules(&policy_spec(), &span, &web);
    let both = rules(&dual_stack_spec(), &span, &web);
    let names = |rules: &Ruleset| rules.sets.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ipv4_only), ["s_gs_clients", "s_gp_http", ALL_POOLS, NAT_POOLS, ALL_POOLS6, NAT_POOLS6]);
    assert_eq!(names(&both).len(), names(&ipv4_only).len() + 2, "a dual-stack node holds them");
    let ipv4_rules = |rules: &Ruleset| -> Vec<String> {
        let chains = rules.chains.iter().filter(|c| c.name.starts_with("p"));
        let texts = chains.flat_map(|c| c.rules.iter().map(render::rule_text));
        texts.filter(|t| !t.contains("ip6 ") && !t.contains("ipv6")).collect()
    };
    assert_eq!(ipv4_rules(&ipv4_only), ipv4_rules(&both));
    let http = ipv4_only.chains.iter().find(|c| c.name.starts_with("pi_default_allow_http")).unwrap();
    assert!(
        http.rules.iter().map(render::rule_text).all(|t| !t.contains("s_gs6") && !t.contains("s_gp6")),
        "no rule names a set the table does not hold"
    );
}

/// A pod selected by a policy is isolated in both families at once: its endpoint chain ends in a
/// drop with no family in it, and the forward chain's drop of pods without policy has none either.
#[test]
fn isolation_is_family_agnostic() {
    let rules = rules(&dual_stack_spec(), &dual_stack_span(), &[endpoint("web", [10, 0, 0, 5])]);
    let to = &rules.maps.iter().find(|m| m.name == TO_ENDPOINT).unwrap().elements;
    let web = gingham_crds::naming::endpoint_interface_name("default", "web");
    let chain = rules.chains.iter().find(|c| Some(&c.name) == to.get(&web)).unwrap();
    let last = tier_chain_of(&rules, chain).rules.last().unwrap();
    assert_eq!(render::rule_text(last), "drop comment \"tier default default action\"");
    let forward = rules.chains.iter().find(|c| c.name == "forward").unwrap();
    let drops = forward.rules.iter().filter(|r| r.statements == [Statement::Verdict(Verdict::Drop)]);
    for drop in drops {
        assert!(drop.matches.iter().all(|m| m.family().is_none()), "{drop:?}");
    }
}

/// Neighbour discovery and MLD pass before any policy, from pods to the node and through the
/// forward chain, whatever the endpoint-to-host action.
#[test]
fn neighbour_discovery_is_never_dropped_by_a_default_deny() {
    for action in [EndpointToHostAction::Drop, EndpointToHostAction::Return, EndpointToHostAction::Accept] {
        let mut spec = dual_stack_spec();
        spec.policy.default_endpoint_to_host_action = action;
        let rules = rules(&spec, &dual_stack_span(), &[endpoint("web", [10, 0, 0, 5])]);
        let ndp = "meta nfproto ipv6 icmpv6 type { 130, 131, 132, 133, 134, 135, 136, 143 } accept";
        for chain in ["forward", "endpoint_to_host"] {
            let chain = rules.chains.iter().find(|c| c.name == chain).unwrap();
            let texts: Vec<String> = chain.rules.iter().map(render::rule_text).collect();
            let at = texts.iter().position(|t| t == ndp).unwrap_or_else(|| panic!("{action:?}: {texts:#?}"));
            let first_drop = texts.iter().position(|t| t.ends_with("drop")).unwrap();
            assert!(at < first_drop, "{action:?}: {texts:#?}");
        }
    }
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
