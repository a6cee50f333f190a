//! A [`ClusterPolicy`] → a GlobalNetworkPolicy in its tier, owned by the source object.
//!
//! | network-policy-api | gingham |
//! |---|---|
//! | subject `namespaces` | `namespaceSelector`, `selector: all()` |
//! | subject `pods` | `namespaceSelector` and `selector` |
//! | no ingress (egress) rules | the direction is left out of `types`: the policy does not affect it |
//! | a rule's peers, and its protocols or ports | one rule per peer and protocol, in order, all with the rule's action |
//! | peer `namespaces` | `namespaceSelector` (empty: every namespace): every pod there |
//! | peer `pods` | `namespaceSelector` and `selector` |
//! | peer `networks` | `nets` |
//! | peer `nodes` | `nets`: the addresses of the nodes selected now (none: the peer matches nothing) |
//! | `tcp`/`udp`/`sctp` `destinationPort` `number` or `range`, v1alpha1 `portNumber`/`portRange` | `protocol` and `ports` (`"start:end"`) |
//! | `destinationNamedPort`, v1alpha1 `namedPort` | a named port, of the protocol the container port has |
//! | Accept, Allow / Deny / Pass | Allow / Deny / Pass |
//!
//! A rule that fails closed (see [`super::Rule::unusable`]) is left out when it allows, and
//! becomes an unconditional Deny otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gingham_crds::api::common::{IntOrString, Port, Protocol};
use gingham_crds::api::policy::{Action, EntityRule, PolicyRule, PolicyType, RuleMetadata};
use gingham_crds::api::{GlobalNetworkPolicy, GlobalNetworkPolicySpec};
use gingham_crds::selector::Selector;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::{ClusterPolicy, Peer, PortMatch, Rule, Subject, translated_name};
use crate::core::ObjectProblem;
use crate::core::facts::NodeFacts;
use crate::core::translate::selector_text;

/// The rule annotation carrying the source rule's name.
pub const RULE_NAME_ANNOTATION: &str = "policy.networking.k8s.io/rule-name";

/// What a `nodes` peer can select: a node's labels and addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePeer {
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// The node's addresses: `status.addresses` (InternalIP and ExternalIP), plus the underlay
    /// addresses gingham reads from the node (annotations, as BGP uses them).
    pub addresses: BTreeSet<IpAddr>,
}

impl NodePeer {
    /// Reads a node.
    pub fn of(node: &Node) -> Self {
        let (facts, _) = NodeFacts::from_node(node);
        let mut addresses: BTreeSet<IpAddr> = node
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        addresses.extend(facts.address.map(|a| IpAddr::V4(a.addr())));
        addresses.extend(facts.address6.map(|a| IpAddr::V6(a.addr())));
        Self { labels: facts.labels, addresses }
    }
}

