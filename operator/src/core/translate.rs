//! Kubernetes `networking.k8s.io/v1` NetworkPolicy → gingham NetworkPolicy `knp.<name>`, with
//! Kubernetes semantics exactly.
//!
//! | Kubernetes | gingham |
//! |---|---|
//! | `podSelector` | `selector` (label selectors become Calico selector text) |
//! | `policyTypes` (default Ingress, plus Egress when egress rules exist) | `types`, always explicit |
//! | a rule with no `from`/`to` (or an empty one) | rules with no source/destination: any peer |
//! | an empty rule list for a governed direction | no rules: deny all in that direction |
//! | peer `podSelector` alone | `selector`: pods of the policy's namespace only |
//! | peer `namespaceSelector` alone | `namespaceSelector` and no `selector`: every pod in those namespaces |
//! | peer with both | both: the selected pods in the selected namespaces |
//! | `ipBlock` with `except` | `nets` and `notNets` |
//! | ports (protocol default TCP, `endPort`, named ports) | one rule per protocol, `ports` as numbers, `"first:last"` ranges or names |
//!
//! Several peers or protocols in one Kubernetes rule are ORed: one gingham rule per peer and
//! protocol. Scoping is structural, not textual: the compiler reads a rule `selector` without a
//! `namespaceSelector` in a namespaced policy as "in the policy's namespace", and a
//! `namespaceSelector` as a selector over namespace labels (see `compile`).
//!
//! A policy that cannot be translated becomes a deny-all for its directions (fail closed) plus a
//! problem.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::common::{IntOrString, Port, Protocol};
use gingham_crds::api::policy::{Action, EntityRule, PolicyRule, PolicyType};
use gingham_crds::api::{NetworkPolicy, NetworkPolicySpec};
use gingham_crds::selector::{Expr, Selector};
use k8s_openapi::api::networking::v1::{NetworkPolicy as KubeNetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as KubeIntOrString;

use super::ObjectProblem;

/// The order translated policies get (Calico uses 1000 for Kubernetes policies too).
pub const TRANSLATED_ORDER: f64 = 1000.0;
/// The name prefix of translated policies. gingham NetworkPolicies with this prefix are reserved
/// for translations: the compiler ignores observed ones and uses its own fresh translations.
pub const PREFIX: &str = "knp.";

/// Translates one Kubernetes NetworkPolicy. Returns the translation keyed by (namespace, name),
/// and a problem when part of it could not be translated (that part denies).
pub fn translate(knp: &KubeNetworkPolicy) -> ((String, String), NetworkPolicy, Option<ObjectProblem>) {
    let namespace = knp.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let source_name = knp.metadata.name.clone().unwrap_or_default();
    let name = format!("{PREFIX}{source_name}");
    let spec = knp.spec.clone().unwrap_or_default();
    let egress = spec.egress.clone().unwrap_or_default();
    let mut types = Vec::new();
    match &spec.policy_types {
        Some(listed) if !listed.is_empty() => {
            for (wanted, kind) in [("Ingress", PolicyType::Ingress), ("Egress", PolicyType::Egress)] {
                if listed.iter().any(|t| t == wanted) {
                    types.push(kind);
                }
            }
        }
        _ => {
            types.push(PolicyType::Ingress);
            if !egress.is_empty() {
                types.push(PolicyType::Egress);
            }
        }
    }
    let translated = (|| -> Result<(String, Vec<PolicyRule>, Vec<PolicyRule>), String> {
        let selector = selector_text(spec.pod_selector.as_ref().unwrap_or(&LabelSelector::default()))?;
        let mut ingress = Vec::new();
        if types.contains(&PolicyType::Ingress) {
            for rule in spec.ingress.iter().flatten() {
                ingress.extend(rules(rule.from.as_deref(), rule.ports.as_deref(), true)?);
            }
        }
        let mut egress_rules = Vec::new();
        if types.contains(&PolicyType::Egress) {
            for rule in &egress {
                egress_rules.extend(rules(rule.to.as_deref(), rule.ports.as_deref(), false)?);
            }
        }
        Ok((selector, ingress, egress_rules))
    })();
    let (selector, ingress, egress_rules, problem) = match translated {
        Ok((selector, ingress, egress)) => (selector, ingress, egress, None),
        Err(message) => {
            let fallback = selector_text(spec.pod_selector.as_ref().unwrap_or(&LabelSelector::default()))
                .unwrap_or_else(|_| "all()".into());
            let problem = ObjectProblem {
                kind: "NetworkPolicy.networking.k8s.io".into(),
                namespace: Some(namespace.clone()),
                name: source_name.clone(),
                reason: "UntranslatablePolicy".into(),
                message: format!("{message}; the policy denies all traffic it governs until fixed"),
            };
            (fallback, Vec::new(), Vec::new(), Some(problem))
        }
    };
    let owner = knp.metadata.uid.as_ref().map(|uid| OwnerReference {
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        name: source_name.clone(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: NetworkPolicySpec {
            order: Some(TRANSLATED_ORDER),
            selector: Some(selector),
            types: Some(types.clone()),
            ingress: types.contains(&PolicyType::Ingress).then_some(ingress),
            egress: types.contains(&PolicyType::Egress).then_some(egress_rules),
            ..NetworkPolicySpec::default()
        },
    };
    ((namespace, name), policy, problem)
}

/// A Kubernetes label selector as Calico selector text; the empty selector is `all()`.
pub fn selector_text(selector: &LabelSelector) -> Result<String, String> {
    let mut terms = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        terms.push(Expr::Eq(key.clone(), value.clone()));
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let key = requirement.key.clone();
        let values: BTreeSet<String> = requirement.values.iter().flatten().cloned().collect();
        terms.push(match requirement.operator.as_str() {
            "In" => Expr::In(key, values),
            "NotIn" => Expr::NotIn(key, values),
            "Exists" => Expr::Has(key),
            "DoesNotExist" => Expr::Not(Box::new(Expr::Has(key))),
            other => return Err(format!("label selector operator {other:?} is not In, NotIn, Exists or DoesNotExist")),
        });
    }
    let expr = terms.into_iter().reduce(|all, term| Expr::And(Box::new(all), Box::new(term))).unwrap_or(Expr::All);
    Selector::try_from(expr).map(|s| s.to_string()).map_err(|e| format!("label selector cannot be expressed: {e}"))
}

fn entity(peer: &NetworkPolicyPeer) -> Result<EntityRule, String> {
    if let Some(block) = &peer.ip_block {
        return Ok(EntityRule {
            nets: Some(vec![block.cidr.clone()]),
            not_nets: block.except.clone().filter(|e| !e.is_empty()),
            ..EntityRule::default()
        });
    }
    let selector = peer.pod_selector.as_ref().map(selector_text).transpose()?;
    let namespace_selector = peer.namespace_selector.as_ref().map(selector_text).transpose()?;
    Ok(EntityRule { selector, namespace_selector, ..EntityRule::default() })
}

/// Ports grouped by protocol; `None` means every port of that protocol.
fn port_groups(ports: &[NetworkPolicyPort]) -> Result<BTreeMap<String, Option<Vec<Port>>>, String> {
    let mut groups: BTreeMap<String, Option<Vec<Port>>> = BTreeMap::new();
    for port in ports {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        Protocol::named(&protocol).number()?;
        let value = match &port.port {
            None => None,
            Some(KubeIntOrString::Int(first)) => Some(match port.end_port {
                Some(last) if last > *first => Port(IntOrString::String(format!("{first}:{last}"))),
                _ => Port(IntOrString::Int(i64::from(*first))),
            }),
            Some(KubeIntOrString::String(name)) => Some(Port::named(name)),
        };
        if let Some(port) = &value {
            port.spec().map_err(|m| format!("ports: {m}"))?;
        }
        let group = groups.entry(protocol).or_insert_with(|| Some(Vec::new()));
        match (group.as_mut(), value) {
            (Some(list), Some(port)) => list.push(port),
            (_, None) => *group = None,
            (None, Some(_)) => {}
        }
    }
    Ok(groups)
}

fn rules(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    ingress: bool,
) -> Result<Vec<PolicyRule>, String> {
    let peers: Vec<Option<EntityRule>> = match peers {
        Some(list) if !list.is_empty() => list.iter().map(|p| entity(p).map(Some)).collect::<Result<_, _>>()?,
        _ => vec![None],
    };
    let groups: Vec<(Option<String>, Option<Vec<Port>>)> = match ports {
        Some(list) if !list.is_empty() => port_groups(list)?.into_iter().map(|(p, ports)| (Some(p), ports)).collect(),
        _ => vec![(None, None)],
    };
    let mut out = Vec::new();
    for peer in &peers {
        for (protocol, ports) in &groups {
            let destination_ports =
                ports.as_ref().map(|p| EntityRule { ports: Some(p.clone()), ..EntityRule::default() });
            let (source, destination) = if ingress {
                (peer.clone(), destination_ports)
            } else {
                let mut destination = peer.clone().unwrap_or_default();
                destination.ports = ports.clone();
                (None, (destination != EntityRule::default()).then_some(destination))
            };
            out.push(PolicyRule {
                action: Action::Allow,
                protocol: protocol.as_deref().map(Protocol::named),
                source,
                destination,
                ..PolicyRule::default()
            });
        }
    }
    Ok(out)
}
