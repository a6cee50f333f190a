//! The ruleset for one node, computed purely from its [`NodeView`] and its known policy
//! ([`PolicyPlan`]; while the node's span is not known there is none, and no ruleset).
//!
//! Forwarded packets from a pod jump, through the `from_endpoint` verdict map, to a chain for the
//! pod's egress policy list; packets to a pod jump through `to_endpoint` to its ingress chain. Such
//! a chain jumps to each policy's chain in order; a policy that allows sets [`super::model::ALLOW_MARK`] and
//! returns. A pod interface that is in neither map (its policy is not known yet) is dropped.
//!
//! The maps hold every endpoint the span compiles policy for, by its host interface name
//! (`gingham_crds::naming::endpoint_interface_name`), also before the pod's veth exists: the
//! operator compiles a pod's policy once it is scheduled to the node, so when CNI ADD creates the
//! veth its policy is already in force and ADD changes no nftables state. An entry compiled for
//! another Pod UID than the local endpoint of that name is left out ([`dispatched`]).

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, CompiledRule, EndpointPolicy, EndpointToHostAction,
};
use gingham_crds::api::policy::Action;
use gingham_crds::api::{Net, Wire};
use gingham_crds::naming::{INTERFACE_PREFIX, endpoint_interface_name};
use tracing::warn;

use super::elements;
use super::model::{
    AddressSet, Chain, Hook, Interface, Match, Rule, Ruleset, Set, SetType, Side, Statement, Verdict, VerdictMap,
    stable_hash,
};
use super::render::{FINGERPRINT_PREFIX, fingerprint};
use crate::dataplane::NodeView;
use crate::dataplane::plan::{PolicyPlan, SetMembers};
use crate::endpoint::uid_matches;

/// The verdict map for traffic leaving pods.
pub const FROM_ENDPOINT: &str = "from_endpoint";
/// The verdict map for traffic entering pods.
pub const TO_ENDPOINT: &str = "to_endpoint";
/// The set of every pool CIDR.
pub const ALL_POOLS: &str = "all_pools";
/// The set of the natOutgoing pool CIDRs.
pub const NAT_POOLS: &str = "nat_pools";

#[derive(Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

/// The name of a span-defined set in the table.
pub fn set_name(name: &str) -> String {
    format!("s_{name}")
}

fn chain_name(prefix: &str, key: &str) -> String {
    let readable: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(40).collect();
    format!("{prefix}_{readable}_{:08x}", stable_hash(key) as u32)
}

fn policy_chain(direction: Direction, policy: &str) -> String {
    match direction {
        Direction::Ingress => chain_name("pi", policy),
        Direction::Egress => chain_name("pe", policy),
    }
}

fn endpoint_chain(direction: Direction, policies: &[String]) -> String {
    let prefix = match direction {
        Direction::Ingress => "ei",
        Direction::Egress => "ee",
    };
    if policies.is_empty() { format!("{prefix}_allow_all") } else { chain_name(prefix, &policies.join("\n")) }
}

