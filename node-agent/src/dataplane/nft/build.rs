//! The ruleset for one node, computed purely from its [`NodeView`] and its known policy
//! ([`PolicyPlan`]; while the node's span is not known there is none, and no ruleset).
//!
//! Forwarded packets from a pod jump, through the `from_endpoint` verdict map, to a chain for the
//! pod's egress policy list; packets to a pod jump through `to_endpoint` to its ingress chain. Such
//! a chain jumps to a chain per tier, in order, and each tier's chain to each of its policies'
//! chains; a policy that allows sets [`super::model::ALLOW_MARK`] and returns, one that passes sets
//! [`super::model::PASS_MARK`] and returns, which ends its tier ([`endpoint_policy_chains`]). A pod
//! interface that is in neither map (its policy is not known yet) is dropped.
//!
//! The maps hold every endpoint the span compiles policy for, by its host interface name
//! (`gingham_crds::naming::endpoint_interface_name`), also before the pod's veth exists: the
//! operator compiles a pod's policy once it is scheduled to the node, so when CNI ADD creates the
//! veth its policy is already in force and ADD changes no nftables state. An entry compiled for
//! another Pod UID than the local endpoint of that name is left out ([`dispatched`]).
//!
//! One `inet` table serves both families: the sets are typed by family, each compiled rule is
//! rendered for the families it can match ([`super::policy`]), the drops that isolate a pod name
//! no family, neighbour discovery and MLD pass before any policy ([`ICMPV6_ALWAYS`]), and
//! natOutgoing masquerades in both families (`all_pools`/`nat_pools`, `all_pools6`/`nat_pools6`).

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::{CompiledPolicy, EndpointPolicy, EndpointToHostAction, TierPolicies};
use gingham_crds::api::tier::TierDefaultAction;
use gingham_crds::naming::{INTERFACE_PREFIX, LogTag, endpoint_interface_name};
use ipnet::IpNet;
use tracing::warn;

use super::elements;
use super::hosts::host_rules;
use super::model::{
    AddressSet, Chain, Hook, Interface, Match, Rule, Ruleset, Set, SetType, Side, Statement, Verdict, VerdictMap,
    stable_hash,
};
use super::policy::{SetIndex, policy_rules, set_name};
use super::render::{FINGERPRINT_PREFIX, fingerprint};
use crate::dataplane::NodeView;
use crate::dataplane::plan::{PolicyPlan, SetMembers, SetPlan};
use crate::endpoint::uid_matches;

/// The verdict map for traffic leaving pods.
pub const FROM_ENDPOINT: &str = "from_endpoint";
/// The verdict map for traffic entering pods.
pub const TO_ENDPOINT: &str = "to_endpoint";
/// The set of every IPv4 pool CIDR.
pub const ALL_POOLS: &str = "all_pools";
/// The set of the IPv4 natOutgoing pool CIDRs.
pub const NAT_POOLS: &str = "nat_pools";
/// The set of every IPv6 pool CIDR.
pub const ALL_POOLS6: &str = "all_pools6";
/// The set of the IPv6 natOutgoing pool CIDRs.
pub const NAT_POOLS6: &str = "nat_pools6";

/// The ICMPv6 types a default deny never drops, to or from a pod: MLD query, report and done
/// (130-132), router solicitation and advertisement (133, 134), neighbour solicitation and
/// advertisement (135, 136) and the MLDv2 report (143). Felix accepts 130-133, 135 and 136 from
/// workloads before their policy; errors such as packet-too-big arrive as `ct state related`.
pub const ICMPV6_ALWAYS: &[u8] = &[130, 131, 132, 133, 134, 135, 136, 143];

