//! Selector memberships as named sets: what a set means ([`SetKey`]), its nftables-safe names
//! (one per family: a key is carried as an IPv4 set and an IPv6 set), and which members an
//! endpoint contributes to it (a dual-stack pod brings an address of each family) and a network
//! set (its nets).
//!
//! Scoping follows libcalico-go's `getEndpointSelector`: a rule's namespace selector becomes a
//! selector over the endpoint's namespace labels in which `all()` means "namespaced" and
//! `global()` "not namespaced"; a GlobalNetworkSet has no namespace (and so no namespace labels).
//! A rule without `namespaceSelector` stays in a namespaced policy's namespace and is unscoped in
//! a global one (pods and NetworkSets of every namespace, and GlobalNetworkSets).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gingham_crds::api::nodenetwork::{IpSet, IpSetKind};
use gingham_crds::api::{IpFamily, IpProtocol, IpSetMember, Net, SetMember, Wire};
use gingham_crds::selector::{Expr, Selector};

use crate::core::facts::{LabelList, PodFacts};
use crate::core::netsets::NetSetFacts;

/// Where a set's endpoints may live.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One namespace (a namespaced policy's rule without `namespaceSelector`).
    Namespace(String),
    /// The namespaces whose labels match a rule's `namespaceSelector` (`all()`: every namespace),
    /// and, where the selector says `global()`, the non-namespaced resources.
    Namespaces(Selector),
    /// Every namespace and every non-namespaced resource (a global policy's rule without
    /// `namespaceSelector`).
    Everywhere,
}

impl Scope {
    /// Whether an endpoint in `namespace` (with those namespace labels) is in scope.
    pub fn contains(&self, namespace: &str, namespace_labels: &BTreeMap<String, String>) -> bool {
        match self {
            Scope::Namespace(ns) => ns == namespace,
            Scope::Namespaces(selector) => namespace_selector_matches(selector, namespace_labels),
            Scope::Everywhere => true,
        }
    }

    /// Whether a non-namespaced resource (a GlobalNetworkSet) is in scope.
    pub fn contains_global(&self) -> bool {
        match self {
            Scope::Namespace(_) => false,
            Scope::Namespaces(selector) => in_namespace_scope(selector.expr(), None),
            Scope::Everywhere => true,
        }
    }
}

/// A namespace selector over the labels of a namespace.
pub fn namespace_selector_matches(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    in_namespace_scope(selector.expr(), Some(labels))
}

/// A namespace selector against a resource's namespace labels (`None`: it is not namespaced), as
/// Calico rewrites it: `all()` is `has(projectcalico.org/namespace)`, `global()` its negation, and
/// label terms look at the namespace's labels, which a non-namespaced resource has none of.
fn in_namespace_scope(expr: &Expr, labels: Option<&BTreeMap<String, String>>) -> bool {
    match expr {
        Expr::All => labels.is_some(),
        Expr::Global => labels.is_none(),
        Expr::Not(inner) => !in_namespace_scope(inner, labels),
        Expr::And(left, right) => in_namespace_scope(left, labels) && in_namespace_scope(right, labels),
        Expr::Or(left, right) => in_namespace_scope(left, labels) || in_namespace_scope(right, labels),
        term => term.matches(labels.unwrap_or(&BTreeMap::new())),
    }
}

/// Named ports a set matches: an optional protocol and the port names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPorts {
    /// The rule's protocol; `None`: any protocol.
    pub protocol: Option<u8>,
    /// The port names.
    pub names: BTreeSet<String>,
}

/// A Kubernetes Service whose endpoints a set holds (a rule's `services` match).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceSet {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// `address,protocol,port` members (a destination match: the service's ports too), rather
    /// than addresses (a source match).
    pub ports: bool,
}

/// What a set means: the endpoints in `scope` matching `selector` (their addresses), or with
/// `named_ports` their `address,protocol,port` triples; or, with `service`, a Service's
/// endpoints (from its EndpointSlices; `scope` and `selector` are then `Everywhere` and `all()`
/// and no pod contributes). Equal keys share one set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetKey {
    /// Where members may live.
    pub scope: Scope,
    /// Which endpoints there are members.
    pub selector: Selector,
    /// For named-port sets: which ports.
    pub named_ports: Option<NamedPorts>,
    /// For service sets: which service.
    pub service: Option<ServiceSet>,
}

/// FNV-1a, 64-bit: stable across platforms and versions.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

