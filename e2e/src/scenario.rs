//! The lab's scenario: nodes, subnets, pods and the gingham objects to load, read from YAML and
//! checked completely before anything is created.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::manifest::{Document, Manifest};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::stream::{MAX_REPLICAS, OperatorSpec};

/// The scenario `gingham-lab up` uses when none is given.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.yaml");

/// Every underlay subnet lies inside this range.
pub const UNDERLAY_RANGE: &str = "10.231.0.0/16";
/// Every IPPool lies inside this range.
pub const POOL_RANGE: &str = "10.232.0.0/16";
/// Addresses of the "outside" namespace (natOutgoing target), outside every pool.
pub const OUTSIDE_RANGE: &str = "10.233.0.0/24";
/// Every IPv6 underlay subnet lies inside this range (unique local addresses: the lab never
/// routes them anywhere but between its own namespaces).
pub const UNDERLAY_RANGE6: &str = "fd00:231::/32";
/// Every IPv6 IPPool lies inside this range.
pub const POOL_RANGE6: &str = "fd00:232::/32";
/// IPv6 addresses of the "outside" namespace, outside every pool.
pub const OUTSIDE_RANGE6: &str = "fd00:233::/64";

/// One problem in a scenario, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scenario line {line}: {field}: {message}; fix: {fix}")]
pub struct ScenarioError {
    /// 1-based line in the scenario file (0 when unknown).
    pub line: u64,
    /// The field path, e.g. `nodes[1].subnet`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// Every problem found in a scenario.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid scenario ({} problem(s)):\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

/// The lab's name and settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Prefix of every namespace the lab creates: 2-8 lowercase letters or digits.
    pub prefix: Spanned<String>,
    /// How the operator runs: `{replicas: 1-3, stream: unix|tcp}` (one replica on unix sockets by
    /// default).
    #[serde(default)]
    pub operator: OperatorSpec,
}

/// An underlay subnet (one bridge).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// The subnet's name, used by nodes.
    pub name: String,
    /// Its IPv4 CIDR, inside [`UNDERLAY_RANGE`]; absent on an IPv6-only lab.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Its IPv6 CIDR, inside [`UNDERLAY_RANGE6`]: a dual-stack (with `cidr`) or IPv6-only lab.
    #[serde(default)]
    pub cidr6: Option<String>,
}

/// A subnet, parsed: an IPv4 CIDR, an IPv6 CIDR or both (every subnet of a lab has the same
/// families).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlan {
    /// The subnet's name.
    pub name: String,
    /// Its IPv4 CIDR.
    pub v4: Option<Ipv4Net>,
    /// Its IPv6 CIDR.
    pub v6: Option<Ipv6Net>,
}

/// A node: a network namespace with an agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The node name (a DNS label).
    pub name: String,
    /// The subnet it sits on.
    pub subnet: String,
    /// Node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A Kubernetes namespace and its labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// The namespace name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A named container port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The port's name (for named-port policy); optional.
    #[serde(default)]
    pub name: Option<String>,
    /// The port number.
    pub port: u16,
    /// TCP or UDP.
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "TCP".into()
}

/// A pod: a network namespace plumbed by the CNI plugin on its node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    /// The pod name.
    pub name: String,
    /// Its namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The node it runs on.
    pub node: String,
    /// Pod labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Container ports; the lab serves each of them (TCP and UDP echo).
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// The pod's service account (`spec.serviceAccountName`; none when absent). Its
    /// ServiceAccount object, with labels, goes under `objects:` or is applied.
    #[serde(default, rename = "serviceAccount")]
    pub service_account: Option<String>,
}

fn default_namespace() -> String {
    "default".into()
}

