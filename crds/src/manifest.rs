//! Reading manifests: YAML text with one or more documents, each dispatched by `apiVersion` and
//! `kind` to a typed object. Used by the file datastore, `validate` and the lab.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    API_VERSION, BGPConfiguration, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, IPAMBlock, IPPool, NetworkPolicy,
    NodeNetwork,
};
use crate::validate::{self, FieldError};

/// A manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML does not parse.
    #[error("line {line}: invalid YAML: {message}")]
    Yaml {
        /// The line the document starts on (1-based).
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
            Self::Decode { .. } => "decode",
        }
    }
}

/// One YAML document of a file, as JSON, with the line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The line the document starts on (1-based).
    pub line: usize,
    /// The document's content.
    pub value: Value,
}

/// Splits YAML text into its non-empty documents.
pub fn read_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    let mut documents = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    let flush = |start: usize, body: &str, documents: &mut Vec<Document>| -> Result<(), ManifestError> {
        if body.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return Ok(());
        }
        let value: Value =
            serde_saphyr::from_str(body).map_err(|e| ManifestError::Yaml { line: start, message: e.to_string() })?;
        if !value.is_null() {
            documents.push(Document { line: start, value });
        }
        Ok(())
    };
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            flush(start, &current, &mut documents)?;
            current.clear();
            start = index + 2;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(start, &current, &mut documents)?;
    Ok(documents)
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
    /// networking.k8s.io/v1 NetworkPolicy.
    KubeNetworkPolicy(Box<KubeNetworkPolicy>),
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
            (API_VERSION, "NodeNetwork") => Self::NodeNetwork(typed(value, line, &kind)?),
            (API_VERSION, "IPAMBlock") => Self::IPAMBlock(typed(value, line, &kind)?),
            ("v1", "Node") => Self::Node(Box::new(typed(value, line, &kind)?)),
            ("v1", "Pod") => Self::Pod(Box::new(typed(value, line, &kind)?)),
            ("v1", "Namespace") => Self::Namespace(typed(value, line, &kind)?),
            ("v1", "Secret") => Self::Secret(typed(value, line, &kind)?),
            ("networking.k8s.io/v1", "NetworkPolicy") => Self::KubeNetworkPolicy(Box::new(typed(value, line, &kind)?)),
            _ => {
                let hint = if api_version == "projectcalico.org/v3" {
                    format!("change apiVersion to {API_VERSION}: gingham reads Calico manifests unchanged otherwise")
                } else {
                    format!(
                        "gingham reads {API_VERSION} kinds plus v1 Node, Pod, Namespace, Secret and networking.k8s.io/v1 NetworkPolicy"
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

    /// The kind, as written in manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::IPPool(_) => "IPPool",
            Self::BGPConfiguration(_) => "BGPConfiguration",
            Self::BGPPeer(_) => "BGPPeer",
            Self::FelixConfiguration(_) => "FelixConfiguration",
            Self::NetworkPolicy(_) | Self::KubeNetworkPolicy(_) => "NetworkPolicy",
            Self::GlobalNetworkPolicy(_) => "GlobalNetworkPolicy",
            Self::NodeNetwork(_) => "NodeNetwork",
            Self::IPAMBlock(_) => "IPAMBlock",
            Self::Node(_) => "Node",
            Self::Pod(_) => "Pod",
            Self::Namespace(_) => "Namespace",
            Self::Secret(_) => "Secret",
        }
    }

    /// Runs the kind's Rust validator (what the schema cannot check). Kubernetes kinds pass.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        match self {
            Self::IPPool(pool) => validate::validate_ippool(&pool.spec),
            Self::BGPConfiguration(config) => validate::validate_bgp_configuration(&config.spec),
            Self::BGPPeer(peer) => validate::validate_bgp_peer(&peer.spec),
            Self::FelixConfiguration(config) => validate::validate_felix_configuration(config),
            Self::NetworkPolicy(policy) => validate::validate_network_policy(&policy.spec),
            Self::GlobalNetworkPolicy(policy) => validate::validate_global_network_policy(&policy.spec),
            Self::NodeNetwork(network) => validate::validate_node_network(&network.spec),
            Self::IPAMBlock(_)
            | Self::Node(_)
            | Self::Pod(_)
            | Self::Namespace(_)
            | Self::Secret(_)
            | Self::KubeNetworkPolicy(_) => Ok(()),
        }
    }
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
