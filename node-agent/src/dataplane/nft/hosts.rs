//! Host endpoint policy in the one `inet gingham` table (Calico's host endpoints):
//!
//! | hook (priority) | chain | lists |
//! |---|---|---|
//! | prerouting (raw, -300) | `hep_raw_prerouting` | `untrackedIngress` |
//! | output (raw, -300) | `hep_raw_output` | `untrackedEgress` |
//! | prerouting (dstnat - 10, before DNAT) | `hep_pre_dnat` | `preDNATIngress` |
//! | input (filter) | `input` | `ingress` |
//! | output (filter) | `hep_output` | `egress` |
//! | forward (filter) | `forward` | `forwardIngress`, `forwardEgress` |
//!
//! In every hook, before any host policy: the failsafe ports (inbound: to the port, and in the
//! raw hooks replies from an outbound failsafe port; outbound alike), the node's own tunnel
//! traffic (VXLAN on its UDP port, IP-in-IP) and ICMPv6 neighbour discovery. A packet untracked
//! policy allowed is not tracked and carries [`super::model::UNTRACKED_MARK`]; the filter hooks
//! accept it first. Each list is evaluated with the pods' tier machinery
//! ([`super::build::endpoint_policy_chains`]); its end follows Calico ([`ListEnd`]): a host
//! endpoint's own traffic is dropped unless its profile allows all, forwarded traffic is
//! allowed, pre-DNAT and untracked lists decide nothing unless a rule does.
//!
//! Interfaces: a dispatch chain per list goes to the endpoint of the packet's interface, named
//! endpoints first (`goto`), then the all-interfaces (`*`) endpoint for any interface but the
//! pods' (`gh*`) and `lo`. A node has a handful of host endpoints, so these are rules, not maps.
//! A hook whose lists are all empty on every endpoint gets no chain (nothing to enforce there).

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::IpFamily;
use gingham_crds::api::hostendpoint::ALL_INTERFACES;
use gingham_crds::api::hostpolicy::HostEndpointPolicy;
use gingham_crds::api::nodenetwork::TierPolicies;
use ipnet::IpNet;

use super::build::{Direction, ICMPV6_ALWAYS, ListEnd, endpoint_chain, endpoint_policy_chains, pod_interfaces};
use super::elements;
use super::model::{AddressSet, Chain, Hook, Interface, Match, Rule, Side, Statement, Verdict};
use crate::dataplane::plan::PolicyPlan;
use gingham_crds::api::felix::Failsafe;

/// One list of a host endpoint: which hook it is in, how it is read and how it ends.
struct ListKind {
    /// The dispatch chain's name.
    dispatch: &'static str,
    interface: Interface,
    direction: Direction,
    lists: fn(&HostEndpointPolicy) -> &Vec<TierPolicies>,
    /// How the list ends for an endpoint (its default-allow profile matters for its own traffic).
    end: fn(&HostEndpointPolicy) -> ListEnd,
}

fn own_traffic(host: &HostEndpointPolicy) -> ListEnd {
    if host.default_allow { ListEnd::Allow } else { ListEnd::Drop }
}

const UNTRACKED_IN: ListKind = ListKind {
    dispatch: "hep_untracked_in",
    interface: Interface::In,
    direction: Direction::Ingress,
    lists: |h| &h.untracked_ingress,
    end: |_| ListEnd::Undecided,
};
const UNTRACKED_OUT: ListKind = ListKind {
    dispatch: "hep_untracked_out",
    interface: Interface::Out,
    direction: Direction::Egress,
    lists: |h| &h.untracked_egress,
    end: |_| ListEnd::Undecided,
};
const PRE_DNAT_IN: ListKind = ListKind {
    dispatch: "hep_pre_dnat_in",
    interface: Interface::In,
    direction: Direction::Ingress,
    lists: |h| &h.pre_dnat_ingress,
    end: |_| ListEnd::Undecided,
};
const TO_HOST: ListKind = ListKind {
    dispatch: "hep_to_host",
    interface: Interface::In,
    direction: Direction::Ingress,
    lists: |h| &h.ingress,
    end: own_traffic,
};
const FROM_HOST: ListKind = ListKind {
    dispatch: "hep_from_host",
    interface: Interface::Out,
    direction: Direction::Egress,
    lists: |h| &h.egress,
    end: own_traffic,
};
const FORWARD_IN: ListKind = ListKind {
    dispatch: "hep_forward_in",
    interface: Interface::In,
    direction: Direction::Ingress,
    lists: |h| &h.forward_ingress,
    end: |_| ListEnd::Allow,
};
const FORWARD_OUT: ListKind = ListKind {
    dispatch: "hep_forward_out",
    interface: Interface::Out,
    direction: Direction::Egress,
    lists: |h| &h.forward_egress,
    end: |_| ListEnd::Allow,
};

