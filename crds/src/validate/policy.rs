//! NetworkPolicy and GlobalNetworkPolicy rules, and tiers.

use super::{FieldError, Problems};
use crate::api::common::{IntOrString, Port};
use crate::api::policy::{EntityRule, GlobalNetworkPolicySpec, NetworkPolicySpec, PolicyRule, PolicyType};
use crate::api::tier::{DEFAULT_TIER, Tier, builtin_order, policy_tier};
use crate::api::value::{Decode, IpFamily, Net};

/// Checks a namespaced policy.
pub fn validate_network_policy(spec: &NetworkPolicySpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    problems.selector("spec.selector", spec.selector.as_deref());
    problems.selector("spec.serviceAccountSelector", spec.service_account_selector.as_deref());
    check_rules(&mut problems, "spec.ingress", spec.ingress.as_deref());
    check_rules(&mut problems, "spec.egress", spec.egress.as_deref());
    problems.into_result()
}

/// Checks a global policy.
pub fn validate_global_network_policy(spec: &GlobalNetworkPolicySpec) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    problems.selector("spec.selector", spec.selector.as_deref());
    problems.selector("spec.namespaceSelector", spec.namespace_selector.as_deref());
    problems.selector("spec.serviceAccountSelector", spec.service_account_selector.as_deref());
    let pre_dnat = spec.pre_dnat == Some(true);
    let do_not_track = spec.do_not_track == Some(true);
    problems.check(
        pre_dnat && do_not_track,
        "spec.preDNAT",
        "preDNAT and doNotTrack cannot both be true",
        "keep one of them",
    );
    problems.check(
        (pre_dnat || do_not_track) && spec.apply_on_forward != Some(true),
        "spec.applyOnForward",
        "applyOnForward must be true when preDNAT or doNotTrack is true",
        "set applyOnForward: true",
    );
    let egress_types = spec.types.iter().flatten().any(|t| *t == PolicyType::Egress);
    problems.check(
        pre_dnat && (spec.egress.as_ref().is_some_and(|rules| !rules.is_empty()) || egress_types),
        "spec.egress",
        "a preDNAT policy applies to incoming traffic only: it cannot have egress rules or the Egress type",
        "move the egress rules to a policy without preDNAT",
    );
    check_rules(&mut problems, "spec.ingress", spec.ingress.as_deref());
    check_rules(&mut problems, "spec.egress", spec.egress.as_deref());
    problems.into_result()
}

/// Checks Calico's naming rule for policies in a tier: a policy in tier `T` other than `default`
/// is named `T.<name>`. `name` is the policy's `metadata.name`, `tier` its `spec.tier`.
pub fn validate_policy_tier(name: &str, tier: Option<&str>) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let tier = policy_tier(tier);
    if tier != DEFAULT_TIER && !name.starts_with(&format!("{tier}.")) {
        problems.add(
            "metadata.name",
            format!("a policy in tier {tier:?} must be named {tier}.<name>, not {name:?}"),
            format!("rename it to {tier}.{name}"),
        );
    }
    problems.into_result()
}

/// Checks a tier: its name is a DNS label and a built-in tier keeps its order.
pub fn validate_tier(tier: &Tier) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let name = tier.metadata.name.as_deref().unwrap_or_default();
    let label = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    problems.check(
        !label,
        "metadata.name",
        &format!("tier name {name:?} is not a DNS label (policies are named <tier>.<name>)"),
        "use lowercase letters, digits and '-', at most 63 characters",
    );
    if let (Some(fixed), Some(order)) = (builtin_order(name), tier.spec.order) {
        problems.check(
            order != fixed,
            "spec.order",
            &format!("the built-in tier {name} has the fixed order {fixed}, not {order}"),
            "remove spec.order",
        );
    }
    problems.into_result()
}

fn check_rules(problems: &mut Problems, path: &str, rules: Option<&[PolicyRule]>) {
    for (index, rule) in rules.unwrap_or_default().iter().enumerate() {
        check_rule(problems, &format!("{path}[{index}]"), rule);
    }
}

/// Checks one rule on its own (used by the policy translator's tests too).
pub fn validate_rule(rule: &PolicyRule) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    check_rule(&mut problems, "rule", rule);
    problems.into_result()
}