#[derive(Clone, Copy)]
pub(super) enum Direction {
    Ingress,
    Egress,
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

/// A text that tells one tier's policy list from another: tier, default action, policies.
fn tier_key(tier: &TierPolicies) -> String {
    format!("{}|{:?}|{}", tier.tier, tier.default_action, tier.policies.join("\n"))
}

/// What happens to a packet when an endpoint's list is empty or every tier passed it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ListEnd {
    /// It is allowed (pods; host endpoints' forward lists and default-allow profile).
    Allow,
    /// It is dropped (a host endpoint's own traffic without an allowing profile).
    Drop,
    /// Nothing is decided: it goes on (pre-DNAT and untracked lists).
    Undecided,
}

pub(super) fn endpoint_chain(direction: Direction, tiers: &[TierPolicies], end: ListEnd) -> String {
    let prefix = match (direction, end) {
        (Direction::Ingress, ListEnd::Allow) => "ei",
        (Direction::Egress, ListEnd::Allow) => "ee",
        (Direction::Ingress, ListEnd::Drop) => "hi",
        (Direction::Egress, ListEnd::Drop) => "he",
        (Direction::Ingress, ListEnd::Undecided) => "ui",
        (Direction::Egress, ListEnd::Undecided) => "ue",
    };
    if tiers.is_empty() {
        let what = match end {
            ListEnd::Allow => "allow",
            ListEnd::Drop => "drop",
            ListEnd::Undecided => "none",
        };
        format!("{prefix}_{what}_all")
    } else {
        chain_name(prefix, &tiers.iter().map(tier_key).collect::<Vec<_>>().join("\n\n"))
    }
}

fn tier_chain(direction: Direction, tier: &TierPolicies) -> String {
    match direction {
        Direction::Ingress => chain_name("ti", &tier_key(tier)),
        Direction::Egress => chain_name("te", &tier_key(tier)),
    }
}

/// The whole ruleset for the view and its policy.
pub fn ruleset(view: &NodeView<'_>, policy: &PolicyPlan) -> Ruleset {
    // An empty set of a family the node has no address of is not programmed (an IPv4-only
    // cluster's empty IPv6 set per selector): its rules treat it as the empty set it is.
    let programmed = |set: &SetPlan| {
        let empty = match &set.members {
            SetMembers::Addresses(members) => members.is_empty(),
            SetMembers::AddressPorts(members) => members.is_empty(),
        };
        !empty || policy.node_families.is_empty() || policy.node_families.contains(&set.family)
    };
    let mut sets: Vec<Set> = policy
        .sets
        .iter()
        .filter(|set| programmed(set))
        .map(|set| {
            let (kind, elements) = match &set.members {
                SetMembers::Addresses(nets) => (SetType::Addresses, elements::addresses(nets.iter().copied())),
                SetMembers::AddressPorts(members) => {
                    (SetType::AddressPorts, elements::address_ports(members.iter().copied()))
                }
            };
            Set { name: set_name(&set.name), family: set.family, kind, elements }
        })
        .collect();
    sets.extend(pool_sets(&policy.nat.pools, &policy.nat.nat_outgoing));

    let index = SetIndex::new(&policy.sets, programmed);
    warn_undefined_sets(policy, &index);
    let known: BTreeSet<&str> = policy.policies.iter().map(|p| p.name.as_str()).collect();
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    for compiled in &policy.policies {
        for direction in [Direction::Ingress, Direction::Egress] {
            let chain = compiled_policy_chain(compiled, direction, &index);
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
            let endpoint_chains = endpoint_policy_chains(direction, policies, &known, ListEnd::Allow);
            map.insert(interface.clone(), endpoint_chain(direction, policies, ListEnd::Allow));
            chains.extend(endpoint_chains.into_iter().map(|chain| (chain.name.clone(), chain)));
        }
    }
    let maps = vec![
        VerdictMap { name: FROM_ENDPOINT.into(), elements: from },
        VerdictMap { name: TO_ENDPOINT.into(), elements: to },
    ];
    let mut base = base_chains(policy);
    if let Some(hosts) = host_rules(policy, &known) {
        hosts.merge_into(&mut base);
        chains.extend(hosts.chains.into_iter().map(|chain| (chain.name.clone(), chain)));
    }
    let mut ruleset = Ruleset { sets, maps, chains: base };
    ruleset.chains.extend(chains.into_values());
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

/// The pool sets of both families: every pool, and the natOutgoing ones (`all_pools`,
/// `nat_pools` for IPv4, `all_pools6`, `nat_pools6` for IPv6).
fn pool_sets(pools: &[IpNet], nat_outgoing: &[IpNet]) -> Vec<Set> {
    fn of(nets: &[IpNet], family: IpFamily) -> impl Iterator<Item = IpNet> + '_ {
        nets.iter().copied().filter(move |net| IpFamily::of_net(net) == family)
    }
    [(IpFamily::IPv4, ALL_POOLS, NAT_POOLS), (IpFamily::IPv6, ALL_POOLS6, NAT_POOLS6)]
        .into_iter()
        .flat_map(|(family, all, nat)| {
            [(all, elements::addresses(of(pools, family))), (nat, elements::addresses(of(nat_outgoing, family)))]
                .map(|(name, elements)| Set { name: name.into(), family, kind: SetType::Addresses, elements })
        })
        .collect()
}