/// The whole ruleset for the view and its policy.
pub fn ruleset(view: &NodeView<'_>, policy: &PolicyPlan) -> Ruleset {
    let mut sets: Vec<Set> = policy
        .sets
        .iter()
        .map(|set| {
            let (kind, elements) = match &set.members {
                SetMembers::Addresses(nets) => (SetType::Addresses, elements::addresses(nets.iter().copied())),
                SetMembers::AddressPorts(members) => {
                    (SetType::AddressPorts, elements::address_ports(members.iter().copied()))
                }
            };
            Set { name: set_name(&set.name), kind, elements }
        })
        .collect();
    // The table is IPv4 (nft6 makes it dual-stack): IPv4 pools only.
    let pools = view.plan.pools.iter().filter_map(|p| match p.cidr {
        ipnet::IpNet::V4(cidr) => Some((cidr, p.nat_outgoing)),
        ipnet::IpNet::V6(_) => None,
    });
    sets.push(Set {
        name: ALL_POOLS.into(),
        kind: SetType::Addresses,
        elements: elements::addresses(pools.clone().map(|(cidr, _)| cidr)),
    });
    sets.push(Set {
        name: NAT_POOLS.into(),
        kind: SetType::Addresses,
        elements: elements::addresses(pools.filter(|(_, nat)| *nat).map(|(cidr, _)| cidr)),
    });

    let known: BTreeSet<&str> = policy.policies.iter().map(|p| p.name.as_str()).collect();
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    for compiled in &policy.policies {
        for direction in [Direction::Ingress, Direction::Egress] {
            let chain = compiled_policy_chain(compiled, direction);
            chains.insert(chain.name.clone(), chain);
        }
    }
    let mut from = BTreeMap::new();
    let mut to = BTreeMap::new();
    for entry in dispatched(view, policy) {
        let (namespace, pod) = entry.name.split_once('/').unwrap_or(("default", &entry.name));
        let interface = endpoint_interface_name(namespace, pod);
        for (direction, policies, map) in
            [(Direction::Egress, &entry.egress, &mut from), (Direction::Ingress, &entry.ingress, &mut to)]
        {
            let chain = endpoint_policy_chain(direction, policies, &known);
            map.insert(interface.clone(), chain.name.clone());
            chains.insert(chain.name.clone(), chain);
        }
    }
    let maps = vec![
        VerdictMap { name: FROM_ENDPOINT.into(), elements: from },
        VerdictMap { name: TO_ENDPOINT.into(), elements: to },
    ];
    let mut ruleset = Ruleset { sets, maps, chains: base_chains(policy) };
    ruleset.chains.extend(chains.into_values());
    let missing = missing_sets(&ruleset);
    ruleset.sets.extend(missing);
    let print = fingerprint(&ruleset);
    if let Some(first) = ruleset.chains.first_mut().and_then(|chain| chain.rules.first_mut()) {
        first.comment = Some(format!("{FINGERPRINT_PREFIX}{print}"));
    }
    ruleset
}

/// The span's endpoint policies the ruleset dispatches to: all but those compiled for another Pod
/// than the local endpoint of the same name (a predecessor with another UID, see
/// [`crate::endpoint::uid_matches`]): that endpoint's traffic is dropped until its own arrives.
pub fn dispatched<'a>(view: &NodeView<'a>, policy: &'a PolicyPlan) -> impl Iterator<Item = &'a EndpointPolicy> {
    let local: BTreeMap<String, Option<&str>> = view.endpoints.iter().map(|e| (e.key(), e.uid.as_deref())).collect();
    policy
        .endpoints
        .iter()
        .filter(move |entry| local.get(&entry.name).is_none_or(|actual| uid_matches(entry.uid.as_deref(), *actual)))
}

/// Empty sets for the ones rules name but the span does not define: nft would refuse the whole
/// table otherwise.
fn missing_sets(ruleset: &Ruleset) -> Vec<Set> {
    let defined: BTreeSet<&str> = ruleset.sets.iter().map(|s| s.name.as_str()).collect();
    let mut missing = BTreeMap::new();
    for m in ruleset.chains.iter().flat_map(|c| c.rules.iter()).flat_map(|r| r.matches.iter()) {
        let (name, kind) = match m {
            Match::Address { set: AddressSet::Named(name), .. } => (name, SetType::Addresses),
            Match::NamedPort { set, .. } => (set, SetType::AddressPorts),
            _ => continue,
        };
        if !defined.contains(name.as_str()) {
            missing.entry(name.clone()).or_insert(kind);
        }
    }
    missing
        .into_iter()
        .map(|(name, kind)| {
            warn!(set = %name, "a policy rule names a set the span does not define; using an empty set");
            Set { name, kind, elements: BTreeSet::new() }
        })
        .collect()
}

fn pod_interfaces() -> String {
    format!("{INTERFACE_PREFIX}*")
}