fn check_rule(problems: &mut Problems, path: &str, rule: &PolicyRule) {
    for (field, protocol) in [("protocol", &rule.protocol), ("notProtocol", &rule.not_protocol)] {
        if let Some(Err(message)) = protocol.as_ref().map(|p| p.number()) {
            problems.add(format!("{path}.{field}"), message, "use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255");
        }
    }
    let numeric_ports = [&rule.source, &rule.destination]
        .into_iter()
        .flatten()
        .flat_map(|side| side.ports.iter().chain(side.not_ports.iter()).flatten())
        .any(is_numeric_port);
    problems.check(
        numeric_ports && !rule.protocol.as_ref().is_some_and(|p| p.supports_ports()),
        &format!("{path}.protocol"),
        "rules with numeric ports or port ranges must set protocol to TCP, UDP or SCTP",
        "add protocol: TCP (or UDP, SCTP)",
    );
    if let (Some(protocol), Some(version)) = (rule.protocol.as_ref().and_then(|p| p.number().ok()), rule.ip_version) {
        problems.check(
            protocol == 1 && version != 4,
            &format!("{path}.ipVersion"),
            "protocol ICMP requires ipVersion 4",
            "set ipVersion: 4 or use ICMPv6",
        );
        problems.check(
            protocol == 58 && version != 6,
            &format!("{path}.ipVersion"),
            "protocol ICMPv6 requires ipVersion 6",
            "set ipVersion: 6 or use ICMP",
        );
    }
    if let Some(version) = rule.ip_version {
        problems.check(
            version != 4 && version != 6,
            &format!("{path}.ipVersion"),
            "ipVersion must be 4 or 6",
            "set 4 or 6",
        );
    }
    for (field, icmp) in [("icmp", &rule.icmp), ("notICMP", &rule.not_icmp)] {
        let Some(icmp) = icmp else { continue };
        problems.check(
            icmp.code.is_some() && icmp.type_.is_none(),
            &format!("{path}.{field}.code"),
            "an ICMP code needs an ICMP type",
            "add type",
        );
        problems.check(
            !rule.protocol.as_ref().and_then(|p| p.number().ok()).is_some_and(|n| n == 1 || n == 58),
            &format!("{path}.{field}"),
            "icmp and notICMP require protocol ICMP or ICMPv6",
            "add protocol: ICMP",
        );
    }
    for (field, side) in [("source", &rule.source), ("destination", &rule.destination)] {
        if let Some(side) = side {
            check_entity(problems, &format!("{path}.{field}"), side);
            if let Some(family) = rule.ip_version.and_then(IpFamily::from_version) {
                check_family(problems, &format!("{path}.{field}"), side, family);
            }
        }
    }
}

/// A rule limited to one family (`ipVersion`) takes nets of that family only, as in Calico.
fn check_family(problems: &mut Problems, path: &str, side: &EntityRule, family: IpFamily) {
    for (field, nets) in [("nets", &side.nets), ("notNets", &side.not_nets)] {
        for (index, net) in nets.iter().flatten().enumerate() {
            let Some(parsed) = Net::decode(net) else { continue };
            problems.check(
                parsed.family() != family,
                &format!("{path}.{field}[{index}]"),
                &format!("{net} is not an {family} network, and the rule's ipVersion is {}", family.version()),
                "use nets of the rule's family, or drop ipVersion to match both families",
            );
        }
    }
}

fn is_numeric_port(port: &Port) -> bool {
    match &port.0 {
        IntOrString::Int(_) => true,
        IntOrString::String(text) => text.starts_with(|c: char| c.is_ascii_digit()),
    }
}

fn check_entity(problems: &mut Problems, path: &str, side: &EntityRule) {
    problems.selector(&format!("{path}.selector"), side.selector.as_deref());
    problems.selector(&format!("{path}.notSelector"), side.not_selector.as_deref());
    problems.selector(&format!("{path}.namespaceSelector"), side.namespace_selector.as_deref());
    if let Some(accounts) = &side.service_accounts {
        problems.selector(&format!("{path}.serviceAccounts.selector"), accounts.selector.as_deref());
    }
    for (field, nets) in [("nets", &side.nets), ("notNets", &side.not_nets)] {
        for (index, net) in nets.iter().flatten().enumerate() {
            problems.cidr(&format!("{path}.{field}[{index}]"), net);
        }
    }
    for (field, ports) in [("ports", &side.ports), ("notPorts", &side.not_ports)] {
        for (index, port) in ports.iter().flatten().enumerate() {
            if let Err(message) = port.spec() {
                problems.add(format!("{path}.{field}[{index}]"), message, "use 80, \"8000:8080\" or a port name");
            }
        }
    }
    problems.check(
        side.services.is_some() && (side.ports.is_some() || side.not_ports.is_some()),
        &format!("{path}.services"),
        "ports and notPorts cannot be combined with services",
        "remove ports: the service's own ports are used",
    );
    if let Some(service) = &side.services {
        // Calico's validator refuses these combinations: a service names its endpoints itself.
        for field in side.fields_beside_services() {
            problems.add(
                format!("{path}.services"),
                format!("{field} cannot be combined with services"),
                "use a rule of its own for the service, or name the endpoints by selector instead",
            );
        }
        problems.check(
            service.name.is_empty(),
            &format!("{path}.services.name"),
            "a services match must name a service",
            "set services.name (and services.namespace for a service of another namespace)",
        );
    }
}
