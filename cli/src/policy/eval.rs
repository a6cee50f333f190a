//! Evaluating one packet against one node's compiled policy (its span, as the stream sends it), rule by
//! rule, with the semantics the agent's nftables ruleset gives it
//! (node-agent/src/dataplane/nft/build.rs): an endpoint without compiled policy is dropped; an
//! empty list allows; otherwise tier by tier, policies in order, rules in order: the first Allow
//! allows, Deny drops, Log goes on, Pass skips the rest of the tier; a tier none of whose policies
//! decides ends with its default action (Deny drops, Pass goes on), and past the last tier the
//! packet is allowed. A condition on a port never matches a portless packet
//! (ICMP), nor does an ICMP condition, negated or not, match a non-ICMP packet, as in nftables.
//! Families: a rule with `ipVersion` matches packets of that family only, an ICMP condition those
//! of its ICMP's family, and a packet meets only the sets of its own family (each selector names
//! an IPv4 and an IPv6 set).

use std::net::IpAddr;

use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledRule, IpSet, PortRange, TierPolicies};
use gingham_crds::api::policy::Action;
use gingham_crds::api::protocol::IpProtocol;
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::tier::TierDefaultAction;
use gingham_crds::api::value::{IpFamily, IpSetMember, Net, SetMember, Wire};
use serde::Serialize;

/// The packet asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Packet {
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port (TCP, UDP, SCTP).
    pub port: Option<u16>,
    /// ICMP type and code (ICMP).
    pub icmp: Option<(u8, u8)>,
}

/// Which list of an endpoint is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Traffic leaving the endpoint.
    Egress,
    /// Traffic entering the endpoint.
    Ingress,
}

/// One rule (or policy end) looked at, in evaluation order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Its position in the endpoint's list (1-based: the evaluation order).
    pub position: usize,
    /// The compiled policy's name (`namespace/name` or `global/name`).
    pub policy: String,
    /// The rule's index in the policy's list for this direction; none for "no rule matched".
    pub rule: Option<usize>,
    /// The rule's action.
    pub action: Option<Action>,
    /// Whether the rule matched.
    pub matched: bool,
    /// Why it did not match, or what its match did.
    pub why: String,
}

/// The verdict of one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideVerdict {
    /// Whether the side lets the packet through.
    pub allowed: bool,
    /// Every rule looked at, in order.
    pub steps: Vec<Step>,
    /// The verdict in a sentence.
    pub reason: String,
}

impl SideVerdict {
    fn end(allowed: bool, steps: Vec<Step>, reason: impl Into<String>) -> Self {
        Self { allowed, steps, reason: reason.into() }
    }
}

/// Evaluates `packet` against `endpoint`'s `direction` list in a node's span (its compiled policy).
pub fn evaluate(policy: &NodeSpan, endpoint: &str, direction: Direction, packet: &Packet) -> SideVerdict {
    let Some(entry) = policy.endpoints.iter().find(|e| e.name == endpoint) else {
        let reason = "no compiled policy for the endpoint on its node: the agent drops its traffic until the operator compiles it";
        return SideVerdict::end(false, Vec::new(), reason);
    };
    let list = match direction {
        Direction::Egress => &entry.egress,
        Direction::Ingress => &entry.ingress,
    };
    if list.is_empty() {
        return SideVerdict::end(true, Vec::new(), "no policy selects the endpoint in this direction: allowed");
    }
    let mut steps = Vec::new();
    let mut position = 0;
    for tier in list {
        match evaluate_tier(policy, tier, direction, packet, &mut position, &mut steps) {
            TierOutcome::Decided(allowed, reason) => return SideVerdict::end(allowed, steps, reason),
            TierOutcome::Passed => {}
            TierOutcome::Undecided if tier.default_action == TierDefaultAction::Pass => {}
            TierOutcome::Undecided => {
                let reason = format!("no policy of tier {} decided: dropped by the tier's default action", tier.tier);
                return SideVerdict::end(false, steps, reason);
            }
        }
    }
    SideVerdict::end(true, steps, "every tier passed it on: allowed past the last tier")
}

/// How one tier ended.
enum TierOutcome {
    /// A policy allowed (`true`) or denied or dropped (`false`) the packet, for this reason.
    Decided(bool, String),
    /// A policy passed it to the next tier.
    Passed,
    /// No policy decided: the tier's default action applies.
    Undecided,
}

