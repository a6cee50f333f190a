//! One compiled policy rule as nft rules, in both families (docs/node-agent.md, "Dual-stack: the
//! contract"). A rule is rendered once per family it can match:
//!
//! - `ipVersion` limits it to one family; so do `icmp`/`notICMP` (ICMP: IPv4, ICMPv6: IPv6) and
//!   the protocols ICMP (1, IPv4) and ICMPv6 (58, IPv6).
//! - A side whose `nets` are all of one family never matches the other; `notNets` of the other
//!   family never match (they are left out of that family's rule).
//! - `sets`/`notSets` list the sets of both families: a packet is checked against the sets of its
//!   own family only. A side with sets none of which is of a family never matches that family (its
//!   selector has no members there). A set the span does not define is an empty set of both
//!   families: named in `sets` the rule never matches, in `notSets` it excludes nothing. An empty
//!   set the table does not hold ([`SetIndex::new`]) is taken the same way in its family.
//! - `namedPortSet` serves IPv4, `namedPortSet6` IPv6; a side whose only port condition is a
//!   named-port set absent in a family never matches that family.
//!
//! A rule that comes out the same in both families with nothing family-specific in it is rendered
//! once, for both; otherwise each family's rule carries `meta nfproto ipv4|ipv6` unless an
//! `ip`/`ip6` address already limits it to its family.

use std::collections::BTreeMap;

use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledRule, IcmpMatch, IcmpProtocol};
use gingham_crds::api::policy::Action;
use gingham_crds::api::{IpFamily, Net, Wire};

use super::elements;
use super::model::{AddressSet, Match, Rule, SetType, Side, Statement, Verdict};
use crate::dataplane::plan::{SetMembers, SetPlan};

/// The name of a span-defined set in the table.
pub fn set_name(name: &str) -> String {
    format!("s_{name}")
}

/// The family and kind of every set the span defines, by its span name, and whether the table
/// holds it (an empty set may be left out, see [`SetIndex::new`]).
#[derive(Clone, Debug, Default)]
pub struct SetIndex<'a>(BTreeMap<&'a str, (IpFamily, SetType, bool)>);

impl<'a> SetIndex<'a> {
    /// Indexes the plan's sets; those `programmed` refuses are known empty sets the table does not
    /// hold: a rule that needs an address in one never matches that family, one that excludes
    /// its members excludes nothing.
    pub fn new(sets: &'a [SetPlan], programmed: impl Fn(&SetPlan) -> bool) -> Self {
        Self(
            sets.iter()
                .map(|set| {
                    let kind = match set.members {
                        SetMembers::Addresses(_) => SetType::Addresses,
                        SetMembers::AddressPorts(_) => SetType::AddressPorts,
                    };
                    (set.name.as_str(), (set.family, kind, programmed(set)))
                })
                .collect(),
        )
    }

    /// Whether `name` is a set of this family and kind that the table holds.
    fn is(&self, name: &str, family: IpFamily, kind: SetType) -> bool {
        self.0.get(name) == Some(&(family, kind, true))
    }

    /// Whether `name` is an empty set of this family that the table does not hold.
    fn left_out(&self, name: &str, family: IpFamily) -> bool {
        self.0.get(name).is_some_and(|(f, _, programmed)| *f == family && !programmed)
    }