/// Logs each set a policy rule names that the span does not define: the rule treats it as an empty
/// set of both families (see [`super::policy`]).
fn warn_undefined_sets(policy: &PolicyPlan, index: &SetIndex<'_>) {
    let rules = policy.policies.iter().flat_map(|p| p.ingress.iter().chain(&p.egress));
    let names = rules.flat_map(|rule| [&rule.source, &rule.destination]).flat_map(|side| {
        let ports = side.named_port_set.iter().chain(&side.named_port_set6);
        side.sets.iter().chain(&side.not_sets).chain(ports)
    });
    let undefined: BTreeSet<&String> = names.filter(|name| !index.defines(name)).collect();
    for name in undefined {
        warn!(set = %name, "a policy rule names a set the span does not define; it is taken as empty");
    }
}

pub(super) fn pod_interfaces() -> String {
    format!("{INTERFACE_PREFIX}*")
}

fn base_chains(policy: &PolicyPlan) -> Vec<Chain> {
    let established = || Rule::verdict(vec![Match::CtState("established,related")], Verdict::Accept);
    let icmpv6 =
        || Rule::verdict(vec![Match::Family(IpFamily::IPv6), Match::Icmpv6Types(ICMPV6_ALWAYS)], Verdict::Accept);
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
            icmpv6(),
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
    let failsafes = policy.failsafe_inbound.iter().map(|(failsafe, net)| {
        let mut matches = Vec::new();
        if let Some(net) = net {
            matches.push(Match::Address {
                family: IpFamily::of_net(net),
                side: Side::Source,
                negate: false,
                set: AddressSet::Literal(elements::addresses([*net]).into_iter().collect()),
            });
        }
        matches.push(Match::Service {
            protocol: failsafe.protocol.to_string(),
            side: Side::Destination,
            port: failsafe.port,
        });
        Rule::verdict(matches, Verdict::Accept)
    });
    let mut to_host: Vec<Rule> = std::iter::once(icmpv6()).chain(failsafes).collect();
    match policy.default_endpoint_to_host_action {
        EndpointToHostAction::Drop => to_host.push(Rule::verdict(vec![], Verdict::Drop)),
        action => {
            to_host.extend([clear(), dispatch(Interface::In, FROM_ENDPOINT), unknown(Interface::In)]);
            let verdict = if action == EndpointToHostAction::Accept { Verdict::Accept } else { Verdict::Return };
            to_host.push(Rule::verdict(vec![], verdict));
        }
    }
    let endpoint_to_host = Chain { name: "endpoint_to_host".into(), hook: None, rules: to_host };
    let masquerade = |family, nat: &str, all: &str| {
        let named =
            |side, negate, name: &str| Match::Address { family, side, negate, set: AddressSet::Named(name.into()) };
        Rule::new(
            vec![named(Side::Source, false, nat), named(Side::Destination, true, all)],
            vec![Statement::Masquerade],
        )
    };
    let postrouting = Chain {
        name: "postrouting".into(),
        hook: Some(Hook::Postrouting),
        rules: vec![
            masquerade(IpFamily::IPv4, NAT_POOLS, ALL_POOLS),
            masquerade(IpFamily::IPv6, NAT_POOLS6, ALL_POOLS6),
        ],
    };
    vec![forward, input, endpoint_to_host, postrouting]
}

