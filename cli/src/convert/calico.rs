//! One document at a time: Calico's `projectcalico.org/v3` and `crd.projectcalico.org/v1`
//! resources become gingham's (the same fields, so only the apiVersion changes), Calico's
//! IPAMBlocks and BlockAffinities become gingham IPAMBlocks (the block stays with its node, so new
//! addresses come from the same blocks), and Kubernetes NetworkPolicies are shown as the gingham
//! policy the operator translates them to. Every field that does not carry over is named.

use std::collections::BTreeMap;

use gingham_crds::api::API_VERSION;
use gingham_crds::manifest::{Document, Manifest};
use gingham_crds::naming::block_object_name;
use gingham_crds::offline::validate_document;
use gingham_crds::unknown_fields::unknown_fields;
use gingham_operator::core::translate::translate;
use ipnet::IpNet;
use serde_json::{Map, Value, json};

/// Calico kinds whose spec gingham reads unchanged.
const SAME_SHAPE: &[&str] = &[
    "IPPool",
    "BGPConfiguration",
    "BGPPeer",
    "FelixConfiguration",
    "NetworkPolicy",
    "GlobalNetworkPolicy",
    "Tier",
    "NetworkSet",
    "GlobalNetworkSet",
    "HostEndpoint",
];
/// Calico's API groups.
const CALICO_V3: &str = "projectcalico.org/v3";
const CALICO_CRD: &str = "crd.projectcalico.org/v1";

