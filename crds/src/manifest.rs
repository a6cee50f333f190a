//! Reading manifests: YAML text with one or more documents, each dispatched by `apiVersion` and
//! `kind` to a typed object. Used by the file datastore, `validate` and the lab.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::api::{
    API_VERSION, BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint,
    IPAMBlock, IPPool, NetworkPolicy, NetworkSet, NodeNetwork, Tier,
};
use crate::netpolapi::v1alpha1::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
use crate::netpolapi::v1alpha2::ClusterNetworkPolicy;
use crate::validate::{self, FieldError};

/// A manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML does not parse.
    #[error("line {line}: invalid YAML: {message}")]
    Yaml {
        /// The line the parser stopped on (1-based).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// The document is not an object with apiVersion and kind.
    #[error("line {line}: {message}")]
    Shape {
        /// The line the document starts on (1-based).
        line: usize,
        /// What is missing.
        message: String,
    },
    /// The kind is not one gingham reads.
    #[error("line {line}: {api_version} {kind} is not a kind gingham reads: {hint}")]
    UnknownKind {
        /// The line the document starts on (1-based).
        line: usize,
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
        /// What to do.
        hint: String,
    },
    /// `metadata.name` or `metadata.namespace` is not a string.
    #[error("line {line}: {field} is {found}, not a string: {fix}")]
    NotAString {
        /// The line of the field (or of the document, when the field's own line is unknown).
        line: usize,
        /// The field path, e.g. `metadata.name`.
        field: String,
        /// What the YAML reader made of it.
        found: String,
        /// What to do.
        fix: String,
    },
    /// The document does not match its kind's type.
    #[error("line {line}: {kind} {name}: {message}")]
    Decode {
        /// The line the document starts on (1-based).
        line: usize,
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The decoder's message.
        message: String,
    },
}

impl ManifestError {
    /// A stable short label for metrics and tests.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Yaml { .. } => "yaml",
            Self::Shape { .. } => "shape",
            Self::UnknownKind { .. } => "unknown_kind",
            Self::NotAString { .. } => "not_a_string",
            Self::Decode { .. } => "decode",
        }
    }

    /// The line the error is on (1-based).
    pub fn line(&self) -> usize {
        match self {
            Self::Yaml { line, .. }
            | Self::Shape { line, .. }
            | Self::UnknownKind { line, .. }
            | Self::NotAString { line, .. }
            | Self::Decode { line, .. } => *line,
        }
    }
}

/// The largest manifest file gingham reads: far above any real manifest, small enough that
/// `/dev/zero` or a runaway file cannot exhaust memory.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// A manifest file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFileError {
    /// Opening or reading failed.
    #[error("cannot read {}: {source} (check that it exists and is readable)", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_MANIFEST_BYTES`].
    #[error("{} is larger than {limit} bytes, the limit for a manifest file: split it, or check that it is the right file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not UTF-8.
    #[error("{} is not UTF-8 text: save it as UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

impl ReadFileError {
    /// A stable short label for metrics and tests.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::TooLarge { .. } => "too_large",
            Self::NotUtf8 { .. } => "not_utf8",
        }
    }

    /// Whether the file does not exist (readers of a directory treat that as removed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads a manifest (or any YAML file gingham reads) as text, at most [`MAX_MANIFEST_BYTES`]:
/// the one reader the operator, the agent's file datastore and the lab share.
pub fn read_manifest_file(path: &Path) -> Result<String, ReadFileError> {
    read_limited(path, MAX_MANIFEST_BYTES)
}

fn read_limited(path: &Path, limit: u64) -> Result<String, ReadFileError> {
    let io = |source| ReadFileError::Io { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(io)?.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(ReadFileError::TooLarge { path: path.to_path_buf(), limit });
    }
    String::from_utf8(bytes).map_err(|_| ReadFileError::NotUtf8 { path: path.to_path_buf() })
}

/// One YAML document of a file, as JSON, with the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The line the document's content starts on (1-based).
    pub line: usize,
    /// The document's content.
    pub value: Value,
}

fn line_of(location: serde_saphyr::Location) -> usize {
    usize::try_from(location.line()).unwrap_or(usize::MAX).max(1)
}