impl SetKey {
    /// The canonical text of the key (what the name hashes).
    fn canonical(&self) -> String {
        let scope = match &self.scope {
            Scope::Namespace(ns) => format!("ns={ns}"),
            Scope::Namespaces(selector) => format!("nssel={selector}"),
            Scope::Everywhere => "all".into(),
        };
        let ports = match &self.named_ports {
            Some(p) => format!("|ports={:?}:{}", p.protocol, p.names.iter().cloned().collect::<Vec<_>>().join(",")),
            None => String::new(),
        };
        let service = match &self.service {
            Some(s) => format!("|svc={}/{}:{}", s.namespace, s.name, if s.ports { "ports" } else { "addresses" }),
            None => String::new(),
        };
        format!("{scope}|{}{ports}{service}", self.selector)
    }

    /// A set of a Service's endpoints.
    pub fn service(namespace: &str, name: &str, ports: bool) -> Self {
        let service = ServiceSet { namespace: namespace.into(), name: name.into(), ports };
        Self { scope: Scope::Everywhere, selector: Selector::all(), named_ports: None, service: Some(service) }
    }

    /// The name of the key's set of `family`: `gs` (addresses) or `gp` (named ports), `6` for
    /// IPv6, `_` and 16 hex digits of a hash of the key (`gs_…`, `gs6_…`). At most 20 characters of
    /// `[a-z0-9_]`, safe for nftables and deterministic; the IPv4 names are those of before
    /// dual-stack.
    pub fn name(&self, family: IpFamily) -> String {
        let prefix = match self.kind() {
            IpSetKind::AddressPorts => "gp",
            IpSetKind::Addresses => "gs",
        };
        let family = match family {
            IpFamily::IPv4 => "",
            IpFamily::IPv6 => "6",
        };
        format!("{prefix}{family}_{:016x}", fnv1a(&self.canonical()))
    }

    /// What the set holds.
    pub fn kind(&self) -> IpSetKind {
        let service_ports = self.service.as_ref().is_some_and(|s| s.ports);
        if self.named_ports.is_some() || service_ports { IpSetKind::AddressPorts } else { IpSetKind::Addresses }
    }

    /// The members one endpoint with `addresses` contributes: none when it is out of scope or
    /// does not match.
    pub fn members(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        facts: &PodFacts,
        addresses: &[IpAddr],
    ) -> Vec<IpSetMember> {
        if !self.matches(namespace, namespace_labels, &facts.labels) {
            return Vec::new();
        }
        self.members_of_match(facts, addresses)
    }

    /// Whether an endpoint in `namespace` (with those namespace labels) whose pod carries `labels`
    /// is in scope and matches the selector (never for a service set: its members come from
    /// EndpointSlices).
    pub fn matches(&self, namespace: &str, namespace_labels: &BTreeMap<String, String>, labels: &LabelList) -> bool {
        self.service.is_none() && self.scope.contains(namespace, namespace_labels) && self.selector.matches(labels)
    }

    /// The members an endpoint that [`SetKey::matches`] contributes: each of its addresses (one
    /// per family), or with named ports, each address with each of its ports the set names.
    pub fn members_of_match(&self, facts: &PodFacts, addresses: &[IpAddr]) -> Vec<IpSetMember> {
        match &self.named_ports {
            None => addresses.iter().map(|address| IpSetMember::Address(Net::from(*address))).collect(),
            Some(wanted) => addresses
                .iter()
                .flat_map(|address| {
                    facts
                        .named_ports
                        .iter()
                        .filter(|p| {
                            wanted.names.contains(&p.name) && wanted.protocol.is_none_or(|proto| proto == p.protocol)
                        })
                        .filter_map(|p| {
                            let proto = IpProtocol::from_number(p.protocol).filter(|proto| proto.supports_ports())?;
                            Some(IpSetMember::Port(SetMember { addr: *address, proto, port: p.port }))
                        })
                })
                .collect(),
        }
    }

    /// The members a network set contributes: its nets when it is in scope, matches the selector
    /// and the key is no named-port set (network sets have no ports). `namespace_labels` are
    /// those of its namespace (unused for a GlobalNetworkSet).
    pub fn net_members(&self, set: &NetSetFacts, namespace_labels: &BTreeMap<String, String>) -> Vec<IpSetMember> {
        let in_scope = match &set.namespace {
            Some(namespace) => self.scope.contains(namespace, namespace_labels),
            None => self.scope.contains_global(),
        };
        if self.named_ports.is_some() || !in_scope || !self.selector.matches(&set.labels) {
            return Vec::new();
        }
        set.nets.iter().map(|net| IpSetMember::Address(*net)).collect()
    }