/// A scenario as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Lab settings.
    pub lab: LabSpec,
    /// One or two underlay subnets.
    pub subnets: Vec<Spanned<SubnetSpec>>,
    /// The nodes.
    pub nodes: Vec<Spanned<NodeSpec>>,
    /// Namespaces with labels (pods' namespaces are added when missing).
    #[serde(default)]
    pub namespaces: Vec<Spanned<NamespaceSpec>>,
    /// The pods.
    #[serde(default)]
    pub pods: Vec<Spanned<PodSpec>>,
    /// gingham and Kubernetes objects, verbatim, loaded into the datastore.
    #[serde(default)]
    pub objects: Vec<Spanned<serde_json::Value>>,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The namespace prefix.
    pub prefix: String,
    /// How the operator runs.
    pub operator: OperatorSpec,
    /// The subnets, parsed.
    pub subnets: Vec<SubnetPlan>,
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// Every namespace, including those only named by pods.
    pub namespaces: Vec<NamespaceSpec>,
    /// The pods.
    pub pods: Vec<PodSpec>,
    /// The objects, as JSON documents.
    pub objects: Vec<serde_json::Value>,
}

fn err(line: u64, field: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> ScenarioError {
    ScenarioError { line, field: field.into(), message: message.into(), fix: fix.into() }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Parses and validates a scenario. Every problem is reported, each with its line, field and fix.
pub fn parse(text: &str) -> Result<Scenario, ScenarioErrors> {
    let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        let message = e.to_string().lines().next().unwrap_or_default().to_string();
        ScenarioErrors(vec![err(
            line,
            "<document>",
            message,
            "top-level keys are lab, subnets, nodes, namespaces, pods and objects; see e2e/scenarios/default.yaml",
        )])
    })?;
    check(raw)
}

fn check(raw: RawScenario) -> Result<Scenario, ScenarioErrors> {
    let mut errors = Vec::new();
    let prefix = raw.lab.prefix.value.clone();
    let prefix_ok = (2..=8).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && prefix.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if !prefix_ok {
        errors.push(err(
            raw.lab.prefix.referenced.line(),
            "lab.prefix",
            format!("{prefix:?} is not 2-8 lowercase letters or digits starting with a letter"),
            "use a short name such as ghlab",
        ));
    }
    if !(1..=MAX_REPLICAS).contains(&raw.lab.operator.replicas) {
        errors.push(err(
            raw.lab.prefix.referenced.line(),
            "lab.operator.replicas",
            format!("{} replicas; the lab runs 1 to {MAX_REPLICAS}", raw.lab.operator.replicas),
            "use e.g. {replicas: 2}",
        ));
    }
    let pools: Ipv4Net = POOL_RANGE.parse().unwrap_or_default();
    let subnets = check_subnets(&raw, &mut errors);
    if raw.lab.operator.stream == crate::stream::Transport::Tcp && subnets.iter().any(|s| s.v4.is_none()) {
        errors.push(err(
            raw.lab.prefix.referenced.line(),
            "lab.operator.stream",
            "the tcp stream's control host is on the IPv4 underlay, and this lab has none",
            "use {stream: unix} on an IPv6-only lab",
        ));
    }
    let subnet_names: Vec<String> = subnets.iter().map(|s| s.name.clone()).collect();
    let mut node_names = BTreeSet::new();
    if raw.nodes.is_empty() {
        errors.push(err(0, "nodes", "the lab needs at least one node", "add a node under nodes:"));
    }
    for (i, node) in raw.nodes.iter().enumerate() {
        let (line, n) = (node.referenced.line(), &node.value);
        if !is_dns_label(&n.name) || n.name.len() > 20 {
            errors.push(err(
                line,
                format!("nodes[{i}].name"),
                format!("{:?} is not a DNS label of at most 20 characters", n.name),
                "use e.g. node-1",
            ));
        }
        if !node_names.insert(n.name.clone()) {
            errors.push(err(
                line,
                format!("nodes[{i}].name"),
                format!("node {:?} is listed twice", n.name),
                "give every node its own name",
            ));
        }
        if !subnet_names.contains(&n.subnet) {
            errors.push(err(
                line,
                format!("nodes[{i}].subnet"),
                format!("no subnet named {:?}", n.subnet),
                format!("use one of: {}", subnet_names.join(", ")),
            ));
        }
    }
    let mut namespaces: Vec<NamespaceSpec> = Vec::new();
    for (i, ns) in raw.namespaces.iter().enumerate() {
        if !is_dns_label(&ns.value.name) || namespaces.iter().any(|n| n.name == ns.value.name) {
            errors.push(err(
                ns.referenced.line(),
                format!("namespaces[{i}].name"),
                format!("{:?} is not a new DNS label", ns.value.name),
                "name each namespace once, e.g. prod",
            ));
        }
        namespaces.push(ns.value.clone());
    }
    let mut pod_keys = BTreeSet::new();
    for (i, pod) in raw.pods.iter().enumerate() {
        let (line, p) = (pod.referenced.line(), &pod.value);
        if !is_dns_label(&p.name) || !pod_keys.insert((p.namespace.clone(), p.name.clone())) {
            errors.push(err(
                line,
                format!("pods[{i}].name"),
                format!("{:?} is not a DNS label unique in its namespace", p.name),
                "use e.g. web-1",
            ));
        }
        if !node_names.contains(&p.node) {
            errors.push(err(
                line,
                format!("pods[{i}].node"),
                format!("no node named {:?}", p.node),
                "use a name from nodes:",
            ));
        }
        if !is_dns_label(&p.namespace) {
            errors.push(err(
                line,
                format!("pods[{i}].namespace"),
                format!("{:?} is not a DNS label", p.namespace),
                "use e.g. default",
            ));
        } else if !namespaces.iter().any(|n| n.name == p.namespace) {
            namespaces.push(NamespaceSpec { name: p.namespace.clone(), labels: BTreeMap::new() });
        }
        for (j, port) in p.ports.iter().enumerate() {
            if port.port == 0 || !matches!(port.protocol.as_str(), "TCP" | "UDP") {
                errors.push(err(
                    line,
                    format!("pods[{i}].ports[{j}]"),
                    "port must be 1-65535 and protocol TCP or UDP",
                    "e.g. {name: http, port: 80}",
                ));
            }
        }
    }
    for (i, object) in raw.objects.iter().enumerate() {
        check_object(i, object, pools, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ScenarioErrors(errors));
    }
    Ok(Scenario {
        prefix,
        operator: raw.lab.operator,
        subnets,
        nodes: raw.nodes.into_iter().map(|n| n.value).collect(),
        namespaces,
        pods: raw.pods.into_iter().map(|p| p.value).collect(),
        objects: raw.objects.into_iter().map(|o| o.value).collect(),
    })
}