/// Splits YAML text into its non-empty documents, the way the YAML parser reads the stream:
/// a document may start on its `---` line (`--- {kind: ...}`, `--- |`), end with `...`, and
/// lines may end in CRLF. Empty and comment-only documents are skipped. A document whose
/// `metadata.name` or `metadata.namespace` is not a string is an error: YAML 1.1, as kubectl
/// reads it, turns a bare `y`, `no` or `on` into a boolean, and the object must never be stored
/// under another name.
pub fn read_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    let documents: Vec<Spanned<Value>> = serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
        line: e.location().map_or(1, line_of),
        message: e.to_string().lines().next().map(|l| l.trim_start_matches("error: ").to_string()).unwrap_or_default(),
    })?;
    let documents: Vec<Document> =
        documents.into_iter().map(|d| Document { line: line_of(d.referenced), value: d.value }).collect();
    for (index, document) in documents.iter().enumerate() {
        for field in ["name", "namespace"] {
            let Some(value) = document.value.get("metadata").and_then(|m| m.get(field)) else { continue };
            if value.is_string() {
                continue;
            }
            let line = field_line(text, index, field).unwrap_or(document.line);
            let (found, fix) = describe(value, field);
            return Err(ManifestError::NotAString { line, field: format!("metadata.{field}"), found, fix });
        }
    }
    Ok(documents)
}

/// What a value that should be a string (in field `key`) is, and the fix, for messages.
fn describe(value: &Value, key: &str) -> (String, String) {
    let quote = format!("quote it, as in {key}: \"y\"");
    match value {
        Value::Bool(b) => (
            format!("the boolean {b} (YAML 1.1, as kubectl reads it, turns a bare y, yes, on, n, no or off into one)"),
            quote,
        ),
        Value::Number(n) => (format!("the number {n}"), quote),
        Value::Null => ("empty".into(), "write the name".into()),
        Value::Array(_) => ("a list".into(), "write one name as a string".into()),
        Value::Object(_) => ("a mapping".into(), "write one name as a string".into()),
        Value::String(_) => ("a string".into(), String::new()),
    }
}

/// The line of `metadata.<field>` in the `index`th document, when the documents read that far.
fn field_line(text: &str, index: usize, field: &str) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Shape {
        metadata: Option<BTreeMap<String, Spanned<Value>>>,
    }
    let shapes: Vec<Shape> = serde_saphyr::from_multiple(text).ok()?;
    let metadata = shapes.into_iter().nth(index)?.metadata?;
    metadata.get(field).map(|value| line_of(value.referenced))
}

/// A typed object of a kind gingham reads.
#[derive(Clone, Debug)]
pub enum Manifest {
    /// gingham.dev/v1 IPPool.
    IPPool(IPPool),
    /// gingham.dev/v1 BGPConfiguration.
    BGPConfiguration(BGPConfiguration),
    /// gingham.dev/v1 BGPPeer.
    BGPPeer(BGPPeer),
    /// gingham.dev/v1 FelixConfiguration.
    FelixConfiguration(FelixConfiguration),
    /// gingham.dev/v1 NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
    /// gingham.dev/v1 GlobalNetworkPolicy.
    GlobalNetworkPolicy(GlobalNetworkPolicy),
    /// gingham.dev/v1 Tier.
    Tier(Tier),
    /// gingham.dev/v1 NetworkSet.
    NetworkSet(NetworkSet),
    /// gingham.dev/v1 GlobalNetworkSet.
    GlobalNetworkSet(GlobalNetworkSet),
    /// gingham.dev/v1 HostEndpoint.
    HostEndpoint(HostEndpoint),
    /// gingham.dev/v1 NodeNetwork.
    NodeNetwork(NodeNetwork),
    /// gingham.dev/v1 IPAMBlock.
    IPAMBlock(IPAMBlock),
    /// v1 Node.
    Node(Box<Node>),
    /// v1 Pod.
    Pod(Box<Pod>),
    /// v1 Namespace.
    Namespace(Namespace),
    /// v1 Secret.
    Secret(Secret),
    /// v1 ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// v1 Service.
    Service(Box<Service>),
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// networking.k8s.io/v1 NetworkPolicy.
    KubeNetworkPolicy(Box<KubeNetworkPolicy>),
    /// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy.
    ClusterNetworkPolicy(Box<ClusterNetworkPolicy>),
    /// policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy.
    AdminNetworkPolicy(Box<AdminNetworkPolicy>),
    /// policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy(Box<BaselineAdminNetworkPolicy>),
}

