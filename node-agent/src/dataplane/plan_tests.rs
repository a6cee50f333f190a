#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::dataplane::fixtures::{NODE, policy_span, policy_spec, remote_blocks};

/// The plan's policy, which a plan built with a span has.
fn policy(plan: &NodePlan) -> &PolicyPlan {
    plan.policy.as_ref().expect("a span was given")
}

/// One bad value each: it is reported with its path, left out, and nothing else changes.
#[test]
fn a_value_that_does_not_decode_is_reported_and_left_out() {
    type Edit = fn(&mut NodeNetworkSpec, &mut NodeSpan, &mut Vec<IPAMBlockSpec>);
    let cases: &[(&str, Edit, &str)] = &[
        ("block", |s, _, _| s.blocks.push("10.0.0.64/99".into()), "spec.blocks[1]"),
        ("pool", |s, _, _| s.pools[0].cidr = "10.0/16".into(), "spec.pools[0].cidr"),
        ("vtep", |s, _, _| s.tunnel.vtep_mac = Some("02:00".into()), "spec.tunnel.vtepMAC"),
        ("remote block", |_, _, b| b[1].node_address = "192.168.1".into(), "IPAMBlock 10.0.1.0/26 of node node-b"),
        ("remote mac", |_, _, b| b[2].vtep_mac = Some("nope".into()), "spec.vtepMAC"),
        ("member", |_, p, _| p.ip_sets[0].members.push("10.0.0.x".into()), "ipset/clients.members[2]"),
        ("set name", |_, p, _| p.ip_sets[0].name = "cli-ents".into(), "ipset/cli-ents.name"),
        (
            "failsafe",
            |s, _, _| s.policy.failsafe_inbound[1].net = Some("x".into()),
            "spec.policy.failsafeInbound[1].net",
        ),
        (
            "net",
            |_, p, _| p.policies[1].egress[1].destination.nets.push("10.1/16".into()),
            "policy/global/audit.egress[1].destination.nets[1]",
        ),
    ];
    let good = NodePlan::build(NODE, &policy_spec(), Some(&policy_span()), &remote_blocks());
    assert!(good.routing_problems.is_empty() && good.policy_problems.is_empty(), "{good:?}");
    for (case, edit, path) in cases {
        let (mut spec, mut span, mut blocks) = (policy_spec(), policy_span(), remote_blocks());
        edit(&mut spec, &mut span, &mut blocks);
        let plan = NodePlan::build(NODE, &spec, Some(&span), &blocks);
        let problems: Vec<&String> = plan.routing_problems.iter().chain(&plan.policy_problems).collect();
        assert!(problems.first().is_some_and(|p| p.contains(path)), "{case}: {problems:?}");
        assert!(problems.iter().all(|p| p.contains("left out") || p.contains("not programmed")), "{case}");
        assert_eq!(plan.blocks, good.blocks, "{case}: the good blocks stay");
        assert!(policy(&plan).failsafe_inbound.len() >= policy(&good).failsafe_inbound.len() - 1, "{case}");
    }
}

/// Without a span the plan has no policy (the dataplane then leaves nftables alone), and the
/// rest of the node's plan is whole.
#[test]
fn without_a_span_there_is_no_policy_and_routing_is_whole() {
    let with = NodePlan::build(NODE, &policy_spec(), Some(&policy_span()), &remote_blocks());
    let without = NodePlan::build(NODE, &policy_spec(), None, &remote_blocks());
    assert_eq!(without.policy, None);
    assert_eq!(NodePlan { policy: None, ..with }, without);
}

#[test]
fn a_remote_block_keeps_what_decoded() {
    let mut blocks = remote_blocks();
    blocks[2].vtep_mac = Some("nope".into());
    blocks[1].node_address = "bad".into();
    let plan = NodePlan::build(NODE, &policy_spec(), None, &blocks);
    let remotes: Vec<(String, Option<Mac>)> = plan.remotes.iter().map(|r| (r.cidr.to_string(), r.vtep_mac)).collect();
    assert_eq!(remotes, [("10.0.2.0/26".to_string(), None)], "node-b has no address to route to; node-c no MAC");
}