/// What host endpoints add to the ruleset: rules for the existing `input` and `forward` chains,
/// new base chains, and the dispatch, endpoint, tier and policy-list chains.
pub(super) struct HostRules {
    input: Vec<Rule>,
    forward: Vec<Rule>,
    base: Vec<Chain>,
    /// Non-base chains (dispatch, endpoint and tier chains).
    pub(super) chains: Vec<Chain>,
}

impl HostRules {
    /// Puts the rules into the `input` and `forward` base chains (untracked packets accepted
    /// first, host policy last) and adds the new base chains.
    pub(super) fn merge_into(&self, base: &mut Vec<Chain>) {
        for chain in base.iter_mut() {
            let extra = match chain.hook {
                Some(Hook::Input) => &self.input,
                Some(Hook::Forward) => &self.forward,
                _ => continue,
            };
            chain.rules.insert(0, untracked_accept());
            chain.rules.extend(extra.iter().cloned());
        }
        base.extend(self.base.iter().cloned());
    }
}

fn untracked_accept() -> Rule {
    Rule::verdict(vec![Match::UntrackedAllowed], Verdict::Accept)
}

/// The host endpoint rules of the plan; `None` when the node has no host endpoint to enforce.
/// `known`: the policies the span holds.
pub(super) fn host_rules(policy: &PolicyPlan, known: &BTreeSet<&str>) -> Option<HostRules> {
    let hosts = &policy.host_endpoints;
    if hosts.is_empty() {
        return None;
    }
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    let mut dispatch = |kind: &ListKind| -> Vec<Rule> {
        for chain in dispatch_chains(kind, hosts, known) {
            chains.insert(chain.name.clone(), chain);
        }
        vec![
            Rule::new(vec![], vec![Statement::ClearAllowMark]),
            Rule::verdict(vec![], Verdict::Jump(kind.dispatch.into())),
        ]
    };
    let used = |kind: &ListKind| hosts.iter().any(|h| !(kind.lists)(h).is_empty());
    let inbound = failsafes(&policy.failsafe_inbound, Side::Source, Side::Destination);
    let outbound = failsafes(&policy.failsafe_outbound, Side::Destination, Side::Destination);
    let open_in = open(&inbound, policy.vxlan_port);
    let open_out = open(&outbound, policy.vxlan_port);
    let mut base = Vec::new();
    for (kind, hook, name, replies) in [
        (&UNTRACKED_IN, Hook::RawPrerouting, "hep_raw_prerouting", &policy.failsafe_outbound),
        (&UNTRACKED_OUT, Hook::RawOutput, "hep_raw_output", &policy.failsafe_inbound),
    ] {
        if !used(kind) {
            continue;
        }
        // No connection tracking here: replies from the other direction's failsafe ports too.
        let (ours, side) =
            if hook == Hook::RawPrerouting { (&open_in, Side::Source) } else { (&open_out, Side::Destination) };
        let mut rules = ours.clone();
        rules.extend(failsafes(replies, side, Side::Source));
        rules.extend(dispatch(kind));
        rules.push(Rule::new(
            vec![Match::Allowed],
            vec![Statement::Notrack, Statement::SetUntrackedMark, Statement::Verdict(Verdict::Accept)],
        ));
        base.push(Chain { name: name.into(), hook: Some(hook), rules });
    }
    if used(&PRE_DNAT_IN) {
        let mut rules = vec![established()];
        rules.extend(open_in.iter().cloned());
        rules.extend(dispatch(&PRE_DNAT_IN));
        base.push(Chain { name: "hep_pre_dnat".into(), hook: Some(Hook::PreDnat), rules });
    }
    let mut output = vec![untracked_accept(), established()];
    output.extend(open_out);
    output.extend(dispatch(&FROM_HOST));
    base.push(Chain { name: "hep_output".into(), hook: Some(Hook::Output), rules: output });
    let mut input = open_in;
    input.extend(dispatch(&TO_HOST));
    let mut forward = Vec::new();
    for kind in [&FORWARD_IN, &FORWARD_OUT] {
        if used(kind) {
            forward.extend(dispatch(kind));
        }
    }
    Some(HostRules { input, forward, base, chains: chains.into_values().collect() })
}