/// The chains for one endpoint's tiered policy list: the endpoint's chain, which jumps to each
/// tier's chain in order and returns as soon as one allows (no tiers, or every tier passed: `end`
/// decides), and one chain per tier. A tier's chain jumps to each policy's chain
/// in order and returns as soon as one allows or passes; when none decides, it ends with the
/// tier's default action (Deny drops; Pass returns, on to the next tier). A policy the span does
/// not hold drops the packet (comment on the rule).
pub(super) fn endpoint_policy_chains(
    direction: Direction,
    tiers: &[TierPolicies],
    known: &BTreeSet<&str>,
    end: ListEnd,
) -> Vec<Chain> {
    let mut rules = vec![Rule::new(vec![], vec![Statement::ClearAllowMark])];
    let mut chains = Vec::new();
    for tier in tiers {
        let chain = tier_policy_chain(direction, tier, known);
        rules.push(Rule::verdict(vec![], Verdict::Jump(chain.name.clone())));
        rules.push(Rule::verdict(vec![Match::Allowed], Verdict::Return));
        chains.push(chain);
    }
    match end {
        ListEnd::Allow => rules.push(Rule::new(vec![], vec![Statement::SetAllowMark])),
        ListEnd::Drop => {
            let mut drop = Rule::verdict(vec![], Verdict::Drop);
            drop.comment = Some("no policy allowed it and no profile allows all".into());
            rules.push(drop);
        }
        ListEnd::Undecided => {}
    }
    chains.insert(0, Chain { name: endpoint_chain(direction, tiers, end), hook: None, rules });
    chains
}

fn tier_policy_chain(direction: Direction, tier: &TierPolicies, known: &BTreeSet<&str>) -> Chain {
    let name = tier_chain(direction, tier);
    let mut rules = vec![Rule::new(vec![], vec![Statement::ClearPassMark])];
    for policy in &tier.policies {
        if !known.contains(policy.as_str()) {
            let mut missing = Rule::verdict(vec![], Verdict::Drop);
            missing.comment = Some(format!("policy {policy} is not in the span"));
            rules.push(missing);
            return Chain { name, hook: None, rules };
        }
        rules.push(Rule::verdict(vec![], Verdict::Jump(policy_chain(direction, policy))));
        rules.push(Rule::verdict(vec![Match::Allowed], Verdict::Return));
        rules.push(Rule::verdict(vec![Match::Passed], Verdict::Return));
    }
    if tier.default_action == TierDefaultAction::Deny {
        let mut deny = Rule::verdict(vec![], Verdict::Drop);
        deny.comment = Some(format!("tier {} default action", tier.tier));
        rules.push(deny);
    }
    Chain { name, hook: None, rules }
}

fn compiled_policy_chain(policy: &CompiledPolicy, direction: Direction, sets: &SetIndex<'_>) -> Chain {
    let compiled = match direction {
        Direction::Ingress => &policy.ingress,
        Direction::Egress => &policy.egress,
    };
    let ingress = matches!(direction, Direction::Ingress);
    let rules = compiled
        .iter()
        .enumerate()
        .flat_map(|(index, rule)| policy_rules(&LogTag::new(&policy.name, ingress, index), rule, sets))
        .collect();
    Chain { name: policy_chain(direction, &policy.name), hook: None, rules }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