/// A policy that needs a value that did not decode is not programmed (its endpoints' traffic is
/// dropped, never allowed); the other policies are.
#[test]
fn policies_fail_closed() {
    type Case<'a> = (&'a str, fn(&mut NodeSpan), &'a [&'a str]);
    let cases: &[Case] = &[
        ("as written", |_| {}, &["default/allow-http", "global/audit"]),
        ("bad member of a set it names", |s| s.ip_sets[0].members.push("x".into()), &["global/audit"]),
        ("bad named-port member", |s| s.ip_sets[1].members.push("10.0.0.6,icmp,1".into()), &["global/audit"]),
        (
            "a set it names has a name nftables cannot take",
            |s| {
                s.ip_sets[0].name = "cli-ents".into();
                s.policies[0].ingress[0].source.sets = vec!["cli-ents".into()];
            },
            &["global/audit"],
        ),
        ("bad not-net", |s| s.policies[1].egress[1].destination.not_nets.push("x".into()), &["default/allow-http"]),
    ];
    for (case, edit, kept) in cases {
        let mut span = policy_span();
        edit(&mut span);
        let plan = NodePlan::build(NODE, &policy_spec(), Some(&span), &[]);
        let names: Vec<&str> = policy(&plan).policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, *kept, "{case}");
        // The value that did not decode, and the policy left out for it.
        let problems = if kept.len() == 2 { 0 } else { 2 };
        assert_eq!(plan.policy_problems.len(), problems, "{case}: {:?}", plan.policy_problems);
    }
}

