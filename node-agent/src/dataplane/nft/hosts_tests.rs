#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::Shared;
use gingham_crds::api::felix::ProtoPort;
use gingham_crds::api::hostpolicy::HostEndpointPolicy;
use gingham_crds::api::nodenetwork::{CompiledPolicy, CompiledRule, TierPolicies};
use gingham_crds::api::policy::Action;
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::tier::TierDefaultAction;

use crate::dataplane::fixtures::{endpoint, policy_spec, rules};
use crate::dataplane::nft::model::{Chain, Hook, Match, Ruleset, Statement, Verdict};
use crate::dataplane::nft::render::transaction;

fn deny_all(name: &str) -> Shared<CompiledPolicy> {
    let deny = CompiledRule { action: Action::Deny, ..CompiledRule::default() };
    Shared::new(CompiledPolicy { name: name.into(), ingress: vec![deny.clone()], egress: vec![deny] })
}

fn tier(policy: &str, default_action: TierDefaultAction) -> Vec<TierPolicies> {
    vec![TierPolicies { tier: "default".into(), default_action, policies: vec![policy.into()] }]
}

/// eth0 with a deny-all host policy, a pre-DNAT, an untracked and a forward policy; every other
/// interface through an all-interfaces endpoint with the default-allow profile and no policy.
fn span() -> NodeSpan {
    let pass = TierDefaultAction::Pass;
    NodeSpan {
        policies: ["global/deny-all", "global/pre-dnat", "global/untracked", "global/forward"]
            .into_iter()
            .map(deny_all)
            .collect(),
        host_endpoints: vec![
            HostEndpointPolicy {
                name: "node-a-eth0".into(),
                interface_name: Some("eth0".into()),
                ingress: tier("global/deny-all", TierDefaultAction::Deny),
                egress: tier("global/deny-all", TierDefaultAction::Deny),
                pre_dnat_ingress: tier("global/pre-dnat", pass),
                untracked_ingress: tier("global/untracked", pass),
                untracked_egress: tier("global/untracked", pass),
                forward_egress: tier("global/forward", TierDefaultAction::Deny),
                ..HostEndpointPolicy::default()
            },
            HostEndpointPolicy {
                name: "node-a-auto-hep".into(),
                interface_name: Some("*".into()),
                default_allow: true,
                ..HostEndpointPolicy::default()
            },
        ],
        ..NodeSpan::default()
    }
}

/// The fixture's spec (inbound failsafe: SSH), with BGP as the outbound failsafe.
fn ruleset(span: &NodeSpan) -> Ruleset {
    let mut spec = policy_spec();
    spec.policy.failsafe_outbound = vec![ProtoPort { protocol: "TCP".into(), port: 179, net: None }];
    rules(&spec, span, &[endpoint("web", [10, 0, 0, 5])])
}

fn chain<'a>(rules: &'a Ruleset, name: &str) -> &'a Chain {
    rules.chains.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no chain {name}"))
}

fn jump_at(chain: &Chain, target: &str) -> usize {
    chain
        .rules
        .iter()
        .position(|r| r.statements.last() == Some(&Statement::Verdict(Verdict::Jump(target.into()))))
        .unwrap_or_else(|| panic!("{} does not jump to {target}", chain.name))
}

#[test]
fn golden_host_endpoints_on_every_hook() {
    insta::assert_snapshot!(transaction(&ruleset(&span())));
}

#[test]
fn a_node_without_host_endpoints_gets_no_host_chains() {
    let plain = ruleset(&NodeSpan::default());
    assert!(plain.chains.iter().all(|c| !c.name.starts_with("hep_")));
    assert!(plain.chains.iter().all(|c| c.hook != Some(Hook::Output)));
}

#[test]
fn each_list_is_on_its_hook_after_the_failsafes_and_the_tunnels() {
    let rules = ruleset(&span());
    let cases = [
        ("hep_raw_prerouting", Hook::RawPrerouting, "hep_untracked_in", 22),
        ("hep_raw_output", Hook::RawOutput, "hep_untracked_out", 179),
        ("hep_pre_dnat", Hook::PreDnat, "hep_pre_dnat_in", 22),
        ("input", Hook::Input, "hep_to_host", 22),
        ("hep_output", Hook::Output, "hep_from_host", 179),
        ("forward", Hook::Forward, "hep_forward_out", 0),
    ];
    for (name, hook, dispatch, failsafe) in cases {
        let base = chain(&rules, name);
        assert_eq!(base.hook, Some(hook), "{name}");
        let at = jump_at(base, dispatch);
        let before = &base.rules[..at];
        let opens = |m: &Match| before.iter().any(|r| r.matches.contains(m));
        if name != "forward" {
            let port = |r: &crate::dataplane::nft::model::Rule| {
                r.matches.iter().any(|m| matches!(m, Match::Service { port, .. } if *port == failsafe))
            };
            let open = base.rules.iter().position(port);
            assert!(open.is_some_and(|open| open < at), "{name}: failsafe {failsafe} is open before host policy");
            assert!(opens(&Match::Protocol { negate: false, number: 4 }), "{name}: IP-in-IP passes");
            assert!(before.iter().any(|r| r.matches.iter().any(|m| matches!(m, Match::Service { port: 4789, .. }))));
        }
    }
    let forward = chain(&rules, "forward");
    assert!(
        !forward
            .rules
            .iter()
            .any(|r| r.statements.contains(&Statement::Verdict(Verdict::Jump("hep_forward_in".into())))),
        "no forward ingress policy: no chain"
    );
    assert_eq!(forward.rules[0].matches, [Match::UntrackedAllowed], "untracked packets are accepted first");
}

#[test]
fn named_interfaces_come_first_and_all_interfaces_skips_pods_and_lo() {
    let rules = ruleset(&span());
    let dispatch = chain(&rules, "hep_to_host");
    let text: Vec<String> = dispatch.rules.iter().map(crate::dataplane::nft::render::rule_text).collect();
    assert_eq!(text.len(), 4, "{text:?}");
    assert!(text[0].starts_with("iifname \"eth0\" goto hi_"), "{text:?}");
    assert_eq!(text[1..3], ["iifname \"gh*\" return".to_string(), "iifname \"lo\" return".to_string()]);
    assert_eq!(text[3], "goto ei_allow_all", "the default-allow profile allows what no policy decides");
    // eth0's own traffic: the deny-all tier, then a drop (no allowing profile).
    let Verdict::Goto(eth0) = dispatch.rules[0]
        .statements
        .last()
        .map(|s| match s {
            Statement::Verdict(v) => v.clone(),
            _ => Verdict::Accept,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(chain(&rules, &eth0).rules.last().unwrap().statements, [Statement::Verdict(Verdict::Drop)]);
}

#[test]
fn an_untracked_allow_is_not_tracked_and_marked() {
    let rules = ruleset(&span());
    let raw = chain(&rules, "hep_raw_prerouting");
    let last = raw.rules.last().unwrap();
    assert_eq!(last.matches, [Match::Allowed]);
    assert_eq!(last.statements, [Statement::Notrack, Statement::SetUntrackedMark, Statement::Verdict(Verdict::Accept)]);
    // The untracked list decides nothing by itself: its endpoint chain ends without a verdict.
    let dispatch = chain(&rules, "hep_untracked_in");
    let Some(Statement::Verdict(Verdict::Goto(target))) = dispatch.rules[0].statements.last() else { panic!() };
    assert!(target.starts_with("ui_"), "{target}");
    let end = chain(&rules, target).rules.last().unwrap();
    assert_eq!(end.matches, [Match::Allowed], "its last rule returns on an allow: {end:?}");
}
