//! One policy's rules compiled to protocol numbers, port ranges, CIDRs and set references.
//!
//! How selectors are scoped (Calico's semantics):
//! - a rule `selector`/`notSelector` without `namespaceSelector` matches endpoints in the policy's
//!   namespace (namespaced policies) or anywhere (global policies);
//! - with `namespaceSelector`, endpoints in the namespaces it matches (`all()`: every namespace);
//! - `namespaceSelector` without `selector` means every endpoint in those namespaces;
//! - neither: no condition on the peer at all (any address, inside or outside the cluster).
//!
//! Named ports become one `address,protocol,port` set per side, ORed with the numeric ports. The set
//! is scoped like the side's selector; a side with neither selector holds the named port of every
//! endpoint in every namespace (on the policy's own side: of the policy's own endpoints).
//!
//! Both families: a rule keeps its `ipVersion` (absent: both families), its ICMP match says ICMP
//! or ICMPv6 (from the rule's protocol), and each set is referred to by both its names, the IPv4
//! and the IPv6 set ([`SetKey::name`]); a packet meets the sets of its own family only.
//! `serviceAccounts` matches (and the policy's `serviceAccountSelector`) are selectors over the
//! endpoints' service-account pseudo-labels, ANDed with the side's selector and scoped like it
//! ([`super::accounts`]). A `services` match is a set of the Service's endpoints
//! ([`super::services`]): as a source, their addresses; as a destination, `address,protocol,port`
//! with the service's ports, referred to as the side's named-port set. Its namespace defaults to
//! the policy's (for a global policy: `default`).
//!
//! Rules the dataplane cannot express (named `notPorts`) are left out and reported.

use std::collections::BTreeSet;

use gingham_crds::api::common::PortSpec;
use gingham_crds::api::nodenetwork::{CompiledMatch, CompiledPolicy, CompiledRule, IcmpMatch, IcmpProtocol, PortRange};
use gingham_crds::api::policy::{EntityRule, IcmpFields, PolicyRule, PolicyScope, PolicyView};
use gingham_crds::api::{IpFamily, Wire};
use gingham_crds::selector::Selector;

use super::accounts::{account_labels, account_match, and};
use super::sets::{NamedPorts, Scope, SetKey};

/// A compiled policy and the sets its rules refer to.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The compiled rules (set names filled in).
    pub policy: CompiledPolicy,
    /// Every set the rules refer to, without duplicates.
    pub sets: BTreeSet<SetKey>,
}

/// Compiles a policy. `name` is the compiled name (`ns/name` or `global/name`). Returns the
/// template and one message per rule left out.
pub fn compile_policy(name: &str, view: &PolicyView<'_>) -> (Template, Vec<String>) {
    let mut sets = BTreeSet::new();
    let mut problems = Vec::new();
    let home = match view.scope {
        PolicyScope::Namespace(ns) => Some(ns),
        PolicyScope::NamespaceSelector(_) => None,
    };
    let applies_to = policy_selector(view).unwrap_or_default();
    let applies_in = match view.scope {
        PolicyScope::Namespace(ns) => Scope::Namespace(ns.to_string()),
        PolicyScope::NamespaceSelector(Some(text)) => {
            Selector::parse(text).map_or(Scope::Everywhere, Scope::Namespaces)
        }
        PolicyScope::NamespaceSelector(None) => Scope::Everywhere,
    };
    let own = SetKey { scope: applies_in, selector: applies_to, named_ports: None, service: None };
    let mut compile_all = |direction: &str, rules: &[PolicyRule], ingress: bool| -> Vec<CompiledRule> {
        rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| match compile_rule(rule, home, &own, ingress, &mut sets) {
                Ok(compiled) => compiled,
                Err(message) => {
                    problems.push(format!("spec.{direction}[{index}]: {message}; the rule is left out"));
                    None
                }
            })
            .collect()
    };
    let ingress = compile_all("ingress", view.ingress, true);
    let egress = compile_all("egress", view.egress, false);
    (Template { policy: CompiledPolicy { name: name.to_string(), ingress, egress }, sets }, problems)
}

