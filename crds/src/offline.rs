//! Offline validation against a CRD's schema, the way a kube-apiserver does it: defaults first,
//! then the structural schema (types, enums, patterns, ranges, required and unknown fields), then
//! the CEL rules. Used by `gingham-operator validate`, the conformance test and the webhook.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{Validator, apply_defaults};
use serde_json::{Map, Value};

use crate::crdgen::schema_of;

/// One way an object breaks its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaIssue {
    /// The field path, e.g. `spec.ipipMode`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Root fields every Kubernetes object may carry, whatever its schema says.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Checks an object (and, for updates, its previous version) against a CRD's schema. Returns the
/// defaulted object when it is valid.
pub fn check_object(
    crd: &CustomResourceDefinition,
    object: &Value,
    old: Option<&Value>,
) -> Result<Value, Vec<SchemaIssue>> {
    let schema = schema_of(crd);
    let defaulted = apply_defaults(&schema, object);
    let mut issues = Vec::new();
    let mut patterns = BTreeMap::new();
    check_node(&schema, &defaulted, "", true, &mut patterns, &mut issues);
    if issues.is_empty()
        && let Err(errors) = Validator::new().validate(&schema, &defaulted, old)
    {
        issues.extend(
            errors
                .into_vec()
                .into_iter()
                .map(|e| SchemaIssue { path: e.field_path.clone(), message: e.message.clone() }),
        );
    }
    if issues.is_empty() { Ok(defaulted) } else { Err(issues) }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_node(
    schema: &Value,
    value: &Value,
    path: &str,
    root: bool,
    patterns: &mut BTreeMap<String, Option<regex::Regex>>,
    issues: &mut Vec<SchemaIssue>,
) {
    let mut issue = |message: String| issues.push(SchemaIssue { path: path.to_string(), message });
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            issue("must not be null".into());
        }
        return;
    }
    let actual = type_name(value);
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if int_or_string {
        if !matches!(actual, "integer" | "string") {
            issue(format!("must be an integer or a string, found {actual}"));
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let fits = expected == actual || (expected == "number" && actual == "integer");
        if !fits {
            issue(format!("must be of type {expected}, found {actual}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        issue(format!("unsupported value {value}: must be one of {}", names.join(", ")));
    }
    match value {
        Value::String(text) => check_string(schema, text, patterns, &mut issue),
        Value::Number(number) => check_number(schema, number.as_f64().unwrap_or_default(), &mut issue),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check_node(item_schema, item, &format!("{path}[{index}]"), false, patterns, issues);
                }
            }
        }
        Value::Object(fields) => check_object_fields(schema, fields, path, root, patterns, issues),
        Value::Bool(_) | Value::Null => {}
    }
}

fn check_string(
    schema: &Value,
    text: &str,
    patterns: &mut BTreeMap<String, Option<regex::Regex>>,
    issue: &mut impl FnMut(String),
) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|max| length > *max) {
        issue(format!("may not be longer than {max} characters"));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|min| length < *min) {
        issue(format!("must be at least {min} characters"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let compiled = patterns.entry(pattern.to_string()).or_insert_with(|| regex::Regex::new(pattern).ok());
        match compiled {
            Some(regex) if !regex.is_match(text) => issue(format!("{text:?} does not match the pattern {pattern}")),
            Some(_) => {}
            None => issue(format!("the schema's pattern {pattern} does not compile")),
        }
    }
}

fn check_number(schema: &Value, number: f64, issue: &mut impl FnMut(String)) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64).filter(|min| number < *min) {
        issue(format!("must be greater than or equal to {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64).filter(|max| number > *max) {
        issue(format!("must be less than or equal to {max}"));
    }
}

fn check_object_fields(
    schema: &Value,
    fields: &Map<String, Value>,
    path: &str,
    root: bool,
    patterns: &mut BTreeMap<String, Option<regex::Regex>>,
    issues: &mut Vec<SchemaIssue>,
) {
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !fields.contains_key(required) {
            issues.push(SchemaIssue { path: join(path, required), message: "Required value".into() });
        }
    }
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (name, field) in fields {
        let field_path = join(path, name);
        if root && ROOT_FIELDS.contains(&name.as_str()) {
            continue;
        }
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(field_schema), _) | (None, Some(field_schema)) => {
                check_node(field_schema, field, &field_path, false, patterns, issues)
            }
            (None, None) if preserve => {}
            (None, None) => issues.push(SchemaIssue {
                path: field_path,
                message: "unknown field: the API server would drop it; check its spelling against `kubectl explain`"
                    .into(),
            }),
        }
    }
}

/// One problem found in a document, ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentProblem {
    /// The field path (empty for whole-document problems).
    pub path: String,
    /// What is wrong, and the fix where known.
    pub message: String,
}

/// The gingham CRDs, generated once: generating their schemas costs tens of milliseconds, and
/// every document of a gingham kind needs one.
fn crds() -> &'static [CustomResourceDefinition] {
    static CRDS: LazyLock<Vec<CustomResourceDefinition>> =
        LazyLock::new(|| crate::crdgen::all_crds().into_iter().map(|(_, crd)| crd).collect());
    &CRDS
}

/// Validates one manifest document completely: its kind, the CRD schema with defaults and CEL (for
/// gingham kinds), decoding into the Rust type, and the Rust validator. On success returns the
/// typed object, decoded from the defaulted document.
pub fn validate_document(
    document: &crate::manifest::Document,
) -> Result<crate::manifest::Manifest, Vec<DocumentProblem>> {
    use crate::manifest::{Document, Manifest};
    let whole = |message: String| vec![DocumentProblem { path: String::new(), message }];
    let kind = document.value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = document.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let crd = (api_version == crate::api::API_VERSION)
        .then(|| crds().iter().find(|crd| crd.spec.names.kind == kind))
        .flatten();
    let defaulted = match &crd {
        Some(crd) => check_object(crd, &document.value, None).map_err(|issues| {
            issues
                .into_iter()
                .map(|issue| DocumentProblem { path: issue.path, message: issue.message })
                .collect::<Vec<_>>()
        })?,
        None => document.value.clone(),
    };
    let manifest = Manifest::from_document(&Document { line: document.line, value: defaulted })
        .map_err(|e| whole(e.to_string()))?;
    manifest.validate().map_err(|errors| {
        errors
            .into_iter()
            .map(|error| DocumentProblem {
                path: error.path,
                message: format!("{} (fix: {})", error.message, error.hint),
            })
            .collect::<Vec<_>>()
    })?;
    Ok(manifest)
}