/// The subnets, each checked: its CIDRs inside the lab's ranges, disjoint, and every subnet of
/// the same families.
fn check_subnets(raw: &RawScenario, errors: &mut Vec<ScenarioError>) -> Vec<SubnetPlan> {
    let underlay: Ipv4Net = UNDERLAY_RANGE.parse().unwrap_or_default();
    let underlay6: Ipv6Net = UNDERLAY_RANGE6.parse().unwrap_or_default();
    let mut subnets: Vec<SubnetPlan> = Vec::new();
    if raw.subnets.is_empty() || raw.subnets.len() > 2 {
        errors.push(err(0, "subnets", "the lab needs one or two subnets", "list one subnet, or two for CrossSubnet"));
    }
    for (i, subnet) in raw.subnets.iter().enumerate() {
        let line = subnet.referenced.line();
        let field = format!("subnets[{i}]");
        let spec = &subnet.value;
        if spec.cidr.is_none() && spec.cidr6.is_none() {
            errors.push(err(
                line,
                format!("{field}.cidr"),
                "the subnet has neither cidr nor cidr6",
                "give cidr (IPv4), cidr6 (IPv6) or both (dual-stack)",
            ));
        }
        let v4 = spec.cidr.as_ref().and_then(|cidr| match cidr.parse::<Ipv4Net>() {
            Ok(net) if underlay.contains(&net) && (16..=26).contains(&net.prefix_len()) && net.trunc() == net => {
                Some(net)
            }
            _ => {
                errors.push(err(
                    line,
                    format!("{field}.cidr"),
                    format!("{cidr:?} is not a network CIDR /16-/26 inside {UNDERLAY_RANGE}"),
                    "use e.g. 10.231.1.0/24 (the lab only uses addresses inside its own range)",
                ));
                None
            }
        });
        let v6 = spec.cidr6.as_ref().and_then(|cidr| match cidr.parse::<Ipv6Net>() {
            Ok(net) if underlay6.contains(&net) && (48..=120).contains(&net.prefix_len()) && net.trunc() == net => {
                Some(net)
            }
            _ => {
                errors.push(err(
                    line,
                    format!("{field}.cidr6"),
                    format!("{cidr:?} is not a network CIDR /48-/120 inside {UNDERLAY_RANGE6}"),
                    "use e.g. fd00:231:1::/64 (unique local addresses inside the lab's own range)",
                ));
                None
            }
        });
        let overlaps = |a: IpNet, b: IpNet| a.contains(&b.network()) || b.contains(&a.network());
        let mine: Vec<IpNet> = v4.map(IpNet::V4).into_iter().chain(v6.map(IpNet::V6)).collect();
        let others = subnets.iter().flat_map(|o| o.v4.map(IpNet::V4).into_iter().chain(o.v6.map(IpNet::V6)));
        if others.into_iter().any(|other| mine.iter().any(|net| overlaps(*net, other))) {
            errors.push(err(line, format!("{field}.cidr"), "overlaps another subnet", "pick disjoint subnets"));
        }
        if let Some(first) = raw.subnets.first().filter(|_| i > 0) {
            let families = |s: &SubnetSpec| (s.cidr.is_some(), s.cidr6.is_some());
            if families(&first.value) != families(spec) {
                errors.push(err(
                    line,
                    format!("{field}.cidr6"),
                    "this subnet's families (cidr, cidr6) differ from the first subnet's",
                    "give every subnet the same families: the lab is IPv4, IPv6 or dual-stack as a whole",
                ));
            }
        }
        subnets.push(SubnetPlan { name: spec.name.clone(), v4, v6 });
    }
    subnets
}

