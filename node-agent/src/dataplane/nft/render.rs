//! Renders the typed ruleset to `nft -f -` text, deterministically: the same [`Ruleset`] always
//! gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::PortRange;

use super::delta::Delta;
use super::model::{
    ALLOW_MARK, AddressSet, Chain, Hook, Interface, Match, PASS_MARK, Rule, Ruleset, SetType, Side, Statement, TABLE,
    UNTRACKED_MARK, Verdict,
};

/// The prefix of the rule comment that carries the structure fingerprint.
pub const FINGERPRINT_PREFIX: &str = "gingham structure ";

/// One transaction that replaces the whole table atomically: create it (so the delete cannot fail),
/// delete it, and define it again.
pub fn transaction(ruleset: &Ruleset) -> String {
    format!("table {TABLE} {{}}\ndelete table {TABLE}\n{}", table(ruleset))
}

/// One transaction that makes the changes of a [`Delta`], in an order nft accepts: new sets, maps
/// and (empty) chains first, so rules and map elements can refer to them; rules of changed and
/// removed chains flushed before new rules are added; maps (which jump to chains), chains, then
/// sets deleted last, once nothing refers to them.
pub fn delta(delta: &Delta) -> String {
    let mut out = String::new();
    for set in &delta.new_sets {
        let _ = writeln!(out, "add set {TABLE} {} {{ {}; }}", set.name, set_type(set.family, set.kind).join("; "));
    }
    for map in &delta.new_maps {
        let _ = writeln!(out, "add map {TABLE} {map} {{ {MAP_TYPE}; }}");
    }
    for chain in &delta.new_chains {
        let _ = writeln!(out, "add chain {TABLE} {}", chain.name);
    }
    element_updates(&mut out, "delete", &delta.delete);
    for name in delta.refilled.iter().map(|c| &c.name).chain(&delta.deleted_chains) {
        let _ = writeln!(out, "flush chain {TABLE} {name}");
    }
    for chain in delta.refilled.iter().chain(&delta.new_chains) {
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule {TABLE} {} {}", chain.name, rule_text(rule));
        }
    }
    element_updates(&mut out, "add", &delta.add);
    for (kind, names) in [("map", &delta.deleted_maps), ("chain", &delta.deleted_chains), ("set", &delta.deleted_sets)]
    {
        for name in names {
            let _ = writeln!(out, "delete {kind} {TABLE} {name}");
        }
    }
    out
}

/// `add element` or `delete element` lines for sets and maps.
fn element_updates(out: &mut String, verb: &str, changes: &BTreeMap<String, BTreeSet<String>>) {
    for (name, elements) in changes.iter().filter(|(_, e)| !e.is_empty()) {
        // A map element is deleted by its key alone.
        let list: Vec<&str> = elements
            .iter()
            .map(|e| if verb == "delete" { e.split(" : ").next().unwrap_or(e) } else { e.as_str() })
            .collect();
        let _ = writeln!(out, "{verb} element {TABLE} {name} {{ {} }}", list.join(", "));
    }
}

/// The declaration lines of a set of this family and type.
fn set_type(family: IpFamily, kind: SetType) -> &'static [&'static str] {
    match (family, kind) {
        (IpFamily::IPv4, SetType::Addresses) => &["type ipv4_addr", "flags interval"],
        (IpFamily::IPv6, SetType::Addresses) => &["type ipv6_addr", "flags interval"],
        (IpFamily::IPv4, SetType::AddressPorts) => &["type ipv4_addr . inet_proto . inet_service"],
        (IpFamily::IPv6, SetType::AddressPorts) => &["type ipv6_addr . inet_proto . inet_service"],
    }
}

/// The nft names of a family: its `meta nfproto`, its address expression and its ICMP.
fn family_words(family: IpFamily) -> (&'static str, &'static str, &'static str) {
    match family {
        IpFamily::IPv4 => ("ipv4", "ip", "icmp"),
        IpFamily::IPv6 => ("ipv6", "ip6", "icmpv6"),
    }
}

/// The type of every verdict map.
const MAP_TYPE: &str = "type ifname : verdict";

/// A stable hash of everything but the elements and comments: when it is unchanged, element
/// updates are enough.
pub fn fingerprint(ruleset: &Ruleset) -> String {
    let mut structure = ruleset.structure();
    structure.chains.iter_mut().flat_map(|c| c.rules.iter_mut()).for_each(|rule| rule.comment = None);
    format!("{:016x}", super::model::stable_hash(&table(&structure)))
}

/// The table definition.
pub fn table(ruleset: &Ruleset) -> String {
    let mut out = format!("table {TABLE} {{\n");
    for set in &ruleset.sets {
        let _ = writeln!(out, "\tset {} {{", set.name);
        for line in set_type(set.family, set.kind) {
            let _ = writeln!(out, "\t\t{line}");
        }
        elements(&mut out, set.elements.iter().map(String::as_str));
        out.push_str("\t}\n");
    }
    for map in &ruleset.maps {
        let _ = writeln!(out, "\tmap {} {{\n\t\t{MAP_TYPE}", map.name);
        let items: Vec<String> = map.elements.iter().map(|(k, c)| super::model::map_element(k, c)).collect();
        elements(&mut out, items.iter().map(String::as_str));
        out.push_str("\t}\n");
    }
    for chain in &ruleset.chains {
        render_chain(&mut out, chain);
    }
    out.push_str("}\n");
    out
}

fn elements<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    let items: Vec<&str> = items.collect();
    if !items.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", items.join(", "));
    }
}