/// The endpoints a policy applies to: its `selector` ANDed with its `serviceAccountSelector`
/// (over the endpoints' service-account labels).
pub fn policy_selector(view: &PolicyView<'_>) -> Result<Selector, String> {
    let selector = parse("spec.selector", view.selector.unwrap_or_default())?;
    let accounts =
        view.service_account_selector.map(|text| account_labels("spec.serviceAccountSelector", text)).transpose()?;
    match and(Some(selector.expr().clone()), accounts.map(|a| a.expr().clone())) {
        Some(expr) => Selector::try_from(expr).map_err(|e| format!("spec.serviceAccountSelector: {e}")),
        None => Ok(Selector::all()),
    }
}

/// `Ok(None)`: the rule can never match (an `ipVersion` that is neither 4 nor 6, which
/// validation refuses) and is dropped silently.
fn compile_rule(
    rule: &PolicyRule,
    home: Option<&str>,
    own: &SetKey,
    ingress: bool,
    sets: &mut BTreeSet<SetKey>,
) -> Result<Option<CompiledRule>, String> {
    let ip_version = match rule.ip_version {
        None => None,
        Some(version) => match IpFamily::from_version(version) {
            Some(family) => Some(family),
            None => return Ok(None),
        },
    };
    let protocol = rule.protocol.as_ref().map(|p| p.number()).transpose()?;
    let not_protocol = rule.not_protocol.as_ref().map(|p| p.number()).transpose()?;
    let empty = EntityRule::default();
    let source =
        compile_side(rule.source.as_ref().unwrap_or(&empty), home, (!ingress).then_some(own), (protocol, false), sets)?;
    let destination = compile_side(
        rule.destination.as_ref().unwrap_or(&empty),
        home,
        ingress.then_some(own),
        (protocol, true),
        sets,
    )?;
    // Validation makes icmp/notICMP come with protocol ICMP or ICMPv6; which one names the match.
    let icmp_protocol = protocol.and_then(IcmpProtocol::of_number).unwrap_or_default();
    Ok(Some(CompiledRule {
        action: rule.action,
        ip_version,
        protocol,
        not_protocol,
        icmp: rule.icmp.as_ref().and_then(|fields| icmp(fields, icmp_protocol)),
        not_icmp: rule.not_icmp.as_ref().and_then(|fields| icmp(fields, icmp_protocol)),
        source,
        destination,
    }))
}

fn icmp(fields: &IcmpFields, protocol: IcmpProtocol) -> Option<IcmpMatch> {
    fields.type_.map(|type_| IcmpMatch { protocol, type_, code: fields.code })
}

fn parse(field: &str, text: &str) -> Result<Selector, String> {
    Selector::parse(text).map_err(|e| format!("{field}: {e}"))
}

