//! What this agent does with the dual-stack contract until its IPv6 dataplane exists (issue 15,
//! the agent's step): it programs IPv4 only.
//!
//! - A node without an IPv4 address (`spec.address` absent, IPv6-only) is not supported: its spec
//!   is rejected with a reason in status, and the last good spec stays in force.
//! - IPv6 blocks, IPv6 tunnel blocks, IPv6 IP sets, rules limited to IPv6 (`ipVersion: 6`, ICMPv6)
//!   are left aside, with one log line per process the first time
//!   any is seen. The IPv4 rules and sets are programmed exactly as before.

use std::collections::BTreeSet;
use std::sync::Once;

use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledPolicy, CompiledRule, IcmpProtocol};
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::{IpFamily, NodeNetworkSpec};

static IGNORED: Once = Once::new();

/// Logs, once per process, that IPv6 parts of the spec or span are left aside.
fn note_ignored() {
    IGNORED.call_once(|| {
        tracing::info!(
            "this agent programs IPv4 only for now: the IPv6 blocks, sets and rules of the spec and span are left aside (BIRD runs IPv6 sessions)"
        );
    });
}

/// Why the agent cannot act on a spec at all: the node has no IPv4 address.
pub fn unsupported(spec: &NodeNetworkSpec) -> Option<String> {
    spec.address.is_none().then(|| {
        "the node has no IPv4 address (spec.address): IPv6-only nodes are not supported by this agent yet".to_string()
    })
}

/// Logs once, when the spec carries IPv6 parts, that this agent leaves them aside.
pub fn note_spec(spec: &NodeNetworkSpec) {
    let ipv6 = |cidr: &gingham_crds::api::Wire<gingham_crds::api::Cidr>| {
        cidr.value().is_some_and(|c| c.family() == IpFamily::IPv6)
    };
    if spec.address6.is_some() || spec.blocks.iter().any(ipv6) || !spec.tunnel.blocks6.is_empty() {
        note_ignored();
    }
}

/// The span as this agent programs it: without IPv6 sets, and each policy without its IPv6-only
/// rules and its references to IPv6 sets. Sessions are left as they are (BIRD runs both families).
pub fn ipv4_span(span: &NodeSpan) -> NodeSpan {
    let ipv6_sets: BTreeSet<&str> =
        span.ip_sets.iter().filter(|set| set.family == IpFamily::IPv6).map(|set| set.name.as_str()).collect();
    let mut policies = Vec::with_capacity(span.policies.len());
    let mut changed = false;
    for policy in &span.policies {
        match ipv4_policy(policy, &ipv6_sets) {
            Some(ipv4) => {
                changed = true;
                policies.push(ipv4.into());
            }
            None => policies.push(policy.clone()),
        }
    }
    if !ipv6_sets.is_empty() || changed {
        note_ignored();
    }
    NodeSpan {
        endpoints: span.endpoints.clone(),
        policies,
        ip_sets: span.ip_sets.iter().filter(|set| set.family == IpFamily::IPv4).cloned().collect(),
        bgp_peers: span.bgp_peers.clone(),
    }
}

/// The policy without its IPv6-only rules and IPv6 set references; `None` when it has neither.
fn ipv4_policy(policy: &CompiledPolicy, ipv6_sets: &BTreeSet<&str>) -> Option<CompiledPolicy> {
    let rules = |rules: &[CompiledRule]| -> Vec<CompiledRule> {
        rules.iter().filter(|rule| !ipv6_only(rule)).map(|rule| ipv4_rule(rule, ipv6_sets)).collect()
    };
    let ipv4 =
        CompiledPolicy { name: policy.name.clone(), ingress: rules(&policy.ingress), egress: rules(&policy.egress) };
    (ipv4 != *policy).then_some(ipv4)
}