    /// The key's set of `family` holding `members` (those of the family; the others are left
    /// out), as nodes carry it.
    pub fn view<'a>(&self, family: IpFamily, members: impl IntoIterator<Item = &'a IpSetMember>) -> IpSet {
        IpSet {
            name: self.name(family),
            family,
            kind: self.kind(),
            members: members.into_iter().filter(|m| m.family() == family).map(|m| Wire::from(*m)).collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::core::facts::NamedPort;

    fn key(scope: Scope, selector: &str, ports: Option<(Option<u8>, &[&str])>) -> SetKey {
        SetKey {
            scope,
            selector: selector.parse().unwrap(),
            named_ports: ports.map(|(protocol, names)| NamedPorts {
                protocol,
                names: names.iter().map(|n| (*n).to_string()).collect(),
            }),
            service: None,
        }
    }

    #[test]
    fn names_are_short_safe_stable_and_distinct() {
        let a = key(Scope::Namespace("prod".into()), "app == 'web'", None);
        let b = key(Scope::Namespace("dev".into()), "app == 'web'", None);
        let p = key(Scope::Everywhere, "all()", Some((Some(6), &["http"])));
        for set in [&a, &b, &p] {
            for (family, length) in [(IpFamily::IPv4, 19), (IpFamily::IPv6, 20)] {
                let name = set.name(family);
                assert_eq!(name.len(), length);
                assert!(name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'), "{name}");
            }
        }
        let v4 = IpFamily::IPv4;
        assert_eq!(a.name(v4), key(Scope::Namespace("prod".into()), "app=='web'", None).name(v4));
        assert_ne!(a.name(v4), b.name(v4));
        assert!(p.name(v4).starts_with("gp_"));
        assert_eq!(p.name(IpFamily::IPv6).replacen("gp6_", "gp_", 1), p.name(v4), "one hash, two families");
    }

    #[test]
    fn membership_follows_scope_selector_and_ports() {
        let facts = PodFacts {
            labels: [("app".to_string(), "web".to_string())].into_iter().collect(),
            named_ports: vec![NamedPort { name: "http".into(), protocol: 6, port: 8080 }],
            node: None,
            uid: None,
            pool_annotations: [None, None],
            service_account: None,
        };
        let prod = BTreeMap::from([("env".into(), "prod".into())]);
        let cases = [
            (key(Scope::Namespace("a".into()), "app == 'web'", None), "a", vec!["10.0.0.1"]),
            (key(Scope::Namespace("b".into()), "app == 'web'", None), "a", vec![]),
            (key(Scope::Namespaces("env == 'prod'".parse().unwrap()), "all()", None), "a", vec!["10.0.0.1"]),
            (key(Scope::Namespaces("global()".parse().unwrap()), "all()", None), "a", vec![]),
            (key(Scope::Everywhere, "app == 'db'", None), "a", vec![]),
            (key(Scope::Everywhere, "all()", Some((Some(6), &["http"]))), "a", vec!["10.0.0.1,tcp,8080"]),
            (key(Scope::Everywhere, "all()", Some((Some(17), &["http"]))), "a", vec![]),
            (key(Scope::Everywhere, "all()", Some((None, &["http", "dns"]))), "a", vec!["10.0.0.1,tcp,8080"]),
        ];
        for (set, namespace, expected) in cases {
            let members = set.members(namespace, &prod, &facts, &[[10, 0, 0, 1].into()]);
            assert_eq!(members.iter().map(ToString::to_string).collect::<Vec<_>>(), expected, "{set:?}");
        }
    }

    #[test]
    fn a_dual_stack_endpoint_is_in_the_set_of_each_family() {
        let facts = PodFacts {
            labels: [("app".to_string(), "web".to_string())].into_iter().collect(),
            named_ports: vec![NamedPort { name: "http".into(), protocol: 6, port: 8080 }],
            node: None,
            uid: None,
            pool_annotations: [None, None],
            service_account: None,
        };
        let addresses: [IpAddr; 2] = [[10, 0, 0, 1].into(), "fd00::1".parse().unwrap()];
        for (set, v4, v6) in [
            (key(Scope::Everywhere, "app == 'web'", None), vec!["10.0.0.1"], vec!["fd00::1"]),
            (
                key(Scope::Everywhere, "all()", Some((Some(6), &["http"]))),
                vec!["10.0.0.1,tcp,8080"],
                vec!["fd00::1,tcp,8080"],
            ),
        ] {
            let members = set.members("a", &BTreeMap::new(), &facts, &addresses);
            let view = |family| {
                let view = set.view(family, &members);
                assert_eq!((view.family, view.name), (family, set.name(family)));
                view.members.iter().map(ToString::to_string).collect::<Vec<_>>()
            };
            let strings = |list: Vec<&str>| list.into_iter().map(String::from).collect::<Vec<_>>();
            assert_eq!((view(IpFamily::IPv4), view(IpFamily::IPv6)), (strings(v4), strings(v6)), "{set:?}");
        }
    }
}