#[test]
fn set_members_are_decoded_once_in_both_families() {
    let mut span = policy_span();
    let mut clients6 = (*span.ip_sets[0]).clone();
    (clients6.name, clients6.family, clients6.members) =
        ("clients6".into(), gingham_crds::api::IpFamily::IPv6, vec!["fd00::1".into()]);
    span.ip_sets.push(clients6.into());
    let mut policy_v6 = (*span.policies[0]).clone();
    if let Some(rule) = policy_v6.ingress.first_mut() {
        rule.source.sets.push("clients6".into());
    }
    span.policies[0] = policy_v6.into();
    let plan = NodePlan::build(NODE, &policy_spec(), Some(&span), &[]);
    assert!(plan.policy_problems.is_empty(), "{:?}", plan.policy_problems);
    let families: Vec<(&str, IpFamily)> = policy(&plan).sets.iter().map(|s| (s.name.as_str(), s.family)).collect();
    assert_eq!(families, [("clients", IpFamily::IPv4), ("web_http", IpFamily::IPv4), ("clients6", IpFamily::IPv6)]);
    assert_eq!(policy(&plan).policies, span.policies, "the policies as compiled, both families");
    let SetMembers::Addresses(nets) = &policy(&plan).sets[0].members else { panic!("an address set") };
    assert_eq!(nets.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.1.0/26", "10.0.0.9/32"]);
    let SetMembers::AddressPorts(ports) = &policy(&plan).sets[1].members else { panic!("a named-port set") };
    assert_eq!(ports, &[(IpAddr::from(std::net::Ipv4Addr::new(10, 0, 0, 5)), IpProtocol::TCP, 8080)]);
    let SetMembers::Addresses(nets) = &policy(&plan).sets[2].members else { panic!("an address set") };
    assert_eq!(nets.iter().map(ToString::to_string).collect::<Vec<_>>(), ["fd00::1/128"]);
}

#[test]
fn an_ipv6_member_in_an_ipv4_set_fails_closed() {
    let mut span = policy_span();
    span.ip_sets[0].members.push("fd00::1".into());
    let plan = NodePlan::build(NODE, &policy_spec(), Some(&span), &[]);
    assert_eq!(plan.policy_problems.len(), 2, "{:?}", plan.policy_problems);
    assert!(plan.policy_problems[0].contains("is not an IPv4 member"), "{:?}", plan.policy_problems);
    let names: Vec<&str> = policy(&plan).policies.iter().map(|p| p.name.as_str()).collect();
    assert!(!names.contains(&"default/allow-http"), "the policy using the set is not programmed: {names:?}");
}

#[test]
fn an_ipv6_only_spec_plans_its_ipv6_routing() {
    let spec = gingham_crds::api::NodeNetworkSpec {
        address: None,
        address6: Some("fd00:10::2/64".into()),
        blocks: vec!["fd00:100::/122".into()],
        ..policy_spec()
    };
    let plan = NodePlan::build(NODE, &spec, Some(&policy_span()), &[]);
    assert!(plan.routing_problems.is_empty(), "{:?}", plan.routing_problems);
    assert_eq!(plan.address, None);
    assert_eq!(plan.address6, Some("fd00:10::2/64".parse().unwrap()));
    assert_eq!(plan.blocks, ["fd00:100::/122".parse::<ipnet::IpNet>().unwrap()]);
}

/// The policy part keeps both families: failsafes for IPv6 networks, natOutgoing pools of both.
#[test]
fn failsafes_and_nat_pools_of_both_families_are_kept() {
    let mut spec = policy_spec();
    let mut pool6 = spec.pools[0].clone();
    pool6.cidr = "fd00:10::/48".into();
    spec.pools.push(pool6.clone());
    spec.pools.push(gingham_crds::api::nodenetwork::PoolRouting {
        nat_outgoing: false,
        cidr: "fd00:20::/48".into(),
        ..pool6
    });
    spec.policy.failsafe_inbound[0].net = Some("fd00:192::/64".into());
    let plan = NodePlan::build(NODE, &spec, Some(&policy_span()), &[]);
    let nets: Vec<Option<String>> =
        policy(&plan).failsafe_inbound.iter().map(|(_, net)| net.map(|n| n.to_string())).collect();
    assert_eq!(nets, [Some("fd00:192::/64".to_string()), None]);
    let shown = |nets: &[IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(shown(&policy(&plan).nat.pools), ["10.0.0.0/16", "fd00:10::/48", "fd00:20::/48"]);
    assert_eq!(shown(&policy(&plan).nat.nat_outgoing), ["10.0.0.0/16", "fd00:10::/48"]);
}

/// A rule that names a set where its kind cannot serve (nftables would refuse the table) leaves its
/// policy out, in both families.
#[test]
fn a_set_of_the_wrong_kind_fails_closed() {
    type Edit = fn(&mut NodeSpan);
    let cases: &[(&str, Edit)] = &[
        ("named-port set as a selector", |s| s.policies[0].ingress[0].source.sets = vec!["web_http".into()]),
        ("address set as named ports", |s| {
            s.policies[0].ingress[0].destination.named_port_set6 = Some("clients".into());
        }),
    ];
    for (case, edit) in cases {
        let mut span = policy_span();
        edit(&mut span);
        let plan = NodePlan::build(NODE, &policy_spec(), Some(&span), &[]);
        let names: Vec<&str> = policy(&plan).policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["global/audit"], "{case}");
        assert!(plan.policy_problems[0].contains("not of the kind"), "{case}: {:?}", plan.policy_problems);
    }
}

/// The fail-closed rule holds for IPv6 sets: a policy naming an IPv6 set with a member that does
/// not decode, or is IPv4, is left out (both families of it).
#[test]
fn a_bad_member_of_an_ipv6_set_fails_closed() {
    for bad in ["fd00::x", "10.0.0.1"] {
        let mut span = policy_span();
        let mut clients6 = (*span.ip_sets[0]).clone();
        (clients6.name, clients6.family, clients6.members) =
            ("clients6".into(), IpFamily::IPv6, vec!["fd00::1".into(), bad.into()]);
        span.ip_sets.push(clients6.into());
        let mut allow = (*span.policies[0]).clone();
        allow.ingress[0].source.sets.push("clients6".into());
        span.policies[0] = allow.into();
        let plan = NodePlan::build(NODE, &policy_spec(), Some(&span), &[]);
        let names: Vec<&str> = policy(&plan).policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["global/audit"], "{bad}");
        assert!(plan.policy_problems.iter().any(|p| p.contains("set clients6")), "{bad}: {:?}", plan.policy_problems);
    }
}