fn base_chains(policy: &PolicyPlan) -> Vec<Chain> {
    let established = || Rule::verdict(vec![Match::CtState("established,related")], Verdict::Accept);
    let clear = || Rule::new(vec![], vec![Statement::ClearAllowMark]);
    let unknown = |interface| {
        Rule::verdict(vec![Match::InterfaceName(interface, pod_interfaces()), Match::NotAllowed], Verdict::Drop)
    };
    let dispatch = |interface, map: &str| Rule::new(vec![], vec![Statement::Dispatch(interface, map.into())]);
    let forward = Chain {
        name: "forward".into(),
        hook: Some(Hook::Forward),
        rules: vec![
            established(),
            Rule::verdict(vec![Match::CtState("invalid")], Verdict::Drop),
            clear(),
            dispatch(Interface::In, FROM_ENDPOINT),
            unknown(Interface::In),
            clear(),
            dispatch(Interface::Out, TO_ENDPOINT),
            unknown(Interface::Out),
        ],
    };
    let input = Chain {
        name: "input".into(),
        hook: Some(Hook::Input),
        rules: vec![
            established(),
            Rule::verdict(
                vec![Match::InterfaceName(Interface::In, pod_interfaces())],
                Verdict::Jump("endpoint_to_host".into()),
            ),
        ],
    };
    let mut to_host: Vec<Rule> = policy
        .failsafe_inbound
        .iter()
        .map(|(failsafe, net)| {
            let mut matches = Vec::new();
            if let Some(net) = net {
                matches.push(Match::Address {
                    side: Side::Source,
                    negate: false,
                    set: AddressSet::Literal(elements::addresses([*net]).into_iter().collect()),
                });
            }
            matches.push(Match::Service { protocol: failsafe.protocol.to_string(), port: failsafe.port });
            Rule::verdict(matches, Verdict::Accept)
        })
        .collect();
    match policy.default_endpoint_to_host_action {
        EndpointToHostAction::Drop => to_host.push(Rule::verdict(vec![], Verdict::Drop)),
        action => {
            to_host.extend([clear(), dispatch(Interface::In, FROM_ENDPOINT), unknown(Interface::In)]);
            let verdict = if action == EndpointToHostAction::Accept { Verdict::Accept } else { Verdict::Return };
            to_host.push(Rule::verdict(vec![], verdict));
        }
    }
    let endpoint_to_host = Chain { name: "endpoint_to_host".into(), hook: None, rules: to_host };
    let postrouting = Chain {
        name: "postrouting".into(),
        hook: Some(Hook::Postrouting),
        rules: vec![Rule::new(
            vec![
                Match::Address { side: Side::Source, negate: false, set: AddressSet::Named(NAT_POOLS.into()) },
                Match::Address { side: Side::Destination, negate: true, set: AddressSet::Named(ALL_POOLS.into()) },
            ],
            vec![Statement::Masquerade],
        )],
    };
    vec![forward, input, endpoint_to_host, postrouting]
}

/// A chain for one list of policies: no policies allow everything; otherwise the first policy
/// that allows (or passes) wins and the rest is dropped.
fn endpoint_policy_chain(direction: Direction, policies: &[String], known: &BTreeSet<&str>) -> Chain {
    if policies.is_empty() {
        let rules = vec![Rule::new(vec![], vec![Statement::SetAllowMark])];
        return Chain { name: endpoint_chain(direction, policies), hook: None, rules };
    }
    let mut rules = vec![Rule::new(vec![], vec![Statement::ClearAllowMark])];
    for name in policies {
        if !known.contains(name.as_str()) {
            let mut missing = Rule::verdict(vec![], Verdict::Drop);
            missing.comment = Some(format!("policy {name} is not in the span"));
            rules.push(missing);
            break;
        }
        rules.push(Rule::verdict(vec![], Verdict::Jump(policy_chain(direction, name))));
        rules.push(Rule::verdict(vec![Match::Allowed], Verdict::Return));
    }
    rules.push(Rule::verdict(vec![], Verdict::Drop));
    Chain { name: endpoint_chain(direction, policies), hook: None, rules }
}

fn compiled_policy_chain(policy: &CompiledPolicy, direction: Direction) -> Chain {
    let compiled = match direction {
        Direction::Ingress => &policy.ingress,
        Direction::Egress => &policy.egress,
    };
    let rules = compiled.iter().flat_map(|rule| policy_rules(&policy.name, rule)).collect();
    Chain { name: policy_chain(direction, &policy.name), hook: None, rules }
}

