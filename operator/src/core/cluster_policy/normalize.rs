//! Each network-policy-api kind read into one [`ClusterPolicy`], with every problem the API
//! server's schema and CEL rules would have refused reported with its field path (the file
//! datastore has no schema). What cannot be matched fails closed, as the API says.

use gingham_crds::api::policy::Action;
use gingham_crds::manifest::Manifest;
use gingham_crds::netpolapi::v1alpha1::{
    self, AdminNetworkPolicy, BASELINE_NAME, BaselineAdminNetworkPolicy, PolicyPort,
};
use gingham_crds::netpolapi::v1alpha2::{self, ClusterNetworkPolicy, ProtocolMatch};
use gingham_crds::netpolapi::{Peer as ApiPeer, PortRange, Subject as ApiSubject};
use ipnet::IpNet;

use super::{BANP_ORDER, ClusterPolicy, KubeTier, Peer, PortMatch, Rule, SourceKind, Subject};
use crate::core::ObjectProblem;

/// The highest priority value.
const MAX_PRIORITY: i32 = 1000;
/// The longest rule name.
const MAX_RULE_NAME: usize = 100;
/// The most CIDRs in one `networks` peer.
const MAX_NETWORKS: usize = 25;

/// The per-version limits on list lengths.
#[derive(Clone, Copy)]
struct Limits {
    rules: usize,
    peers: usize,
    ports: usize,
}

const V1ALPHA2: Limits = Limits { rules: 25, peers: 25, ports: 25 };
const V1ALPHA1: Limits = Limits { rules: 100, peers: 100, ports: 100 };

/// Collects problems about one object.
struct Report<'a> {
    kind: SourceKind,
    name: &'a str,
    problems: Vec<ObjectProblem>,
}

impl Report<'_> {
    fn add(&mut self, field: &str, message: &str) {
        self.problems.push(ObjectProblem {
            kind: format!("{}.policy.networking.k8s.io", self.kind.kind()),
            namespace: None,
            name: self.name.to_string(),
            reason: "InvalidPolicy".into(),
            message: format!("{field}: {message}"),
        });
    }

    fn limit(&mut self, field: &str, count: usize, most: usize) {
        if count > most {
            self.add(field, &format!("{count} items, at most {most} are allowed (translated anyway)"));
        }
    }
}

/// The problems of a manifest of one of the three kinds, as the operator would report them
/// (none for other kinds): what `gingham-operator validate` adds to the schema's checks.
pub fn check_cluster_policy(manifest: &Manifest) -> Vec<ObjectProblem> {
    match manifest {
        Manifest::ClusterNetworkPolicy(o) => from_cnp(o).1,
        Manifest::AdminNetworkPolicy(o) => from_anp(o).1,
        Manifest::BaselineAdminNetworkPolicy(o) => from_banp(o).1,
        _ => Vec::new(),
    }
}

/// A ClusterNetworkPolicy; `None` when it cannot apply at all (problems say why).
pub fn from_cnp(cnp: &ClusterNetworkPolicy) -> (Option<ClusterPolicy>, Vec<ObjectProblem>) {
    let name = cnp.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report { kind: SourceKind::ClusterNetworkPolicy, name, problems: Vec::new() };
    let spec = &cnp.spec;
    let tier = match spec.tier {
        v1alpha2::Tier::Admin => KubeTier::Admin,
        v1alpha2::Tier::Baseline => KubeTier::Baseline,
    };
    let action = |action: v1alpha2::Action| match action {
        v1alpha2::Action::Accept => Action::Allow,
        v1alpha2::Action::Deny => Action::Deny,
        v1alpha2::Action::Pass => Action::Pass,
    };
    let order = priority(spec.priority, &mut report);
    let subject = subject(&spec.subject, &mut report);
    report.limit("spec.ingress", spec.ingress.len(), V1ALPHA2.rules);
    report.limit("spec.egress", spec.egress.len(), V1ALPHA2.rules);
    let ingress = spec
        .ingress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ports = r.protocols.as_deref().map(|p| (p, protocol_ports as PortReader<ProtocolMatch>));
            rule(
                &format!("spec.ingress[{i}]"),
                &r.name,
                action(r.action),
                "from",
                &r.from,
                ports,
                true,
                V1ALPHA2,
                &mut report,
            )
        })
        .collect();
    let egress = spec
        .egress
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ports = r.protocols.as_deref().map(|p| (p, protocol_ports as PortReader<ProtocolMatch>));
            rule(
                &format!("spec.egress[{i}]"),
                &r.name,
                action(r.action),
                "to",
                &r.to,
                ports,
                false,
                V1ALPHA2,
                &mut report,
            )
        })
        .collect();
    let policy = subject.map(|subject| ClusterPolicy {
        kind: SourceKind::ClusterNetworkPolicy,
        name: name.to_string(),
        uid: cnp.metadata.uid.clone(),
        tier,
        order,
        subject,
        ingress,
        egress,
    });
    (policy, report.problems)
}

