//! The nftables ruleset as typed data. [`super::render`] turns it into `nft -f -` text.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::PortRange;

/// The family and name of gingham's private table.
pub const TABLE: &str = "inet gingham";

/// The packet-mark bit a policy chain sets when it allows a packet (Calico uses the high bits too).
pub const ALLOW_MARK: u32 = 0x0001_0000;
/// The packet-mark bit a policy chain sets when a rule passes the packet to the next tier.
pub const PASS_MARK: u32 = 0x0002_0000;
/// The packet-mark bit the raw hooks set on a packet an untracked (`doNotTrack`) host endpoint
/// policy allowed: the filter hooks accept it before any other policy (Calico's
/// `AcceptedByUntracked`).
pub const UNTRACKED_MARK: u32 = 0x0004_0000;

/// gingham's table: sets, verdict maps and chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Named sets.
    pub sets: Vec<Set>,
    /// Named verdict maps keyed by interface name.
    pub maps: Vec<VerdictMap>,
    /// Chains, base chains included.
    pub chains: Vec<Chain>,
}

/// What a set holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetType {
    /// Addresses and prefixes of the set's family (`flags interval`).
    Addresses,
    /// `ipv4_addr . inet_proto . inet_service` (or `ipv6_addr . ...`) triples (named ports).
    AddressPorts,
}

/// A named set whose elements are updated incrementally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// The set's name.
    pub name: String,
    /// The family of its addresses (`ipv4_addr` or `ipv6_addr`).
    pub family: IpFamily,
    /// What it holds.
    pub kind: SetType,
    /// The elements, in nft syntax (normalised, so they compare with what nft lists).
    pub elements: BTreeSet<String>,
}

/// A verdict map from interface name to the chain to jump to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictMap {
    /// The map's name.
    pub name: String,
    /// Interface name to chain name.
    pub elements: BTreeMap<String, String>,
}

/// The hook of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `type filter hook forward priority filter`.
    Forward,
    /// `type filter hook input priority filter`.
    Input,
    /// `type nat hook postrouting priority srcnat`.
    Postrouting,
    /// `type filter hook output priority filter`: traffic from the host.
    Output,
    /// `type filter hook prerouting priority raw`: before connection tracking (untracked policy).
    RawPrerouting,
    /// `type filter hook output priority raw`: before connection tracking (untracked policy).
    RawOutput,
    /// `type filter hook prerouting priority dstnat - 10`: before DNAT (pre-DNAT policy).
    PreDnat,
}

/// A chain; a base chain has a hook and the policy accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The chain's name.
    pub name: String,
    /// Set for base chains.
    pub hook: Option<Hook>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// One rule: every match must hold, then the statements run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Conditions, all of which must hold.
    pub matches: Vec<Match>,
    /// What happens on a match, in order (a verdict, if any, last).
    pub statements: Vec<Statement>,
    /// A comment shown by `nft list`.
    pub comment: Option<String>,
}

/// Which interface a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// The input interface (`iifname`).
    In,
    /// The output interface (`oifname`).
    Out,
}

/// Which end of a packet a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source address or port.
    Source,
    /// The destination address or port.
    Destination,
}

/// Where an address must (or must not) be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSet {
    /// A named set (`@name`).
    Named(String),
    /// Literal prefixes (`{ 10.0.0.0/8, ... }`).
    Literal(Vec<String>),
}