fn established() -> Rule {
    Rule::verdict(vec![Match::CtState("established,related")], Verdict::Accept)
}

/// What is open before host policy in one direction: the failsafe ports, the node's tunnel
/// traffic and ICMPv6 neighbour discovery.
fn open(failsafes: &[Rule], vxlan_port: u16) -> Vec<Rule> {
    let mut rules = failsafes.to_vec();
    rules.push(Rule::verdict(
        vec![Match::Service { protocol: "udp".into(), side: Side::Destination, port: vxlan_port }],
        Verdict::Accept,
    ));
    rules.push(Rule::verdict(vec![Match::Protocol { negate: false, number: 4 }], Verdict::Accept));
    rules.push(Rule::verdict(vec![Match::Family(IpFamily::IPv6), Match::Icmpv6Types(ICMPV6_ALWAYS)], Verdict::Accept));
    rules
}

/// Accept rules for failsafe ports: the port on `port_side`, the network (if any) on `net_side`.
fn failsafes(ports: &[(Failsafe, Option<IpNet>)], net_side: Side, port_side: Side) -> Vec<Rule> {
    ports
        .iter()
        .map(|(failsafe, net)| {
            let mut matches = Vec::new();
            if let Some(net) = net {
                matches.push(Match::Address {
                    family: IpFamily::of_net(net),
                    side: net_side,
                    negate: false,
                    set: AddressSet::Literal(elements::addresses([*net]).into_iter().collect()),
                });
            }
            matches.push(Match::Service {
                protocol: failsafe.protocol.to_string(),
                side: port_side,
                port: failsafe.port,
            });
            Rule::verdict(matches, Verdict::Accept)
        })
        .collect()
}

/// The dispatch chain of one list kind and the chains of every endpoint's list: named
/// interfaces first, then (on any interface but the pods' and `lo`) the first all-interfaces
/// endpoint.
fn dispatch_chains(kind: &ListKind, hosts: &[HostEndpointPolicy], known: &BTreeSet<&str>) -> Vec<Chain> {
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    let mut wildcard = None;
    for host in hosts {
        let Some(interface) = host.interface_name.as_deref() else { continue };
        let (tiers, end) = ((kind.lists)(host), (kind.end)(host));
        let target = endpoint_chain(kind.direction, tiers, end);
        chains.extend(endpoint_policy_chains(kind.direction, tiers, known, end));
        if interface == ALL_INTERFACES {
            wildcard.get_or_insert(target);
        } else {
            rules.push(Rule::verdict(
                vec![Match::InterfaceName(kind.interface, interface.into())],
                Verdict::Goto(target),
            ));
        }
    }
    if let Some(target) = wildcard {
        for skipped in [pod_interfaces(), "lo".to_string()] {
            rules.push(Rule::verdict(vec![Match::InterfaceName(kind.interface, skipped)], Verdict::Return));
        }
        rules.push(Rule::verdict(vec![], Verdict::Goto(target)));
    }
    chains.push(Chain { name: kind.dispatch.into(), hook: None, rules });
    chains
}

#[cfg(test)]
#[path = "hosts_tests.rs"]
mod tests;