/// Evaluates one tier's policies in order, recording each rule looked at.
fn evaluate_tier(
    policy: &NodeSpan,
    tier: &TierPolicies,
    direction: Direction,
    packet: &Packet,
    position: &mut usize,
    steps: &mut Vec<Step>,
) -> TierOutcome {
    for name in &tier.policies {
        *position += 1;
        let Some(compiled) = policy.policies.iter().find(|p| p.name == *name) else {
            return TierOutcome::Decided(false, format!("policy {name} is not in the node's span: dropped"));
        };
        let rules = match direction {
            Direction::Egress => &compiled.egress,
            Direction::Ingress => &compiled.ingress,
        };
        for (rule_index, rule) in rules.iter().enumerate() {
            let step = |matched, why: String| Step {
                position: *position,
                policy: name.clone(),
                rule: Some(rule_index),
                action: Some(rule.action),
                matched,
                why,
            };
            match rule_matches(rule, packet, &policy.ip_sets) {
                Err(why) => steps.push(step(false, why)),
                Ok(()) => match rule.action {
                    Action::Log => steps.push(step(true, "logged; evaluation goes on".into())),
                    Action::Allow => {
                        steps.push(step(true, "allowed".into()));
                        return TierOutcome::Decided(true, format!("allowed by {name} rule {rule_index}"));
                    }
                    Action::Pass => {
                        steps.push(step(true, format!("passed: the rest of tier {} is skipped", tier.tier)));
                        return TierOutcome::Passed;
                    }
                    Action::Deny => {
                        steps.push(step(true, "denied".into()));
                        return TierOutcome::Decided(false, format!("denied by {name} rule {rule_index}"));
                    }
                },
            }
        }
        let why = "no rule matched: on to the next policy".to_string();
        steps.push(Step { position: *position, policy: name.clone(), rule: None, action: None, matched: false, why });
    }
    TierOutcome::Undecided
}

/// The protocol's name from the one protocol table, or its number.
fn protocol_name(number: u8) -> String {
    IpProtocol::from_number(number)
        .and_then(IpProtocol::name)
        .map_or_else(|| format!("protocol {number}"), str::to_string)
}

/// Whether a rule matches, or the first condition that fails.
fn rule_matches(rule: &CompiledRule, packet: &Packet, sets: &[gingham_crds::api::Shared<IpSet>]) -> Result<(), String> {
    let proto = protocol_name(packet.protocol);
    let family = IpFamily::of(packet.source);
    if let Some(wanted) = rule.ip_version.filter(|version| *version != family) {
        return Err(format!("the rule is for {wanted} only (ipVersion), the packet is {family}"));
    }
    if let Some(wanted) = rule.protocol.filter(|n| *n != packet.protocol) {
        return Err(format!("protocol is {}, the packet's {proto}", protocol_name(wanted)));
    }
    if rule.not_protocol == Some(packet.protocol) {
        return Err(format!("notProtocol excludes {proto}"));
    }
    for (negate, icmp) in [(false, &rule.icmp), (true, &rule.not_icmp)] {
        let Some(icmp) = icmp else { continue };
        let Some((type_, code)) = packet.icmp else {
            return Err(format!("an ICMP condition never matches {proto}"));
        };
        if icmp.protocol.family() != family {
            return Err(format!("an {:?} condition never matches an {family} packet", icmp.protocol));
        }
        let same = icmp.type_ == type_ && icmp.code.is_none_or(|c| c == code);
        if same == negate {
            let verb = if negate { "notICMP excludes" } else { "ICMP condition wants type" };
            return Err(format!(
                "{verb} {}{} (the packet's is {type_}/{code})",
                icmp.type_,
                icmp.code.map(|c| format!("/{c}")).unwrap_or_default()
            ));
        }
    }
    side_matches("source", &rule.source, packet.source, None, packet.protocol, sets)?;
    side_matches("destination", &rule.destination, packet.destination, packet.port, packet.protocol, sets)
}

/// Whether `address` is in one of `nets` (values that did not decode match nothing; the agent
/// leaves them out too).
fn in_nets(nets: &[Wire<Net>], address: IpAddr) -> bool {
    nets.iter().filter_map(Wire::value).any(|net| net.0.contains(&address))
}

/// Whether `address` is one of a set's address members.
fn in_members(members: &[Wire<IpSetMember>], address: IpAddr) -> bool {
    members
        .iter()
        .filter_map(Wire::value)
        .any(|member| matches!(member, IpSetMember::Address(net) if net.0.contains(&address)))
}

fn texts<T>(values: &[Wire<T>]) -> String {
    values.iter().map(Wire::as_str).collect::<Vec<_>>().join(", ")
}