/// An AdminNetworkPolicy; `None` when it cannot apply at all (problems say why).
pub fn from_anp(anp: &AdminNetworkPolicy) -> (Option<ClusterPolicy>, Vec<ObjectProblem>) {
    let name = anp.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report { kind: SourceKind::AdminNetworkPolicy, name, problems: Vec::new() };
    let order = priority(anp.spec.priority, &mut report);
    let subject = subject(&anp.spec.subject, &mut report);
    let (ingress, egress) = v1alpha1_rules(&anp.spec.ingress, &anp.spec.egress, true, &mut report);
    let policy = subject.map(|subject| ClusterPolicy {
        kind: SourceKind::AdminNetworkPolicy,
        name: name.to_string(),
        uid: anp.metadata.uid.clone(),
        tier: KubeTier::Admin,
        order,
        subject,
        ingress,
        egress,
    });
    (policy, report.problems)
}

/// A BaselineAdminNetworkPolicy; `None` when it cannot apply at all (one not named `default`,
/// which the API server refuses, or one without a subject).
pub fn from_banp(banp: &BaselineAdminNetworkPolicy) -> (Option<ClusterPolicy>, Vec<ObjectProblem>) {
    let name = banp.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report { kind: SourceKind::BaselineAdminNetworkPolicy, name, problems: Vec::new() };
    if name != BASELINE_NAME {
        report.add(
            "metadata.name",
            "only one BaselineAdminNetworkPolicy, named \"default\", can exist; this one is not applied",
        );
        return (None, report.problems);
    }
    let subject = subject(&banp.spec.subject, &mut report);
    let (ingress, egress) = v1alpha1_rules(&banp.spec.ingress, &banp.spec.egress, false, &mut report);
    let policy = subject.map(|subject| ClusterPolicy {
        kind: SourceKind::BaselineAdminNetworkPolicy,
        name: name.to_string(),
        uid: banp.metadata.uid.clone(),
        tier: KubeTier::Baseline,
        order: BANP_ORDER,
        subject,
        ingress,
        egress,
    });
    (policy, report.problems)
}

