#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledRule, IcmpMatch, IcmpProtocol, PortRange};

use super::*;
use crate::dataplane::nft::render::rule_text;

/// Sets of both families: `a`/`a6` and `n`/`n6` (addresses), `p`/`p6` (named ports).
fn sets() -> Vec<SetPlan> {
    let addresses = |name: &str, family| SetPlan { name: name.into(), family, members: SetMembers::Addresses(vec![]) };
    let ports = |name: &str, family| SetPlan { name: name.into(), family, members: SetMembers::AddressPorts(vec![]) };
    vec![
        addresses("a", IpFamily::IPv4),
        addresses("a6", IpFamily::IPv6),
        addresses("n", IpFamily::IPv4),
        addresses("n6", IpFamily::IPv6),
        ports("p", IpFamily::IPv4),
        ports("p6", IpFamily::IPv6),
    ]
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_string()).collect()
}

fn nets(nets: &[&str]) -> Vec<gingham_crds::api::Wire<gingham_crds::api::Net>> {
    nets.iter().map(|n| (*n).into()).collect()
}

fn deny(edit: impl FnOnce(&mut CompiledRule)) -> CompiledRule {
    let mut rule = CompiledRule { action: Action::Deny, ..CompiledRule::default() };
    edit(&mut rule);
    rule
}

fn icmp(protocol: IcmpProtocol, type_: u8) -> Option<IcmpMatch> {
    Some(IcmpMatch { protocol, type_, code: None })
}

/// Each row of the contract's "compiled rules" line, and the fail-closed cases, as the rules they
/// render to.
#[test]
fn each_rule_matches_only_the_families_the_contract_allows() {
    let cases: Vec<(&str, CompiledRule, &[&str])> = vec![
        ("no family-specific condition: one rule for both", deny(|r| r.protocol = Some(6)), &["meta l4proto 6 drop"]),
        (
            "sets: each family against its own set",
            deny(|r| r.source.sets = names(&["a", "a6"])),
            &["ip saddr @s_a drop", "ip6 saddr @s_a6 drop"],
        ),
        (
            "notSets: each family against its own set",
            deny(|r| r.destination.not_sets = names(&["n", "n6"])),
            &["ip daddr != @s_n drop", "ip6 daddr != @s_n6 drop"],
        ),
        (
            "sets of one family only (an older span): the other family never matches",
            deny(|r| r.source.sets = names(&["a"])),
            &["ip saddr @s_a drop"],
        ),
        (
            "notSets of one family only: the other family is not excluded",
            deny(|r| r.source.not_sets = names(&["n6"])),
            &["meta nfproto ipv4 drop", "ip6 saddr != @s_n6 drop"],
        ),
        (
            "namedPortSet and namedPortSet6",
            deny(|r| {
                r.destination.named_port_set = Some("p".into());
                r.destination.named_port_set6 = Some("p6".into());
            }),
            &["ip daddr . meta l4proto . th dport @s_p drop", "ip6 daddr . meta l4proto . th dport @s_p6 drop"],
        ),
        (
            "a named-port set of one family ORed with ranges: ranges alone in the other",
            deny(|r| {
                r.destination.ports = vec![PortRange { first: 80, last: 80 }];
                r.destination.named_port_set = Some("p".into());
            }),
            &[
                "meta nfproto ipv4 th dport { 80 } drop",
                "ip daddr . meta l4proto . th dport @s_p drop",
                "meta nfproto ipv6 th dport { 80 } drop",
            ],
        ),
        (
            "a named-port set alone, of one family: the other never matches",
            deny(|r| r.destination.named_port_set = Some("p".into())),
            &["ip daddr . meta l4proto . th dport @s_p drop"],
        ),
        ("ipVersion 4", deny(|r| r.ip_version = Some(IpFamily::IPv4)), &["meta nfproto ipv4 drop"]),
        (
            "ipVersion 6, with sets of both families",
            deny(|r| {
                r.ip_version = Some(IpFamily::IPv6);
                r.source.sets = names(&["a", "a6"]);
            }),
            &["ip6 saddr @s_a6 drop"],
        ),
        (
            "ICMPv6 only in IPv6",
            deny(|r| {
                r.protocol = Some(58);
                r.icmp = icmp(IcmpProtocol::ICMPv6, 128);
            }),
            &["meta nfproto ipv6 meta l4proto 58 icmpv6 type 128 drop"],
        ),
        (
            "ICMP only in IPv4",
            deny(|r| {
                r.protocol = Some(1);
                r.icmp = icmp(IcmpProtocol::ICMP, 8);
            }),
            &["meta nfproto ipv4 meta l4proto 1 icmp type 8 drop"],
        ),
        (
            "notICMP of ICMPv6, with a code",
            deny(|r| r.not_icmp = Some(IcmpMatch { protocol: IcmpProtocol::ICMPv6, type_: 1, code: Some(4) })),
            &["meta nfproto ipv6 icmpv6 type . icmpv6 code != { 1 . 4 } drop"],
        ),
        ("protocol ICMPv6 alone: IPv6", deny(|r| r.protocol = Some(58)), &["meta nfproto ipv6 meta l4proto 58 drop"]),
        (
            "nets all IPv4: never IPv6",
            deny(|r| r.source.nets = nets(&["10.0.0.0/8"])),
            &["ip saddr { 10.0.0.0/8 } drop"],
        ),
        ("nets all IPv6: never IPv4", deny(|r| r.source.nets = nets(&["fd00::/8"])), &["ip6 saddr { fd00::/8 } drop"]),
        (
            "nets of both families",
            deny(|r| r.destination.nets = nets(&["10.0.0.0/8", "fd00::1/128"])),
            &["ip daddr { 10.0.0.0/8 } drop", "ip6 daddr { fd00::1 } drop"],
        ),
        (
            "notNets of the other family never match",
            deny(|r| r.source.not_nets = nets(&["10.0.0.0/8"])),
            &["ip saddr != { 10.0.0.0/8 } drop", "meta nfproto ipv6 drop"],
        ),
        (
            "nets of IPv6 and notNets of IPv4",
            deny(|r| {
                r.source.nets = nets(&["fd00::/8"]);
                r.source.not_nets = nets(&["10.0.0.0/8", "fd00:1::/32"]);
            }),
            &["ip6 saddr { fd00::/8 } ip6 saddr != { fd00:1::/32 } drop"],
        ),
        (
            "a set the span does not define, in sets: never matches",
            deny(|r| r.source.sets = names(&["gone", "a6"])),
            &[],
        ),
        (
            "a set the span does not define, in notSets: excludes nothing",
            deny(|r| r.source.not_sets = names(&["gone", "n6"])),
            &["meta nfproto ipv4 drop", "ip6 saddr != @s_n6 drop"],
        ),
    ];
    let plans = sets();
    let index = SetIndex::new(&plans, |_| true);
    for (case, rule, expected) in cases {
        let texts: Vec<String> = policy_rules(&tag(), &rule, &index).iter().map(rule_text).collect();
        assert_eq!(texts, expected, "{case}");
    }
}