fn render_chain(out: &mut String, chain: &Chain) {
    let _ = writeln!(out, "\tchain {} {{", chain.name);
    match chain.hook {
        Some(Hook::Forward) => out.push_str("\t\ttype filter hook forward priority filter; policy accept;\n"),
        Some(Hook::Input) => out.push_str("\t\ttype filter hook input priority filter; policy accept;\n"),
        Some(Hook::Postrouting) => out.push_str("\t\ttype nat hook postrouting priority srcnat; policy accept;\n"),
        Some(Hook::Output) => out.push_str("\t\ttype filter hook output priority filter; policy accept;\n"),
        Some(Hook::RawPrerouting) => out.push_str("\t\ttype filter hook prerouting priority raw; policy accept;\n"),
        Some(Hook::RawOutput) => out.push_str("\t\ttype filter hook output priority raw; policy accept;\n"),
        Some(Hook::PreDnat) => out.push_str("\t\ttype filter hook prerouting priority dstnat - 10; policy accept;\n"),
        None => {}
    }
    for rule in &chain.rules {
        let _ = writeln!(out, "\t\t{}", rule_text(rule));
    }
    out.push_str("\t}\n");
}

/// One rule as nft text.
pub fn rule_text(rule: &Rule) -> String {
    let mut parts: Vec<String> = rule.matches.iter().map(match_text).collect();
    parts.extend(rule.statements.iter().map(statement_text));
    if let Some(comment) = &rule.comment {
        parts.push(format!("comment {}", quoted(comment)));
    }
    parts.join(" ")
}

fn quoted(text: &str) -> String {
    let clean: String = text.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect();
    format!("\"{clean}\"")
}

fn not(negate: bool) -> &'static str {
    if negate { "!= " } else { "" }
}

fn side(side: Side, address: &str, port: &str) -> String {
    match side {
        Side::Source => format!("{address}s{port}"),
        Side::Destination => format!("{address}d{port}"),
    }
}

fn ranges(ranges: &[PortRange]) -> String {
    let items: Vec<String> = ranges
        .iter()
        .map(|r| if r.first == r.last { r.first.to_string() } else { format!("{}-{}", r.first, r.last) })
        .collect();
    format!("{{ {} }}", items.join(", "))
}

fn match_text(m: &Match) -> String {
    match m {
        Match::Family(family) => format!("meta nfproto {}", family_words(*family).0),
        Match::CtState(states) => format!("ct state {states}"),
        Match::InterfaceName(interface, pattern) => format!("{} {}", interface_key(*interface), quoted(pattern)),
        Match::NotAllowed => format!("meta mark & {ALLOW_MARK:#x} == 0"),
        Match::Allowed => format!("meta mark & {ALLOW_MARK:#x} == {ALLOW_MARK:#x}"),
        Match::Passed => format!("meta mark & {PASS_MARK:#x} == {PASS_MARK:#x}"),
        Match::UntrackedAllowed => format!("meta mark & {UNTRACKED_MARK:#x} == {UNTRACKED_MARK:#x}"),
        Match::Protocol { negate, number } => format!("meta l4proto {}{number}", not(*negate)),
        Match::Icmp { family, negate, type_, code } => {
            let icmp = family_words(*family).2;
            match (negate, code) {
                (_, None) => format!("{icmp} type {}{type_}", not(*negate)),
                (false, Some(code)) => format!("{icmp} type {type_} {icmp} code {code}"),
                (true, Some(code)) => format!("{icmp} type . {icmp} code != {{ {type_} . {code} }}"),
            }
        }
        Match::Icmpv6Types(types) => {
            let types: Vec<String> = types.iter().map(u8::to_string).collect();
            format!("icmpv6 type {{ {} }}", types.join(", "))
        }
        Match::Address { family, side: s, negate, set } => {
            let target = match set {
                AddressSet::Named(name) => format!("@{name}"),
                AddressSet::Literal(items) => format!("{{ {} }}", items.join(", ")),
            };
            format!("{} {} {}{target}", family_words(*family).1, side(*s, "", "addr"), not(*negate))
        }
        Match::Ports { side: s, negate, ranges: r } => {
            format!("th {} {}{}", side(*s, "", "port"), not(*negate), ranges(r))
        }
        Match::NamedPort { family, side: s, set } => {
            let ip = family_words(*family).1;
            format!("{ip} {} . meta l4proto . th {} @{set}", side(*s, "", "addr"), side(*s, "", "port"))
        }
        Match::Service { protocol, side: s, port } => format!("{protocol} {} {port}", side(*s, "", "port")),
    }
}

fn interface_key(interface: Interface) -> &'static str {
    match interface {
        Interface::In => "iifname",
        Interface::Out => "oifname",
    }
}

fn statement_text(statement: &Statement) -> String {
    match statement {
        Statement::ClearAllowMark => format!("meta mark set meta mark & {:#010x}", !ALLOW_MARK),
        Statement::SetAllowMark => format!("meta mark set meta mark | {ALLOW_MARK:#x}"),
        Statement::ClearPassMark => format!("meta mark set meta mark & {:#010x}", !PASS_MARK),
        Statement::SetPassMark => format!("meta mark set meta mark | {PASS_MARK:#x}"),
        Statement::Log(prefix) => format!("log prefix {}", quoted(prefix)),
        Statement::Dispatch(interface, map) => format!("{} vmap @{map}", interface_key(*interface)),
        Statement::Masquerade => "masquerade".into(),
        Statement::Notrack => "notrack".into(),
        Statement::SetUntrackedMark => format!("meta mark set meta mark | {UNTRACKED_MARK:#x}"),
        Statement::Verdict(Verdict::Accept) => "accept".into(),
        Statement::Verdict(Verdict::Drop) => "drop".into(),
        Statement::Verdict(Verdict::Return) => "return".into(),
        Statement::Verdict(Verdict::Jump(chain)) => format!("jump {chain}"),
        Statement::Verdict(Verdict::Goto(chain)) => format!("goto {chain}"),
    }
}