/// A rule's action as statements. Pass skips the remaining policies and counts as allowed, as the
/// operator compiles it (one tier; past it Calico's default profile allows).
fn action_statements(policy: &str, action: Action) -> Vec<Statement> {
    match action {
        Action::Allow | Action::Pass => vec![Statement::SetAllowMark, Statement::Verdict(Verdict::Return)],
        Action::Deny => vec![Statement::Verdict(Verdict::Drop)],
        Action::Log => {
            let name: String = policy.chars().filter(|c| c.is_ascii_graphic()).take(100).collect();
            vec![Statement::Log(format!("gingham {name}: "))]
        }
    }
}

/// One compiled rule as nft rules: more than one when named ports are ORed with port ranges.
fn policy_rules(policy: &str, rule: &CompiledRule) -> Vec<Rule> {
    let mut common = Vec::new();
    if let Some(number) = rule.protocol {
        common.push(Match::Protocol { negate: false, number });
    }
    if let Some(number) = rule.not_protocol {
        common.push(Match::Protocol { negate: true, number });
    }
    if let Some(icmp) = &rule.icmp {
        common.push(Match::Icmp { negate: false, type_: icmp.type_, code: icmp.code });
    }
    if let Some(icmp) = &rule.not_icmp {
        common.push(Match::Icmp { negate: true, type_: icmp.type_, code: icmp.code });
    }
    let mut variants = vec![common];
    for (side, matched) in [(Side::Source, &rule.source), (Side::Destination, &rule.destination)] {
        let Some(base) = side_matches(side, matched) else { return Vec::new() };
        let alternatives = port_alternatives(side, matched);
        let mut next = Vec::new();
        for prefix in &variants {
            for alternative in &alternatives {
                next.push(prefix.iter().chain(&base).chain(alternative).cloned().collect());
            }
        }
        variants = next;
    }
    variants.into_iter().map(|matches| Rule::new(matches, action_statements(policy, rule.action))).collect()
}

/// The address and negated-port conditions of one side; `None` when the rule cannot match IPv4
/// (its nets are all IPv6). The plan holds only policies whose nets all decoded.
fn side_matches(side: Side, matched: &CompiledMatch) -> Option<Vec<Match>> {
    let mut out = Vec::new();
    let ipv4 = |nets: &[Wire<Net>]| -> Vec<String> {
        elements::addresses(nets.iter().filter_map(|net| net.value()?.v4())).into_iter().collect()
    };
    let (nets, not_nets) = (ipv4(&matched.nets), ipv4(&matched.not_nets));
    if !matched.nets.is_empty() && nets.is_empty() {
        return None;
    }
    if !nets.is_empty() {
        out.push(Match::Address { side, negate: false, set: AddressSet::Literal(nets) });
    }
    if !not_nets.is_empty() {
        out.push(Match::Address { side, negate: true, set: AddressSet::Literal(not_nets) });
    }
    for set in &matched.sets {
        out.push(Match::Address { side, negate: false, set: AddressSet::Named(set_name(set)) });
    }
    for set in &matched.not_sets {
        out.push(Match::Address { side, negate: true, set: AddressSet::Named(set_name(set)) });
    }
    if !matched.not_ports.is_empty() {
        out.push(Match::Ports { side, negate: true, ranges: matched.not_ports.clone() });
    }
    Some(out)
}

/// The port conditions of one side, as alternatives (ORed): ranges, a named-port set, or both.
fn port_alternatives(side: Side, matched: &CompiledMatch) -> Vec<Vec<Match>> {
    let mut alternatives = Vec::new();
    if !matched.ports.is_empty() {
        alternatives.push(vec![Match::Ports { side, negate: false, ranges: matched.ports.clone() }]);
    }
    if let Some(set) = &matched.named_port_set {
        alternatives.push(vec![Match::NamedPort { side, set: set_name(set) }]);
    }
    if alternatives.is_empty() {
        alternatives.push(Vec::new());
    }
    alternatives
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