/// One condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6`: the packet is of this family.
    Family(IpFamily),
    /// `ct state <states>`.
    CtState(&'static str),
    /// `iifname|oifname "<pattern>"`.
    InterfaceName(Interface, String),
    /// `meta mark & ALLOW_MARK == 0`: no policy allowed the packet.
    NotAllowed,
    /// `meta mark & ALLOW_MARK == ALLOW_MARK`: a policy allowed the packet.
    Allowed,
    /// `meta mark & PASS_MARK == PASS_MARK`: a policy passed the packet to the next tier.
    Passed,
    /// `meta mark & UNTRACKED_MARK == UNTRACKED_MARK`: untracked policy allowed the packet.
    UntrackedAllowed,
    /// `meta l4proto [!=] <number>`.
    Protocol {
        /// Negated.
        negate: bool,
        /// The IP protocol number.
        number: u8,
    },
    /// `icmp|icmpv6 type [!=] <type> [icmp|icmpv6 code <code>]`.
    Icmp {
        /// ICMP (IPv4) or ICMPv6 (IPv6).
        family: IpFamily,
        /// Negated.
        negate: bool,
        /// The ICMP type.
        type_: u8,
        /// The ICMP code.
        code: Option<u8>,
    },
    /// `icmpv6 type { <types> }`: one of these ICMPv6 types.
    Icmpv6Types(&'static [u8]),
    /// `ip|ip6 saddr|daddr [!=] <set>`.
    Address {
        /// The family of the address (and of the set).
        family: IpFamily,
        /// Which address.
        side: Side,
        /// Negated.
        negate: bool,
        /// Where it must be.
        set: AddressSet,
    },
    /// `th sport|dport [!=] { ranges }`.
    Ports {
        /// Which port.
        side: Side,
        /// Negated.
        negate: bool,
        /// The ranges.
        ranges: Vec<PortRange>,
    },
    /// `ip|ip6 daddr . meta l4proto . th dport @set` (named ports).
    NamedPort {
        /// The family of the address (and of the set).
        family: IpFamily,
        /// Which end.
        side: Side,
        /// The set's name.
        set: String,
    },
    /// `<protocol> dport|sport <port>` (failsafe ports, the VXLAN port).
    Service {
        /// `tcp`, `udp` or `sctp`.
        protocol: String,
        /// Which port.
        side: Side,
        /// The port.
        port: u16,
    },
}

/// What a rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `meta mark set meta mark & ~ALLOW_MARK`.
    ClearAllowMark,
    /// `meta mark set meta mark | ALLOW_MARK`.
    SetAllowMark,
    /// `meta mark set meta mark & ~PASS_MARK`.
    ClearPassMark,
    /// `meta mark set meta mark | PASS_MARK`.
    SetPassMark,
    /// `log prefix "<prefix>"`.
    Log(String),
    /// `iifname|oifname vmap @<map>`.
    Dispatch(Interface, String),
    /// `masquerade`.
    Masquerade,
    /// `notrack`: no connection tracking for the packet.
    Notrack,
    /// `meta mark set meta mark | UNTRACKED_MARK`.
    SetUntrackedMark,
    /// A verdict.
    Verdict(Verdict),
}

/// A verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump <chain>`.
    Jump(String),
    /// `goto <chain>`: its return goes back to this chain's caller.
    Goto(String),
}

impl Match {
    /// The family this condition belongs to, if it belongs to one.
    pub fn family(&self) -> Option<IpFamily> {
        match self {
            Self::Family(family)
            | Self::Icmp { family, .. }
            | Self::Address { family, .. }
            | Self::NamedPort { family, .. } => Some(*family),
            Self::Icmpv6Types(_) => Some(IpFamily::IPv6),
            _ => None,
        }
    }

    /// Whether nft itself limits the rule to the condition's family: an `ip`/`ip6` address
    /// carries a `meta nfproto` dependency in an `inet` table; `icmp type` only implies
    /// `meta l4proto`.
    pub fn fixes_family(&self) -> bool {
        matches!(self, Self::Family(_) | Self::Address { .. } | Self::NamedPort { .. })
    }
}

impl Rule {
    /// A rule of matches and statements, without a comment.
    pub fn new(matches: Vec<Match>, statements: Vec<Statement>) -> Self {
        Self { matches, statements, comment: None }
    }

    /// A rule with matches and a verdict.
    pub fn verdict(matches: Vec<Match>, verdict: Verdict) -> Self {
        Self::new(matches, vec![Statement::Verdict(verdict)])
    }
}

impl Ruleset {
    /// The same ruleset with every set and map emptied: what a change must keep to be applied as
    /// element updates only.
    pub fn structure(&self) -> Ruleset {
        let mut structure = self.clone();
        structure.sets.iter_mut().for_each(|set| set.elements.clear());
        structure.maps.iter_mut().for_each(|map| map.elements.clear());
        structure
    }

    /// Every set's and map's elements in nft syntax, by name.
    pub fn elements(&self) -> BTreeMap<String, BTreeSet<String>> {
        let sets = self.sets.iter().map(|set| (set.name.clone(), set.elements.clone()));
        let maps = self.maps.iter().map(|map| {
            let elements = map.elements.iter().map(|(key, chain)| map_element(key, chain)).collect();
            (map.name.clone(), elements)
        });
        sets.chain(maps).collect()
    }
}

/// A verdict-map element in nft syntax.
pub fn map_element(interface: &str, chain: &str) -> String {
    format!("\"{interface}\" : jump {chain}")
}

/// FNV-1a, 64-bit: a small, stable hash for chain names and fingerprints.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