/// The translation's name and, when the policy has rules, its GlobalNetworkPolicy; problems when
/// a selector cannot be expressed (the subject: not applied; a rule: it fails closed).
pub fn translate(
    policy: &ClusterPolicy,
    nodes: &[NodePeer],
) -> (String, Option<GlobalNetworkPolicy>, Vec<ObjectProblem>) {
    let name = translated_name(policy.kind, policy.tier, &policy.name);
    let mut problems = Vec::new();
    let mut report = |field: String, message: String| {
        problems.push(ObjectProblem {
            kind: format!("{}.policy.networking.k8s.io", policy.kind.kind()),
            namespace: None,
            name: policy.name.clone(),
            reason: "UntranslatablePolicy".into(),
            message: format!("{field}: {message}"),
        });
    };
    let subject = match &policy.subject {
        Subject::Namespaces(namespaces) => selector_text(namespaces).map(|ns| ("all()".to_string(), ns)),
        Subject::Pods(pods) => {
            selector_text(&pods.pod_selector).and_then(|pod| Ok((pod, selector_text(&pods.namespace_selector)?)))
        }
    };
    let (selector, namespace_selector) = match subject {
        Ok(pair) => pair,
        Err(message) => {
            report("spec.subject".into(), format!("{message}; the policy is not applied"));
            return (name, None, problems);
        }
    };
    let mut directions = Vec::new();
    for (ingress, rules) in [(true, &policy.ingress), (false, &policy.egress)] {
        let field = if ingress { "spec.ingress" } else { "spec.egress" };
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match rule_set(rule, ingress, nodes) {
                Ok(translated) => out.extend(translated),
                Err(message) => {
                    report(format!("{field}[{i}]"), format!("{message}; the rule fails closed"));
                    out.extend(rule_set(&Rule { unusable: true, ..rule.clone() }, ingress, nodes).unwrap_or_default());
                }
            }
        }
        directions.push((!rules.is_empty()).then_some(out));
    }
    let [ingress, egress]: [Option<Vec<PolicyRule>>; 2] = [directions[0].take(), directions[1].take()];
    if ingress.is_none() && egress.is_none() {
        return (name, None, problems);
    }
    let types = [(PolicyType::Ingress, ingress.is_some()), (PolicyType::Egress, egress.is_some())]
        .into_iter()
        .filter_map(|(t, present)| present.then_some(t))
        .collect();
    let owner = policy.uid.as_ref().map(|uid| OwnerReference {
        api_version: policy.kind.api_version().into(),
        kind: policy.kind.kind().into(),
        name: policy.name.clone(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    let translated = GlobalNetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: GlobalNetworkPolicySpec {
            tier: Some(policy.tier.name().into()),
            order: Some(policy.order),
            selector: Some(selector),
            namespace_selector: Some(namespace_selector),
            types: Some(types),
            ingress,
            egress,
            ..GlobalNetworkPolicySpec::default()
        },
    };
    (name, Some(translated), problems)
}

/// The gingham rules of one rule, in order.
fn rule_set(rule: &Rule, ingress: bool, nodes: &[NodePeer]) -> Result<Vec<PolicyRule>, String> {
    let metadata = (!rule.name.is_empty()).then(|| RuleMetadata {
        annotations: Some(BTreeMap::from([(RULE_NAME_ANNOTATION.to_string(), rule.name.clone())])),
    });
    if rule.unusable {
        return Ok(match rule.action {
            Action::Allow => Vec::new(),
            _ => vec![PolicyRule { action: Action::Deny, metadata, ..PolicyRule::default() }],
        });
    }
    let mut entities = Vec::new();
    for peer in &rule.peers {
        entities.extend(entity(peer, nodes)?);
    }
    let groups: Vec<(Option<Protocol>, Option<Vec<Port>>)> = match &rule.ports {
        None => vec![(None, None)],
        Some(ports) => {
            port_groups(ports).into_iter().map(|(p, ports)| (p.as_deref().map(Protocol::named), ports)).collect()
        }
    };
    let mut out = Vec::new();
    for peer in &entities {
        for (protocol, ports) in &groups {
            let (source, destination) = if ingress {
                let destination =
                    ports.as_ref().map(|p| EntityRule { ports: Some(p.clone()), ..EntityRule::default() });
                (Some(peer.clone()), destination)
            } else {
                (None, Some(EntityRule { ports: ports.clone(), ..peer.clone() }))
            };
            out.push(PolicyRule {
                action: rule.action,
                protocol: protocol.clone(),
                source,
                destination,
                metadata: metadata.clone(),
                ..PolicyRule::default()
            });
        }
    }
    Ok(out)
}

/// The match of one peer; `None` when it matches nothing now (a `nodes` peer selecting no node
/// with an address).
fn entity(peer: &Peer, nodes: &[NodePeer]) -> Result<Option<EntityRule>, String> {
    Ok(Some(match peer {
        Peer::Namespaces(namespaces) => {
            EntityRule { namespace_selector: Some(selector_text(namespaces)?), ..EntityRule::default() }
        }
        Peer::Pods(pods) => EntityRule {
            namespace_selector: Some(selector_text(&pods.namespace_selector)?),
            selector: Some(selector_text(&pods.pod_selector)?),
            ..EntityRule::default()
        },
        Peer::Networks(networks) => EntityRule { nets: Some(networks.clone()), ..EntityRule::default() },
        Peer::Nodes(selector) => {
            let nets = node_nets(selector, nodes)?;
            if nets.is_empty() {
                return Ok(None);
            }
            EntityRule { nets: Some(nets), ..EntityRule::default() }
        }
    }))
}

/// The host routes (`/32`, `/128`) of the nodes a label selector selects.
fn node_nets(selector: &LabelSelector, nodes: &[NodePeer]) -> Result<Vec<String>, String> {
    let selector = Selector::parse(&selector_text(selector)?).map_err(|e| e.to_string())?;
    let addresses: BTreeSet<IpAddr> =
        nodes.iter().filter(|n| selector.matches(&n.labels)).flat_map(|n| n.addresses.iter().copied()).collect();
    Ok(addresses
        .into_iter()
        .map(|a| match a {
            IpAddr::V4(v4) => format!("{v4}/32"),
            IpAddr::V6(v6) => format!("{v6}/128"),
        })
        .collect())
}

/// Ports grouped by protocol (`None`: named ports, whose protocol is the container port's); a
/// group's `None` means every port of the protocol.
fn port_groups(ports: &[PortMatch]) -> BTreeMap<Option<String>, Option<Vec<Port>>> {
    let mut groups: BTreeMap<Option<String>, Option<Vec<Port>>> = BTreeMap::new();
    for port in ports {
        let (protocol, value) = match port {
            PortMatch::Protocol(protocol) => (Some(protocol.clone()), None),
            PortMatch::Ports(protocol, first, last) if first == last => {
                (Some(protocol.clone()), Some(Port::number(*first)))
            }
            PortMatch::Ports(protocol, first, last) => {
                (Some(protocol.clone()), Some(Port(IntOrString::String(format!("{first}:{last}")))))
            }
            PortMatch::Named(name) => (None, Some(Port::named(name))),
        };
        let group = groups.entry(protocol).or_insert_with(|| Some(Vec::new()));
        match (group.as_mut(), value) {
            (Some(list), Some(port)) => list.push(port),
            (_, None) => *group = None,
            (None, Some(_)) => {}
        }
    }
    groups
}