/// Compiles one side. `own` is set on the side where the policy's own endpoint sits (destination
/// of an ingress rule, source of an egress rule): the endpoints the policy applies to. A named-port
/// set there without a selector of its own is narrowed to those endpoints, which changes no match
/// (the packet's endpoint on that side is always one of them) but keeps the set small.
fn compile_side(
    side: &EntityRule,
    home: Option<&str>,
    own: Option<&SetKey>,
    (protocol, destination): (Option<u8>, bool),
    sets: &mut BTreeSet<SetKey>,
) -> Result<CompiledMatch, String> {
    let mut add = |key: SetKey| {
        let names = IpFamily::BOTH.map(|family| key.name(family));
        sets.insert(key);
        names
    };
    if let Some(service) = &side.services {
        let ports = [("ports", side.ports.is_some()), ("notPorts", side.not_ports.is_some())];
        let ports = ports.into_iter().filter_map(|(field, given)| given.then_some(field));
        if let Some(field) = side.fields_beside_services().chain(ports).next() {
            return Err(format!("services cannot be combined with {field} (as in Calico)"));
        }
        // A destination: the service's endpoints with its ports; a source: their addresses.
        let namespace = service.namespace.as_deref().or(home).unwrap_or("default");
        let [v4, v6] = add(SetKey::service(namespace, &service.name, destination));
        return Ok(if destination {
            CompiledMatch { named_port_set: Some(v4), named_port_set6: Some(v6), ..CompiledMatch::default() }
        } else {
            CompiledMatch { sets: vec![v4, v6], ..CompiledMatch::default() }
        });
    }
    let scope = match side.namespace_selector.as_deref() {
        Some(text) => {
            let selector = parse("namespaceSelector", text)?;
            Scope::Namespaces(selector)
        }
        None => home.map_or(Scope::Everywhere, |ns| Scope::Namespace(ns.to_string())),
    };
    let mut compiled = CompiledMatch {
        nets: side.nets.iter().flatten().map(|net| Wire::new(net.as_str())).collect(),
        not_nets: side.not_nets.iter().flatten().map(|net| Wire::new(net.as_str())).collect(),
        ..CompiledMatch::default()
    };
    let selector = side.selector.as_deref().map(|t| parse("selector", t)).transpose()?;
    let accounts = side.service_accounts.as_ref().map(|a| account_match("serviceAccounts", a)).transpose()?.flatten();
    // A side with a selector (even `all()`) or an account match selects endpoints; one without
    // sets no condition on the peer.
    let given = selector.is_some() || accounts.is_some();
    let selector = match and(selector.map(|s| s.expr().clone()), accounts.map(|s| s.expr().clone())) {
        Some(expr) => Some(Selector::try_from(expr).map_err(|e| format!("serviceAccounts: {e}"))?),
        None => given.then(Selector::all),
    };
    if selector.is_some() || side.namespace_selector.is_some() {
        let key = SetKey {
            scope: scope.clone(),
            selector: selector.clone().unwrap_or_default(),
            named_ports: None,
            service: None,
        };
        compiled.sets.extend(add(key));
    }
    if let Some(text) = side.not_selector.as_deref() {
        let key =
            SetKey { scope: scope.clone(), selector: parse("notSelector", text)?, named_ports: None, service: None };
        compiled.not_sets.extend(add(key));
    }
    let mut names = BTreeSet::new();
    for port in side.ports.iter().flatten() {
        match port.spec()? {
            PortSpec::Range { first, last } => compiled.ports.push(PortRange { first, last }),
            PortSpec::Named(name) => {
                names.insert(name);
            }
        }
    }
    for port in side.not_ports.iter().flatten() {
        match port.spec()? {
            PortSpec::Range { first, last } => compiled.not_ports.push(PortRange { first, last }),
            PortSpec::Named(name) => return Err(format!("named port {name:?} in notPorts is not supported")),
        }
    }
    if !names.is_empty() {
        // Calico scopes a named port to the policy's namespace only through a selector: a side
        // with neither selector nor namespaceSelector resolves the name on whichever endpoint the
        // packet reaches there, in any namespace (Kubernetes: a rule with ports and no peers).
        let (scope, selector) = match (selector, side.namespace_selector.is_some(), own) {
            (None, false, Some(own)) => (own.scope.clone(), own.selector.clone()),
            (None, false, None) => (Scope::Everywhere, Selector::default()),
            (selector, _, _) => (scope, selector.unwrap_or_default()),
        };
        let key = SetKey { scope, selector, named_ports: Some(NamedPorts { protocol, names }), service: None };
        let [v4, v6] = add(key);
        compiled.named_port_set = Some(v4);
        compiled.named_port_set6 = Some(v6);
    }
    Ok(compiled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use gingham_crds::api::common::{Port, Protocol};
    use gingham_crds::api::policy::{Action, PolicyType};

    use super::*;

    fn view<'a>(scope: PolicyScope<'a>, ingress: &'a [PolicyRule]) -> PolicyView<'a> {
        PolicyView {
            tier: "default",
            order: None,
            selector: Some("app == 'web'"),
            service_account_selector: None,
            scope,
            types: vec![PolicyType::Ingress],
            ingress,
            egress: &[],
        }
    }

    fn rule(source: EntityRule, destination: EntityRule) -> PolicyRule {
        PolicyRule {
            action: Action::Allow,
            protocol: Some(Protocol::named("TCP")),
            source: Some(source),
            destination: Some(destination),
            ..PolicyRule::default()
        }
    }

    #[test]
    fn selectors_are_scoped_the_calico_way() {
        let side = |selector: Option<&str>, ns: Option<&str>| EntityRule {
            selector: selector.map(Into::into),
            namespace_selector: ns.map(Into::into),
            ..EntityRule::default()
        };
        let ns = || Scope::Namespace("shop".into());
        let cases: Vec<(&str, PolicyScope, EntityRule, Option<Scope>)> = vec![
            (
                "namespaced selector stays home",
                PolicyScope::Namespace("shop"),
                side(Some("a == 'b'"), None),
                Some(ns()),
            ),
            (
                "global selector is everywhere",
                PolicyScope::NamespaceSelector(None),
                side(Some("a == 'b'"), None),
                Some(Scope::Everywhere),
            ),
            (
                "namespaceSelector picks namespaces",
                PolicyScope::Namespace("shop"),
                side(None, Some("env == 'x'")),
                Some(Scope::Namespaces("env == 'x'".parse().unwrap())),
            ),
            (
                "namespaceSelector all() is every namespace (not GlobalNetworkSets)",
                PolicyScope::Namespace("shop"),
                side(None, Some("all()")),
                Some(Scope::Namespaces("all()".parse().unwrap())),
            ),
            ("no selector: no set", PolicyScope::Namespace("shop"), side(None, None), None),
        ];
        for (case, scope, source, expected) in cases {
            let rules = [rule(source, EntityRule::default())];
            let (template, problems) = compile_policy("p", &view(scope, &rules));
            assert!(problems.is_empty(), "{case}");
            assert_eq!(template.sets.iter().next().map(|k| k.scope.clone()), expected, "{case}");
            assert_eq!(template.policy.ingress[0].source.sets.len(), 2 * usize::from(expected.is_some()), "{case}");
        }
    }

    #[test]
    fn ports_protocols_and_nets_compile() {
        let destination = EntityRule {
            ports: Some(vec![
                Port::number(80),
                Port(gingham_crds::api::IntOrString::String("8000:8080".into())),
                Port::named("http"),
            ]),
            not_ports: Some(vec![Port::number(8001)]),
            ..EntityRule::default()
        };
        let source = EntityRule {
            nets: Some(vec!["10.0.0.0/8".into()]),
            not_nets: Some(vec!["10.1.0.0/16".into()]),
            ..EntityRule::default()
        };
        let rules = [rule(source, destination)];
        let (template, _) = compile_policy("shop/p", &view(PolicyScope::Namespace("shop"), &rules));
        let compiled = &template.policy.ingress[0];
        assert_eq!(compiled.protocol, Some(6));
        assert_eq!(compiled.source.nets, ["10.0.0.0/8"]);
        assert_eq!(compiled.source.not_nets, ["10.1.0.0/16"]);
        assert_eq!(
            compiled.destination.ports,
            [PortRange { first: 80, last: 80 }, PortRange { first: 8000, last: 8080 }]
        );
        assert_eq!(compiled.destination.not_ports, [PortRange { first: 8001, last: 8001 }]);
        let named = template.sets.iter().find(|k| k.named_ports.is_some()).unwrap();
        assert_eq!(named.scope, Scope::Namespace("shop".into()), "the local side of a namespaced policy stays home");
        assert_eq!(named.selector.to_string(), r#"app == "web""#, "and is narrowed to the policy's own endpoints");
        assert_eq!(compiled.destination.named_port_set, Some(named.name(IpFamily::IPv4)));
        assert_eq!(compiled.destination.named_port_set6, Some(named.name(IpFamily::IPv6)));
    }

    #[test]
    fn named_port_sets_are_scoped_like_the_side_selector() {
        let named = |selector: Option<&str>, ns: Option<&str>| EntityRule {
            selector: selector.map(Into::into),
            namespace_selector: ns.map(Into::into),
            ports: Some(vec![Port::named("http")]),
            ..EntityRule::default()
        };
        let own = (Scope::Namespace("shop".into()), r#"app == "web""#);
        let cases = [
            ("egress, no peer: every endpoint anywhere", false, named(None, None), (Scope::Everywhere, "all()")),
            (
                "egress, ipBlock: every endpoint anywhere (the nets narrow it)",
                false,
                EntityRule { nets: Some(vec!["10.0.0.0/8".into()]), ..named(None, None) },
                (Scope::Everywhere, "all()"),
            ),
            (
                "egress, selector: the policy's namespace",
                false,
                named(Some("a == 'b'"), None),
                (own.0.clone(), r#"a == "b""#),
            ),
            (
                "egress, namespaceSelector: those namespaces",
                false,
                named(None, Some("env == 'x'")),
                (Scope::Namespaces("env == 'x'".parse().unwrap()), "all()"),
            ),
            ("ingress, no selector: the policy's own endpoints", true, named(None, None), own.clone()),
        ];
        for (case, ingress, side, (scope, selector)) in cases {
            let rules = [rule(EntityRule::default(), side)];
            let mut policy = view(PolicyScope::Namespace("shop"), &[]);
            if ingress {
                policy.ingress = &rules;
            } else {
                policy.egress = &rules;
            }
            let (template, problems) = compile_policy("shop/p", &policy);
            assert!(problems.is_empty(), "{case}: {problems:?}");
            let key = template.sets.iter().find(|k| k.named_ports.is_some()).expect(case);
            assert_eq!((&key.scope, key.selector.to_string().as_str()), (&scope, selector), "{case}");
        }
    }

    #[test]
    fn what_cannot_be_expressed_is_left_out_and_reported() {
        let named_not = rule(
            EntityRule::default(),
            EntityRule { not_ports: Some(vec![Port::named("http")]), ..EntityRule::default() },
        );
        let rules = [named_not, PolicyRule::default()];
        let (template, problems) = compile_policy("p", &view(PolicyScope::Namespace("a"), &rules));
        assert_eq!(template.policy.ingress.len(), 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn rules_keep_their_family_and_icmp_says_which() {
        use gingham_crds::api::policy::IcmpFields;
        let icmp = |protocol: &str, version: Option<u8>| PolicyRule {
            action: Action::Allow,
            ip_version: version,
            protocol: Some(Protocol::named(protocol)),
            icmp: Some(IcmpFields { type_: Some(128), code: Some(0) }),
            ..PolicyRule::default()
        };
        let nets = PolicyRule {
            action: Action::Deny,
            source: Some(EntityRule { nets: Some(vec!["fd00:1::/64".into()]), ..EntityRule::default() }),
            ..PolicyRule::default()
        };
        let rules = [
            icmp("ICMPv6", Some(6)),
            icmp("ICMP", None),
            nets,
            PolicyRule { ip_version: Some(4), ..PolicyRule::default() },
        ];
        let (template, problems) = compile_policy("p", &view(PolicyScope::Namespace("a"), &rules));
        assert!(problems.is_empty(), "{problems:?}");
        let compiled = &template.policy.ingress;
        assert_eq!(compiled.len(), 4, "no rule of either family is left out");
        assert_eq!(compiled[0].ip_version, Some(IpFamily::IPv6));
        assert_eq!(compiled[0].icmp, Some(IcmpMatch { protocol: IcmpProtocol::ICMPv6, type_: 128, code: Some(0) }));
        assert_eq!(
            (compiled[1].ip_version, compiled[1].icmp.as_ref().map(|i| i.protocol)),
            (None, Some(IcmpProtocol::ICMP))
        );
        assert_eq!((compiled[2].ip_version, compiled[2].source.nets.clone()), (None, vec![Wire::new("fd00:1::/64")]));
        assert_eq!(compiled[3].ip_version, Some(IpFamily::IPv4));
    }

    #[test]
    fn a_selector_names_its_set_of_each_family() {
        let side = EntityRule {
            selector: Some("role == 'db'".into()),
            not_selector: Some("x == 'y'".into()),
            ..EntityRule::default()
        };
        let rules = [rule(side, EntityRule::default())];
        let (template, _) = compile_policy("shop/p", &view(PolicyScope::Namespace("shop"), &rules));
        let source = &template.policy.ingress[0].source;
        let key = template.sets.iter().find(|k| k.selector.to_string() == r#"role == "db""#).unwrap();
        assert_eq!(source.sets, [key.name(IpFamily::IPv4), key.name(IpFamily::IPv6)]);
        assert_eq!(source.not_sets.len(), 2);
        assert!(source.sets[1].starts_with("gs6_") && source.not_sets[1].starts_with("gs6_"));
    }
}