#[test]
fn a_rule_never_matches_a_family_it_should_not() {
    let plans = sets();
    let index = SetIndex::new(&plans, |_| true);
    let limited = [
        (IpFamily::IPv4, deny(|r| r.ip_version = Some(IpFamily::IPv4))),
        (IpFamily::IPv6, deny(|r| r.icmp = icmp(IcmpProtocol::ICMPv6, 128))),
        (IpFamily::IPv6, deny(|r| r.source.nets = nets(&["fd00::/8"]))),
        (IpFamily::IPv4, deny(|r| r.destination.sets = names(&["a"]))),
    ];
    for (family, rule) in limited {
        for nft in policy_rules(&tag(), &rule, &index) {
            let families: Vec<IpFamily> = nft.matches.iter().filter_map(Match::family).collect();
            assert!(nft.matches.iter().any(Match::fixes_family), "{nft:?} is limited to its family");
            assert!(families.iter().all(|f| *f == family), "{nft:?} is of {family:?} only");
        }
    }
}

#[test]
fn log_and_allow_keep_their_statements_in_both_families() {
    let plans = sets();
    let index = SetIndex::new(&plans, |_| true);
    let allow = CompiledRule {
        action: Action::Allow,
        source: CompiledMatch { sets: names(&["a", "a6"]), ..CompiledMatch::default() },
        ..CompiledRule::default()
    };
    let texts: Vec<String> = policy_rules(&tag(), &allow, &index).iter().map(rule_text).collect();
    assert_eq!(
        texts,
        [
            "ip saddr @s_a meta mark set meta mark | 0x10000 return",
            "ip6 saddr @s_a6 meta mark set meta mark | 0x10000 return"
        ]
    );
    let log = CompiledRule { action: Action::Log, ..CompiledRule::default() };
    let texts: Vec<String> = policy_rules(&tag(), &log, &index).iter().map(rule_text).collect();
    let expected = format!("log prefix \"gingham {} i0: \"", gingham_crds::naming::policy_log_hash("ns/p"));
    assert_eq!(texts, [expected], "one rule, for both families, with the rule's own prefix");
}

/// An empty set the table does not hold (of a family the node has no address of) is taken as the
/// empty set it is: in `sets` that family never matches, in `notSets` it excludes nothing; the
/// other family is as before.
#[test]
fn an_empty_set_left_out_of_the_table_fails_closed_in_its_family_only() {
    let plans = sets();
    let index = SetIndex::new(&plans, |set| set.family == IpFamily::IPv4);
    let cases: Vec<(CompiledRule, &[&str])> = vec![
        (deny(|r| r.source.sets = names(&["a", "a6"])), &["ip saddr @s_a drop"]),
        (deny(|r| r.source.not_sets = names(&["n", "n6"])), &["ip saddr != @s_n drop", "meta nfproto ipv6 drop"]),
        (
            deny(|r| {
                r.destination.named_port_set = Some("p".into());
                r.destination.named_port_set6 = Some("p6".into());
            }),
            &["ip daddr . meta l4proto . th dport @s_p drop"],
        ),
    ];
    for (rule, expected) in cases {
        let texts: Vec<String> = policy_rules(&tag(), &rule, &index).iter().map(rule_text).collect();
        assert_eq!(texts, expected, "{rule:?}");
    }
}

/// Where the rules of these tests sit: rule 0 of ingress of `ns/p`.
fn tag() -> LogTag {
    LogTag::new("ns/p", true, 0)
}