impl Manifest {
    /// Decodes a document by its apiVersion and kind.
    pub fn from_document(document: &Document) -> Result<Self, ManifestError> {
        let line = document.line;
        let field = |name: &str| document.value.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if api_version.is_empty() || kind.is_empty() {
            return Err(ManifestError::Shape { line, message: "a manifest needs apiVersion and kind".into() });
        }
        let value = document.value.clone();
        Ok(match (api_version.as_str(), kind.as_str()) {
            (API_VERSION, "IPPool") => Self::IPPool(typed(value, line, &kind)?),
            (API_VERSION, "BGPConfiguration") => Self::BGPConfiguration(typed(value, line, &kind)?),
            (API_VERSION, "BGPPeer") => Self::BGPPeer(typed(value, line, &kind)?),
            (API_VERSION, "FelixConfiguration") => Self::FelixConfiguration(typed(value, line, &kind)?),
            (API_VERSION, "NetworkPolicy") => Self::NetworkPolicy(typed(value, line, &kind)?),
            (API_VERSION, "GlobalNetworkPolicy") => Self::GlobalNetworkPolicy(typed(value, line, &kind)?),
            (API_VERSION, "Tier") => Self::Tier(typed(value, line, &kind)?),
            (API_VERSION, "NetworkSet") => Self::NetworkSet(typed(value, line, &kind)?),
            (API_VERSION, "GlobalNetworkSet") => Self::GlobalNetworkSet(typed(value, line, &kind)?),
            (API_VERSION, "HostEndpoint") => Self::HostEndpoint(typed(value, line, &kind)?),
            (API_VERSION, "NodeNetwork") => Self::NodeNetwork(typed(value, line, &kind)?),
            (API_VERSION, "IPAMBlock") => Self::IPAMBlock(typed(value, line, &kind)?),
            ("v1", "Node") => Self::Node(Box::new(typed(value, line, &kind)?)),
            ("v1", "Pod") => Self::Pod(Box::new(typed(value, line, &kind)?)),
            ("v1", "Namespace") => Self::Namespace(typed(value, line, &kind)?),
            ("v1", "Secret") => Self::Secret(typed(value, line, &kind)?),
            ("v1", "ServiceAccount") => Self::ServiceAccount(typed(value, line, &kind)?),
            ("v1", "Service") => Self::Service(Box::new(typed(value, line, &kind)?)),
            ("discovery.k8s.io/v1", "EndpointSlice") => Self::EndpointSlice(Box::new(typed(value, line, &kind)?)),
            ("networking.k8s.io/v1", "NetworkPolicy") => Self::KubeNetworkPolicy(Box::new(typed(value, line, &kind)?)),
            ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy") => {
                Self::ClusterNetworkPolicy(Box::new(typed(value, line, &kind)?))
            }
            ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy") => {
                Self::AdminNetworkPolicy(Box::new(typed(value, line, &kind)?))
            }
            ("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy") => {
                Self::BaselineAdminNetworkPolicy(Box::new(typed(value, line, &kind)?))
            }
            _ => {
                let hint = if api_version == "projectcalico.org/v3" {
                    format!("change apiVersion to {API_VERSION}: gingham reads Calico manifests unchanged otherwise")
                } else {
                    format!(
                        "gingham reads {API_VERSION} kinds plus v1 Node, Pod, Namespace, Secret, ServiceAccount, Service, discovery.k8s.io/v1 EndpointSlice, networking.k8s.io/v1 NetworkPolicy, policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy and v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy"
                    )
                };
                return Err(ManifestError::UnknownKind {
                    line,
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    hint,
                });
            }
        })
    }

    /// The object as JSON, encoded again from its type: a field the type does not keep is gone
    /// (compare with [`crate::unknown_fields::unknown_fields`]).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::IPPool(o) => serde_json::to_value(o),
            Self::BGPConfiguration(o) => serde_json::to_value(o),
            Self::BGPPeer(o) => serde_json::to_value(o),
            Self::FelixConfiguration(o) => serde_json::to_value(o),
            Self::NetworkPolicy(o) => serde_json::to_value(o),
            Self::GlobalNetworkPolicy(o) => serde_json::to_value(o),
            Self::Tier(o) => serde_json::to_value(o),
            Self::NetworkSet(o) => serde_json::to_value(o),
            Self::GlobalNetworkSet(o) => serde_json::to_value(o),
            Self::HostEndpoint(o) => serde_json::to_value(o),
            Self::NodeNetwork(o) => serde_json::to_value(o),
            Self::IPAMBlock(o) => serde_json::to_value(o),
            Self::Node(o) => serde_json::to_value(o),
            Self::Pod(o) => serde_json::to_value(o),
            Self::Namespace(o) => serde_json::to_value(o),
            Self::Secret(o) => serde_json::to_value(o),
            Self::ServiceAccount(o) => serde_json::to_value(o),
            Self::Service(o) => serde_json::to_value(o),
            Self::EndpointSlice(o) => serde_json::to_value(o),
            Self::KubeNetworkPolicy(o) => serde_json::to_value(o),
            Self::ClusterNetworkPolicy(o) => serde_json::to_value(o),
            Self::AdminNetworkPolicy(o) => serde_json::to_value(o),
            Self::BaselineAdminNetworkPolicy(o) => serde_json::to_value(o),
        }
    }

    /// The kind, as written in manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::IPPool(_) => "IPPool",
            Self::BGPConfiguration(_) => "BGPConfiguration",
            Self::BGPPeer(_) => "BGPPeer",
            Self::FelixConfiguration(_) => "FelixConfiguration",
            Self::NetworkPolicy(_) | Self::KubeNetworkPolicy(_) => "NetworkPolicy",
            Self::GlobalNetworkPolicy(_) => "GlobalNetworkPolicy",
            Self::Tier(_) => "Tier",
            Self::NetworkSet(_) => "NetworkSet",
            Self::GlobalNetworkSet(_) => "GlobalNetworkSet",
            Self::HostEndpoint(_) => "HostEndpoint",
            Self::NodeNetwork(_) => "NodeNetwork",
            Self::IPAMBlock(_) => "IPAMBlock",
            Self::Node(_) => "Node",
            Self::Pod(_) => "Pod",
            Self::Namespace(_) => "Namespace",
            Self::Secret(_) => "Secret",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::Service(_) => "Service",
            Self::EndpointSlice(_) => "EndpointSlice",
            Self::ClusterNetworkPolicy(_) => "ClusterNetworkPolicy",
            Self::AdminNetworkPolicy(_) => "AdminNetworkPolicy",
            Self::BaselineAdminNetworkPolicy(_) => "BaselineAdminNetworkPolicy",
        }
    }

    /// Runs the kind's Rust validator (what the schema cannot check). Kubernetes kinds pass.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        match self {
            Self::IPPool(pool) => validate::validate_ippool(&pool.spec),
            Self::BGPConfiguration(config) => validate::validate_bgp_configuration(&config.spec),
            Self::BGPPeer(peer) => validate::validate_bgp_peer(&peer.spec),
            Self::FelixConfiguration(config) => validate::validate_felix_configuration(config),
            Self::NetworkPolicy(policy) => both(
                validate::validate_policy_tier(&policy.name_any(), policy.spec.tier.as_deref()),
                validate::validate_network_policy(&policy.spec),
            ),
            Self::GlobalNetworkPolicy(policy) => both(
                validate::validate_policy_tier(&policy.name_any(), policy.spec.tier.as_deref()),
                validate::validate_global_network_policy(&policy.spec),
            ),
            Self::Tier(tier) => validate::validate_tier(tier),
            Self::NetworkSet(set) => validate::validate_network_set(set.spec.view()),
            Self::GlobalNetworkSet(set) => validate::validate_network_set(set.spec.view()),
            Self::HostEndpoint(endpoint) => validate::validate_host_endpoint(endpoint),
            Self::NodeNetwork(network) => validate::validate_node_network(&network.spec),
            Self::IPAMBlock(block) => validate_applied_block(&block.spec),
            Self::Node(_)
            | Self::Pod(_)
            | Self::Namespace(_)
            | Self::Secret(_)
            | Self::ServiceAccount(_)
            | Self::Service(_)
            | Self::EndpointSlice(_)
            | Self::KubeNetworkPolicy(_)
            | Self::ClusterNetworkPolicy(_)
            | Self::AdminNetworkPolicy(_)
            | Self::BaselineAdminNetworkPolicy(_) => Ok(()),
        }
    }
}

/// Every problem of two checks.
fn both(first: Result<(), Vec<FieldError>>, second: Result<(), Vec<FieldError>>) -> Result<(), Vec<FieldError>> {
    let errors: Vec<FieldError> = [first, second].into_iter().filter_map(Result::err).flatten().collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// An IPAMBlock as a user applies it (one converted from Calico, say): an empty `nodeAddress` is
/// "not known yet", which the operator fills in from the Node when it writes the block. The agents
/// only ever read blocks the operator wrote, and check them whole.
fn validate_applied_block(spec: &crate::api::IPAMBlockSpec) -> Result<(), Vec<FieldError>> {
    let unknown_address = spec.node_address.as_str().is_empty();
    let errors: Vec<FieldError> = validate::validate_ipam_block(spec)
        .err()
        .into_iter()
        .flatten()
        .filter(|error| !(unknown_address && error.path == "spec.nodeAddress"))
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn typed<T: DeserializeOwned>(value: Value, line: usize, kind: &str) -> Result<T, ManifestError> {
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>").to_string();
    serde_json::from_value(value).map_err(|e| ManifestError::Decode {
        line,
        kind: kind.to_string(),
        name,
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "manifest_tests.rs"]
mod tests;