    /// Whether the span defines `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// One compiled rule as nft rules: one per family it can match (or one for both), and more than
/// one per family when named ports are ORed with port ranges.
pub fn policy_rules(policy: &str, rule: &CompiledRule, sets: &SetIndex<'_>) -> Vec<Rule> {
    let [ipv4, ipv6] = IpFamily::BOTH.map(|family| family_variants(rule, family, sets));
    let neutral = |variants: &[Vec<Match>]| variants.iter().flatten().all(|m| m.family().is_none());
    let statements = action_statements(policy, rule.action);
    if ipv4 == ipv6 && neutral(&ipv4) {
        return ipv4.into_iter().map(|matches| Rule::new(matches, statements.clone())).collect();
    }
    let families = IpFamily::BOTH.into_iter().zip([ipv4, ipv6]);
    families
        .flat_map(|(family, variants)| variants.into_iter().map(move |matches| (family, matches)))
        .map(|(family, mut matches)| {
            if !matches.iter().any(Match::fixes_family) {
                matches.insert(0, Match::Family(family));
            }
            Rule::new(matches, statements.clone())
        })
        .collect()
}

/// A rule's action as statements. Allow and Pass mark the packet and return to the tier's chain,
/// which ends the tier: Allow allows, Pass goes on to the next tier.
fn action_statements(policy: &str, action: Action) -> Vec<Statement> {
    match action {
        Action::Allow => vec![Statement::SetAllowMark, Statement::Verdict(Verdict::Return)],
        Action::Pass => vec![Statement::SetPassMark, Statement::Verdict(Verdict::Return)],
        Action::Deny => vec![Statement::Verdict(Verdict::Drop)],
        Action::Log => {
            let name: String = policy.chars().filter(|c| c.is_ascii_graphic()).take(100).collect();
            vec![Statement::Log(format!("gingham {name}: "))]
        }
    }
}

/// Whether the rule's version, ICMP and protocol leave `family` possible.
fn can_match(rule: &CompiledRule, family: IpFamily) -> bool {
    let icmp_allows = |icmp: &Option<IcmpMatch>| icmp.as_ref().is_none_or(|icmp| icmp.protocol.family() == family);
    rule.ip_version.is_none_or(|version| version == family)
        && icmp_allows(&rule.icmp)
        && icmp_allows(&rule.not_icmp)
        && rule.protocol.and_then(IcmpProtocol::of_number).is_none_or(|icmp| icmp.family() == family)
}

/// The rule's conditions in `family`, one list per alternative (ORed); none when it cannot match
/// that family.
fn family_variants(rule: &CompiledRule, family: IpFamily, sets: &SetIndex<'_>) -> Vec<Vec<Match>> {
    if !can_match(rule, family) {
        return Vec::new();
    }
    let mut common = Vec::new();
    if let Some(number) = rule.protocol {
        common.push(Match::Protocol { negate: false, number });
    }
    if let Some(number) = rule.not_protocol {
        common.push(Match::Protocol { negate: true, number });
    }
    for (icmp, negate) in [(&rule.icmp, false), (&rule.not_icmp, true)] {
        if let Some(icmp) = icmp {
            common.push(Match::Icmp { family, negate, type_: icmp.type_, code: icmp.code });
        }
    }
    let mut variants = vec![common];
    for (side, matched) in [(Side::Source, &rule.source), (Side::Destination, &rule.destination)] {
        let (Some(base), Some(alternatives)) =
            (side_matches(side, matched, family, sets), port_alternatives(side, matched, family, sets))
        else {
            return Vec::new();
        };
        let mut next = Vec::new();
        for prefix in &variants {
            for alternative in &alternatives {
                next.push(prefix.iter().chain(&base).chain(alternative).cloned().collect());
            }
        }
        variants = next;
    }
    variants
}

/// The address and negated-port conditions of one side in `family`; `None` when the side cannot
/// match that family. The plan holds only policies whose nets all decoded.
fn side_matches(side: Side, matched: &CompiledMatch, family: IpFamily, sets: &SetIndex<'_>) -> Option<Vec<Match>> {
    let mut out = Vec::new();
    let of_family = |nets: &[Wire<Net>]| -> Vec<String> {
        let nets = nets.iter().filter_map(|net| net.value().map(|net| net.0));
        elements::addresses(nets.filter(|net| IpFamily::of_net(net) == family)).into_iter().collect()
    };
    let (nets, not_nets) = (of_family(&matched.nets), of_family(&matched.not_nets));
    if !matched.nets.is_empty() && nets.is_empty() {
        return None;
    }
    let address = |negate, set| Match::Address { family, side, negate, set };
    if !nets.is_empty() {
        out.push(address(false, AddressSet::Literal(nets)));
    }
    if !not_nets.is_empty() {
        out.push(address(true, AddressSet::Literal(not_nets)));
    }
    if matched.sets.iter().any(|name| !sets.defines(name) || sets.left_out(name, family)) {
        return None;
    }
    let own = |names: &[String]| -> Vec<String> {
        names.iter().filter(|name| sets.is(name, family, SetType::Addresses)).map(|name| set_name(name)).collect()
    };
    let (positive, negative) = (own(&matched.sets), own(&matched.not_sets));
    if !matched.sets.is_empty() && positive.is_empty() {
        return None;
    }
    out.extend(positive.into_iter().map(|name| address(false, AddressSet::Named(name))));
    out.extend(negative.into_iter().map(|name| address(true, AddressSet::Named(name))));
    if !matched.not_ports.is_empty() {
        out.push(Match::Ports { side, negate: true, ranges: matched.not_ports.clone() });
    }
    Some(out)
}

/// The port conditions of one side in `family`, as alternatives (ORed): ranges, the family's
/// named-port set, or both; `None` when the side has port conditions none of which can hold in
/// that family.
fn port_alternatives(
    side: Side,
    matched: &CompiledMatch,
    family: IpFamily,
    sets: &SetIndex<'_>,
) -> Option<Vec<Vec<Match>>> {
    let mut alternatives = Vec::new();
    if !matched.ports.is_empty() {
        alternatives.push(vec![Match::Ports { side, negate: false, ranges: matched.ports.clone() }]);
    }
    let named = match family {
        IpFamily::IPv4 => &matched.named_port_set,
        IpFamily::IPv6 => &matched.named_port_set6,
    };
    if let Some(set) = named.as_ref().filter(|set| sets.is(set, family, SetType::AddressPorts)) {
        alternatives.push(vec![Match::NamedPort { family, side, set: set_name(set) }]);
    }
    let unconstrained =
        matched.ports.is_empty() && matched.named_port_set.is_none() && matched.named_port_set6.is_none();
    match (alternatives.is_empty(), unconstrained) {
        (false, _) => Some(alternatives),
        (true, true) => Some(vec![Vec::new()]),
        (true, false) => None,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