fn check_object(i: usize, object: &Spanned<serde_json::Value>, pools: Ipv4Net, errors: &mut Vec<ScenarioError>) {
    let line = object.referenced.line();
    let field = format!("objects[{i}]");
    let document = Document { line: usize::try_from(line).unwrap_or(0), value: object.value.clone() };
    let manifest = match Manifest::from_document(&document) {
        Ok(manifest) => manifest,
        Err(e) => {
            errors.push(err(
                line,
                field,
                e.to_string(),
                "fix the object so that `gingham-operator validate` accepts it",
            ));
            return;
        }
    };
    if let Err(problems) = manifest.validate() {
        for problem in problems {
            let fix = if problem.hint.is_empty() {
                "see the field's documentation".to_string()
            } else {
                problem.hint.clone()
            };
            errors.push(err(line, format!("{field}.{}", problem.path), problem.message.clone(), fix));
        }
    }
    match &manifest {
        Manifest::Node(_) | Manifest::Pod(_) | Manifest::Namespace(_) => errors.push(err(
            line,
            format!("{field}.kind"),
            format!("{} objects come from the scenario's own lists", manifest.kind()),
            "declare it under nodes:, pods: or namespaces: instead",
        )),
        Manifest::IPPool(pool) => {
            let pools6: Ipv6Net = POOL_RANGE6.parse().unwrap_or_default();
            let inside = match pool.spec.cidr.parse::<IpNet>() {
                Ok(IpNet::V4(net)) => pools.contains(&net),
                Ok(IpNet::V6(net)) => pools6.contains(&net),
                Err(_) => false,
            };
            if !inside {
                errors.push(err(
                    line,
                    format!("{field}.spec.cidr"),
                    format!("{:?} is outside the lab's pool ranges {POOL_RANGE} and {POOL_RANGE6}", pool.spec.cidr),
                    "use a CIDR inside 10.232.0.0/16 (IPv4) or fd00:232::/32 (IPv6)",
                ));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