fn v1alpha1_rules(
    ingress: &[v1alpha1::Rule],
    egress: &[v1alpha1::Rule],
    pass_allowed: bool,
    report: &mut Report<'_>,
) -> (Vec<Rule>, Vec<Rule>) {
    let read = |rules: &[v1alpha1::Rule], direction: &str, report: &mut Report<'_>| -> Vec<Rule> {
        report.limit(&format!("spec.{direction}"), rules.len(), V1ALPHA1.rules);
        let is_ingress = direction == "ingress";
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("spec.{direction}[{i}]");
                let (peers_field, peers) = if is_ingress { ("from", &r.from) } else { ("to", &r.to) };
                let other = if is_ingress { &r.to } else { &r.from };
                if !other.is_empty() {
                    let wrong = if is_ingress { "to" } else { "from" };
                    report.add(&format!("{field}.{wrong}"), &format!("an {direction} rule has no {wrong:?}; ignored"));
                }
                let (action, pass_refused) = match r.action {
                    v1alpha1::Action::Allow => (Action::Allow, false),
                    v1alpha1::Action::Deny => (Action::Deny, false),
                    v1alpha1::Action::Pass if pass_allowed => (Action::Pass, false),
                    v1alpha1::Action::Pass => (Action::Deny, true),
                };
                if pass_refused {
                    report.add(
                        &format!("{field}.action"),
                        "a BaselineAdminNetworkPolicy rule is Allow or Deny, not Pass; the rule denies (fail closed)",
                    );
                }
                let ports = r.ports.as_deref().map(|p| (p, policy_port as PortReader<PolicyPort>));
                rule(&field, &r.name, action, peers_field, peers, ports, is_ingress, V1ALPHA1, report)
            })
            .collect()
    };
    let ingress = read(ingress, "ingress", report);
    let egress = read(egress, "egress", report);
    (ingress, egress)
}

fn priority(priority: i32, report: &mut Report<'_>) -> f64 {
    if !(0..=MAX_PRIORITY).contains(&priority) {
        report.add("spec.priority", &format!("{priority} is outside 0 to {MAX_PRIORITY} (used as given)"));
    }
    f64::from(priority)
}

fn subject(subject: &ApiSubject, report: &mut Report<'_>) -> Option<Subject> {
    match (&subject.namespaces, &subject.pods) {
        (Some(namespaces), None) => Some(Subject::Namespaces(namespaces.clone())),
        (None, Some(pods)) => Some(Subject::Pods(pods.clone())),
        _ => {
            report.add("spec.subject", "set exactly one of namespaces and pods; the policy is not applied");
            None
        }
    }
}

/// Reads one entry of a port list into a port match, or says what is wrong with it.
type PortReader<T> = fn(&T) -> Result<PortMatch, String>;