fn set<'a>(sets: &'a [gingham_crds::api::Shared<IpSet>], name: &str) -> Option<&'a IpSet> {
    sets.iter().find(|s| s.name == name).map(|s| &**s)
}

fn in_set(sets: &[gingham_crds::api::Shared<IpSet>], name: &str, address: IpAddr) -> bool {
    set(sets, name).is_some_and(|s| in_members(&s.members, address))
}

/// Whether set `name` is of `family` (a missing set counts as one: the address is in none).
fn of_family(sets: &[gingham_crds::api::Shared<IpSet>], name: &str, family: IpFamily) -> bool {
    set(sets, name).is_none_or(|s| s.family == family)
}

fn in_ranges(ranges: &[PortRange], port: u16) -> bool {
    ranges.iter().any(|r| r.first <= port && port <= r.last)
}

/// One side's conditions. `port` is the side's port: the destination port, or none for the
/// source (an ephemeral port the question does not name).
fn side_matches(
    which: &str,
    matched: &CompiledMatch,
    address: IpAddr,
    port: Option<u16>,
    protocol: u8,
    sets: &[gingham_crds::api::Shared<IpSet>],
) -> Result<(), String> {
    if !matched.nets.is_empty() && !in_nets(&matched.nets, address) {
        return Err(format!("{which} {address} is in none of nets {}", texts(&matched.nets)));
    }
    if in_nets(&matched.not_nets, address) {
        return Err(format!("{which} {address} is in notNets {}", texts(&matched.not_nets)));
    }
    let family = IpFamily::of(address);
    let mine = |name: &&String| of_family(sets, name, family);
    if let Some(name) = matched.sets.iter().filter(mine).find(|name| !in_set(sets, name, address)) {
        return Err(format!("{which} {address} is not in set {name} (the rule's selector does not select it)"));
    }
    if let Some(name) = matched.not_sets.iter().filter(mine).find(|name| in_set(sets, name, address)) {
        return Err(format!("{which} {address} is in set {name}, which the rule excludes"));
    }
    let named_port_set = match family {
        IpFamily::IPv4 => matched.named_port_set.as_deref(),
        IpFamily::IPv6 => matched.named_port_set6.as_deref(),
    };
    let port_conditions = !matched.ports.is_empty() || named_port_set.is_some() || !matched.not_ports.is_empty();
    if !port_conditions {
        return Ok(());
    }
    let Some(port) = port else {
        let what = if which == "source" { "a source port (the question names none)" } else { "a portless packet" };
        return Err(format!("a {which} port condition never matches {what}"));
    };
    if in_ranges(&matched.not_ports, port) {
        return Err(format!("{which} port {port} is in notPorts"));
    }
    if matched.ports.is_empty() && named_port_set.is_none() {
        return Ok(());
    }
    let triple =
        IpProtocol::from_number(protocol).map(|proto| IpSetMember::Port(SetMember { addr: address, proto, port }));
    let named = named_port_set
        .and_then(|name| set(sets, name))
        .is_some_and(|s| s.members.iter().filter_map(Wire::value).any(|member| Some(*member) == triple));
    if in_ranges(&matched.ports, port) || named {
        return Ok(());
    }
    Err(format!("{which} port {port} is not among the rule's ports"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gingham_crds::api::nodenetwork::{CompiledPolicy, EndpointPolicy, IcmpMatch, IpSetKind};

    use super::*;

    fn rule(action: Action, edit: impl FnOnce(&mut CompiledRule)) -> CompiledRule {
        let mut rule = CompiledRule { action, ..CompiledRule::default() };
        edit(&mut rule);
        rule
    }

    /// web (10.0.0.2) is selected in ingress by `global/first` then `prod/second`.
    fn spec() -> NodeSpan {
        let set = |name: &str, family, kind, members: &[&str]| IpSet {
            name: name.into(),
            family,
            kind,
            members: members.iter().map(|m| (*m).into()).collect(),
        };
        let clients = set("clients", IpFamily::IPv4, IpSetKind::Addresses, &["10.0.0.3"]);
        let clients6 = set("clients6", IpFamily::IPv6, IpSetKind::Addresses, &["fd00::3"]);
        let http = set("http", IpFamily::IPv4, IpSetKind::AddressPorts, &["10.0.0.2,tcp,8080"]);
        let http6 = set("http6", IpFamily::IPv6, IpSetKind::AddressPorts, &["fd00::2,tcp,8080"]);
        let first = CompiledPolicy {
            name: "global/first".into(),
            ingress: vec![
                rule(Action::Log, |_| {}),
                rule(Action::Deny, |r| r.source.nets = vec!["10.0.0.9/32".into()]),
                rule(Action::Pass, |r| {
                    r.protocol = Some(6);
                    r.source.sets = vec!["clients".into(), "clients6".into()];
                    r.destination.named_port_set = Some("http".into());
                    r.destination.named_port_set6 = Some("http6".into());
                }),
            ],
            egress: Vec::new(),
        };
        let second = CompiledPolicy {
            name: "prod/second".into(),
            ingress: vec![
                rule(Action::Allow, |r| r.icmp = Some(IcmpMatch { type_: 8, ..IcmpMatch::default() })),
                rule(Action::Deny, |r| r.ip_version = Some(IpFamily::IPv6)),
                rule(Action::Allow, |r| {
                    r.destination.ports = vec![PortRange { first: 80, last: 80 }];
                    r.source.not_nets = vec!["10.0.0.4/32".into()];
                }),
            ],
            egress: Vec::new(),
        };
        NodeSpan {
            endpoints: vec![EndpointPolicy {
                name: "prod/web".into(),
                ingress: vec![TierPolicies::default_tier(["global/first", "prod/second"])],
                ..EndpointPolicy::default()
            }],
            policies: vec![first.into(), second.into()],
            ip_sets: vec![clients.into(), clients6.into(), http.into(), http6.into()],
            ..NodeSpan::default()
        }
    }

    fn packet(source: &str, port: Option<u16>) -> Packet {
        let destination = if source.contains(':') { "fd00::2" } else { "10.0.0.2" };
        Packet {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            protocol: if port.is_some() { 6 } else { 1 },
            port,
            icmp: port.is_none().then_some((8, 0)),
        }
    }

    /// Source, port (ICMP when none), allowed, reason, and one step's explanation.
    type Case = (&'static str, Option<u16>, bool, &'static str, Option<&'static str>);

    #[test]
    fn rules_are_evaluated_in_order_with_the_agents_semantics() {
        let cases: [Case; 9] = [
            ("10.0.0.9", Some(80), false, "denied by global/first rule 1", None),
            ("10.0.0.3", Some(8080), true, "every tier passed it on: allowed past the last tier", None),
            (
                "10.0.0.5",
                Some(8080),
                false,
                "no policy of tier default decided: dropped by the tier's default action",
                Some("destination port 8080 is not among the rule's ports"),
            ),
            (
                "10.0.0.5",
                Some(80),
                true,
                "allowed by prod/second rule 2",
                Some("source 10.0.0.5 is not in set clients (the rule's selector does not select it)"),
            ),
            (
                "10.0.0.4",
                Some(80),
                false,
                "no policy of tier default decided: dropped by the tier's default action",
                Some("source 10.0.0.4 is in notNets 10.0.0.4/32"),
            ),
            ("10.0.0.4", None, true, "allowed by prod/second rule 0", Some("protocol is TCP, the packet's ICMP")),
            (
                "fd00::3",
                Some(8080),
                true,
                "every tier passed it on: allowed past the last tier",
                Some("source fd00::3 is in none of nets 10.0.0.9/32"),
            ),
            (
                "fd00::5",
                Some(80),
                false,
                "denied by prod/second rule 1",
                Some("source fd00::5 is not in set clients6 (the rule's selector does not select it)"),
            ),
            (
                "10.0.0.5",
                Some(80),
                true,
                "allowed by prod/second rule 2",
                Some("the rule is for IPv6 only (ipVersion), the packet is IPv4"),
            ),
        ];
        for (source, port, allowed, reason, some_why) in cases {
            let verdict = evaluate(&spec(), "prod/web", Direction::Ingress, &packet(source, port));
            assert_eq!((verdict.allowed, verdict.reason.as_str()), (allowed, reason), "{source} {port:?}");
            assert_eq!(verdict.steps[0].why, "logged; evaluation goes on");
            if let Some(why) = some_why {
                assert!(verdict.steps.iter().any(|s| s.why == why), "{source} {port:?}: {:#?}", verdict.steps);
            }
        }
    }

    #[test]
    fn unknown_endpoints_are_dropped_and_empty_lists_allow() {
        let egress = evaluate(&spec(), "prod/web", Direction::Egress, &packet("10.0.0.2", None));
        assert_eq!((egress.allowed, egress.steps.len()), (true, 0));
        let unknown = evaluate(&spec(), "prod/db", Direction::Ingress, &packet("10.0.0.3", Some(80)));
        assert!(!unknown.allowed && unknown.reason.starts_with("no compiled policy"), "{unknown:?}");
    }
}