fn ipv6_only(rule: &CompiledRule) -> bool {
    let icmpv6 = |icmp: &Option<gingham_crds::api::nodenetwork::IcmpMatch>| {
        icmp.as_ref().is_some_and(|icmp| icmp.protocol == IcmpProtocol::ICMPv6)
    };
    rule.ip_version == Some(IpFamily::IPv6) || icmpv6(&rule.icmp) || icmpv6(&rule.not_icmp)
}

fn ipv4_rule(rule: &CompiledRule, ipv6_sets: &BTreeSet<&str>) -> CompiledRule {
    let side = |side: &CompiledMatch| {
        let keep = |names: &[String]| -> Vec<String> {
            names.iter().filter(|name| !ipv6_sets.contains(name.as_str())).cloned().collect()
        };
        CompiledMatch { sets: keep(&side.sets), not_sets: keep(&side.not_sets), named_port_set6: None, ..side.clone() }
    };
    CompiledRule { source: side(&rule.source), destination: side(&rule.destination), ..rule.clone() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use gingham_crds::api::nodenetwork::{IcmpMatch, IpSet};
    use gingham_crds::api::policy::Action;

    use super::*;

    fn set(name: &str, family: IpFamily, members: &[&str]) -> gingham_crds::api::Shared<IpSet> {
        IpSet { name: name.into(), family, members: members.iter().map(|m| (*m).into()).collect(), ..IpSet::default() }
            .into()
    }

    #[test]
    fn the_ipv4_part_of_a_dual_stack_span_is_what_an_ipv4_span_was() {
        let rule = |ip_version, icmp: Option<IcmpProtocol>| CompiledRule {
            action: Action::Allow,
            ip_version,
            icmp: icmp.map(|protocol| IcmpMatch { protocol, type_: 8, code: None }),
            source: CompiledMatch {
                sets: vec!["gs_a".into(), "gs6_a".into()],
                named_port_set: Some("gp_b".into()),
                named_port_set6: Some("gp6_b".into()),
                ..CompiledMatch::default()
            },
            ..CompiledRule::default()
        };
        let span = NodeSpan {
            policies: vec![
                CompiledPolicy {
                    name: "ns/p".into(),
                    ingress: vec![
                        rule(None, None),
                        rule(Some(IpFamily::IPv6), None),
                        rule(None, Some(IcmpProtocol::ICMPv6)),
                        rule(Some(IpFamily::IPv4), Some(IcmpProtocol::ICMP)),
                    ],
                    egress: vec![],
                }
                .into(),
            ],
            ip_sets: vec![set("gs6_a", IpFamily::IPv6, &["fd00::1"]), set("gs_a", IpFamily::IPv4, &["10.0.0.1"])],
            ..NodeSpan::default()
        };
        let ipv4 = ipv4_span(&span);
        assert_eq!(ipv4.ip_sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["gs_a"]);
        let ingress = &ipv4.policies[0].ingress;
        assert_eq!(ingress.len(), 2, "the IPv6 and ICMPv6 rules are left aside");
        assert_eq!(ingress[0].source.sets, ["gs_a"]);
        assert_eq!(
            (ingress[0].source.named_port_set.as_deref(), ingress[0].source.named_port_set6.as_deref()),
            (Some("gp_b"), None)
        );
        assert_eq!(ingress[1].ip_version, Some(IpFamily::IPv4));
        let plain = NodeSpan { ip_sets: vec![set("gs_a", IpFamily::IPv4, &[])], ..NodeSpan::default() };
        assert_eq!(ipv4_span(&plain), plain, "an IPv4 span passes unchanged");
    }

    #[test]
    fn ipv6_only_nodes_are_left_aside() {
        let ipv6_only = NodeNetworkSpec { address6: Some("fd00::1/64".into()), ..NodeNetworkSpec::default() };
        assert!(unsupported(&ipv6_only).unwrap().contains("IPv6-only nodes are not supported"));
        let dual = NodeNetworkSpec { address: Some("10.0.0.1/24".into()), ..ipv6_only };
        assert_eq!(unsupported(&dual), None);
    }
}