#[allow(clippy::too_many_arguments)]
fn rule<T>(
    field: &str,
    name: &str,
    action: Action,
    peers_field: &str,
    peers: &[ApiPeer],
    ports: Option<(&[T], PortReader<T>)>,
    ingress: bool,
    limits: Limits,
    report: &mut Report<'_>,
) -> Rule {
    let mut unusable = false;
    if name.chars().count() > MAX_RULE_NAME {
        report.add(&format!("{field}.name"), &format!("longer than {MAX_RULE_NAME} characters (used anyway)"));
    }
    if peers.is_empty() {
        report.add(&format!("{field}.{peers_field}"), "list at least one peer; the rule fails closed");
        unusable = true;
    }
    report.limit(&format!("{field}.{peers_field}"), peers.len(), limits.peers);
    let mut read_peers = Vec::new();
    for (j, peer) in peers.iter().enumerate() {
        match read_peer(peer, ingress) {
            Ok(peer) => read_peers.push(peer),
            Err(message) => {
                report.add(&format!("{field}.{peers_field}[{j}]"), &format!("{message}; the rule fails closed"));
                unusable = true;
            }
        }
    }
    let ports = ports.map(|(list, read)| {
        report.limit(&format!("{field}.ports"), list.len(), limits.ports);
        list.iter()
            .enumerate()
            .filter_map(|(k, port)| match read(port) {
                Ok(port) => Some(port),
                Err(message) => {
                    report.add(&format!("{field}.ports[{k}]"), &format!("{message}; the rule fails closed"));
                    unusable = true;
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let named = ports.iter().flatten().any(|p| matches!(p, PortMatch::Named(_)));
    if named && read_peers.iter().any(|p| matches!(p, Peer::Nodes(_) | Peer::Networks(_))) {
        report.add(field, "networks and nodes peers have no named ports; the rule fails closed");
        unusable = true;
    }
    Rule { name: name.to_string(), action, peers: read_peers, ports, unusable }
}

fn read_peer(peer: &ApiPeer, ingress: bool) -> Result<Peer, String> {
    let set = [
        peer.namespaces.is_some(),
        peer.pods.is_some(),
        peer.nodes.is_some(),
        peer.networks.is_some(),
        peer.domain_names.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err("set exactly one of namespaces, pods, nodes, networks and domainNames".into());
    }
    if ingress && (peer.nodes.is_some() || peer.networks.is_some() || peer.domain_names.is_some()) {
        return Err("ingress peers are namespaces or pods".into());
    }
    if peer.domain_names.is_some() {
        return Err("domainNames peers are not supported by gingham".into());
    }
    if let Some(selector) = &peer.namespaces {
        return Ok(Peer::Namespaces(selector.clone()));
    }
    if let Some(pods) = &peer.pods {
        return Ok(Peer::Pods(pods.clone()));
    }
    if let Some(selector) = &peer.nodes {
        return Ok(Peer::Nodes(selector.clone()));
    }
    let networks = peer.networks.clone().unwrap_or_default();
    if networks.is_empty() || networks.len() > MAX_NETWORKS {
        return Err(format!("networks lists 1 to {MAX_NETWORKS} CIDRs"));
    }
    for (k, cidr) in networks.iter().enumerate() {
        cidr.parse::<IpNet>().map_err(|_| format!("networks[{k}] {cidr:?} is not a CIDR such as 10.0.0.0/8"))?;
    }
    Ok(Peer::Networks(networks))
}

fn port_number(port: i32) -> Result<u16, String> {
    u16::try_from(port).ok().filter(|p| *p >= 1).ok_or_else(|| format!("port {port} is outside 1 to 65535"))
}

fn range(range: &PortRange, protocol: String) -> Result<PortMatch, String> {
    let (first, last) = (port_number(range.start)?, port_number(range.end)?);
    if first >= last {
        return Err(format!("range start {first} must be below end {last}"));
    }
    Ok(PortMatch::Ports(protocol, first, last))
}

fn protocol_name(protocol: Option<&str>) -> Result<String, String> {
    match protocol.unwrap_or("TCP") {
        p @ ("TCP" | "UDP" | "SCTP") => Ok(p.to_string()),
        other => Err(format!("protocol {other:?} is not TCP, UDP or SCTP")),
    }
}

/// A v1alpha2 protocol match.
fn protocol_ports(protocol: &ProtocolMatch) -> Result<PortMatch, String> {
    let by_protocol = [("TCP", &protocol.tcp), ("UDP", &protocol.udp), ("SCTP", &protocol.sctp)];
    let set = by_protocol.iter().filter(|(_, p)| p.is_some()).count()
        + usize::from(protocol.destination_named_port.is_some());
    if set != 1 {
        return Err("set exactly one of tcp, udp, sctp and destinationNamedPort".into());
    }
    if let Some(name) = &protocol.destination_named_port {
        return Ok(PortMatch::Named(name.clone()));
    }
    let Some((name, Some(ports))) = by_protocol.into_iter().find(|(_, p)| p.is_some()) else {
        return Err("set exactly one of tcp, udp, sctp and destinationNamedPort".into());
    };
    let Some(port) = &ports.destination_port else { return Ok(PortMatch::Protocol(name.to_string())) };
    match (port.number, &port.range) {
        (Some(number), None) => port_number(number).map(|p| PortMatch::Ports(name.to_string(), p, p)),
        (None, Some(r)) => range(r, name.to_string()),
        _ => Err("destinationPort sets exactly one of number and range".into()),
    }
}

/// A v1alpha1 port.
fn policy_port(port: &PolicyPort) -> Result<PortMatch, String> {
    match (&port.port_number, &port.named_port, &port.port_range) {
        (Some(number), None, None) => {
            let protocol = protocol_name(number.protocol.as_deref())?;
            port_number(number.port).map(|p| PortMatch::Ports(protocol, p, p))
        }
        (None, Some(name), None) => Ok(PortMatch::Named(name.clone())),
        (None, None, Some(r)) => range(r, protocol_name(r.protocol.as_deref())?),
        _ => Err("set exactly one of portNumber, namedPort and portRange".into()),
    }
}