/// What became of one input document.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Converted {
    /// Where it came from: `file:line`.
    pub source: String,
    /// `apiVersion Kind/name` of the input.
    pub input: String,
    /// The gingham object, when there is one.
    pub object: Option<Value>,
    /// Fields (paths) of the input that do not carry over, with why where it matters.
    pub dropped: Vec<String>,
    /// Why the object is invalid as gingham reads it, or why it was not converted.
    pub problems: Vec<String>,
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The metadata a manifest keeps: name, namespace, labels, annotations. The rest (uid,
/// resourceVersion, managedFields, ...) belongs to the cluster it came from.
fn clean_metadata(value: &Value) -> Value {
    let mut metadata = Map::new();
    for key in ["name", "namespace", "labels", "annotations"] {
        if let Some(field) = value.pointer(&format!("/metadata/{key}")) {
            metadata.insert(key.into(), field.clone());
        }
    }
    Value::Object(metadata)
}

/// Converts one document; `pools` are the IPPools of the whole input (for IPAMBlocks).
pub fn convert(document: &Document, source: &str, pools: &[(String, IpNet)]) -> Converted {
    let value = &document.value;
    let (api_version, kind) = (text(value, "/apiVersion"), text(value, "/kind"));
    let input = format!("{api_version} {kind}/{}", text(value, "/metadata/name"));
    let mut converted = Converted { source: source.to_string(), input, ..Converted::default() };
    match (api_version, kind) {
        (CALICO_V3 | CALICO_CRD, kind) if SAME_SHAPE.contains(&kind) => {
            let mut object = json!({"apiVersion": API_VERSION, "kind": kind, "metadata": clean_metadata(value)});
            if let Some(spec) = value.get("spec") {
                object["spec"] = spec.clone();
            }
            if value.get("status").is_some() {
                converted.dropped.push("status (the operator reports its own)".into());
            }
            checked(&mut converted, object, document.line);
        }
        (CALICO_CRD, "IPAMBlock") => block(&mut converted, value, text(value, "/spec/affinity"), pools, document.line),
        (CALICO_CRD, "BlockAffinity") if text(value, "/spec/state") == "confirmed" => {
            let affinity = format!("host:{}", text(value, "/spec/node"));
            block(&mut converted, value, &affinity, pools, document.line);
        }
        (CALICO_CRD, "BlockAffinity") => converted.problems.push(format!(
            "affinity state {:?} is not confirmed: left out (the operator assigns blocks itself)",
            text(value, "/spec/state")
        )),
        ("networking.k8s.io/v1", "NetworkPolicy") => knp(&mut converted, document),
        (API_VERSION, _) => checked(&mut converted, value.clone(), document.line),
        (CALICO_V3 | CALICO_CRD, kind) => {
            converted.problems.push(format!("gingham has no {kind}: left out"));
        }
        _ => converted.problems.push("not a Calico or NetworkPolicy object: left out (apply it as it is)".into()),
    }
    converted
}

/// Names the fields gingham's type does not keep (and leaves them out: the spec is then the
/// type's own encoding), and validates the object as the API server would.
fn checked(converted: &mut Converted, object: Value, line: usize) {
    let mut document = Document { line, value: object };
    let typed = Manifest::from_document(&document).ok().and_then(|m| m.to_value().ok());
    if let Some(typed_spec) = typed.as_ref().and_then(|t| t.get("spec")) {
        let spec = document.value.get("spec").cloned().unwrap_or_default();
        let unknown = unknown_fields(&spec, typed_spec, "spec");
        if !unknown.is_empty() {
            document.value["spec"] = typed_spec.clone();
        }
        converted.dropped.extend(unknown.into_iter().map(|path| format!("{path} (gingham has no such field)")));
    }
    if let Err(problems) = validate_document(&document) {
        converted.problems.extend(problems.into_iter().map(|p| match p.path.as_str() {
            "" => p.message,
            path => format!("{path}: {}", p.message),
        }));
    }
    converted.object = Some(document.value);
}

/// A Calico block (or confirmed affinity) as a gingham IPAMBlock of the same node.
fn block(converted: &mut Converted, value: &Value, affinity: &str, pools: &[(String, IpNet)], line: usize) {
    let cidr = text(value, "/spec/cidr");
    let Some(node) = affinity.strip_prefix("host:") else {
        return converted.problems.push(format!("affinity {affinity:?} names no node: left out"));
    };
    let pool = cidr.parse::<IpNet>().ok().and_then(|net| pools.iter().find(|(_, p)| p.contains(&net)));
    let Some((pool, _)) = pool else {
        return converted.problems.push(format!("{cidr} is in none of the input's IPPools: convert its pool with it"));
    };
    let in_use = value
        .pointer("/spec/allocations")
        .and_then(Value::as_array)
        .map_or(0, |a| a.iter().filter(|x| !x.is_null()).count());
    let spec = value.get("spec").and_then(Value::as_object).cloned().unwrap_or_default();
    for key in spec.keys().filter(|k| !["cidr", "affinity", "node", "state"].contains(&k.as_str())) {
        converted.dropped.push(match key.as_str() {
            "allocations" => format!("spec.allocations ({in_use} addresses in use: not imported into the node's IPAM table; their pods keep their addresses until restarted, but the agent may hand them out again: drain the node first)"),
            other => format!("spec.{other} (the node's agent keeps its own IPAM state)"),
        });
    }
    let object = json!({"apiVersion": API_VERSION, "kind": "IPAMBlock", "metadata": {"name": block_object_name(cidr)},
        "spec": {"cidr": cidr, "node": node, "pool": pool, "nodeAddress": ""}});
    converted.dropped.push(
        "spec.nodeAddress is empty (Calico's block does not carry it: the operator fills it in from the Node)".into(),
    );
    checked(converted, object, line);
}

/// A Kubernetes NetworkPolicy, as the gingham policy the operator translates it to.
fn knp(converted: &mut Converted, document: &Document) {
    match Manifest::from_document(document) {
        Ok(Manifest::KubeNetworkPolicy(policy)) => {
            let ((namespace, name), mut translated, problem) = translate(&policy);
            translated.metadata.name = Some(name);
            translated.metadata.namespace = Some(namespace);
            if let Some(problem) = problem {
                converted.problems.push(format!("{}: {}", problem.reason, problem.message));
            }
            converted.object = serde_json::to_value(&translated).ok();
        }
        Ok(other) => converted.problems.push(format!("expected a NetworkPolicy, read a {}", other.kind())),
        Err(e) => converted.problems.push(e.to_string()),
    }
}

/// The IPPools among documents (Calico's or gingham's), by name, for placing blocks.
pub fn pools(documents: &[Document]) -> Vec<(String, IpNet)> {
    let found: BTreeMap<String, IpNet> = documents
        .iter()
        .filter(|d| text(&d.value, "/kind") == "IPPool")
        .filter_map(|d| {
            Some((text(&d.value, "/metadata/name").to_string(), text(&d.value, "/spec/cidr").parse().ok()?))
        })
        .collect();
    found.into_iter().collect()
}
