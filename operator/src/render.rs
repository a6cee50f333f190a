//! `gingham render DIR [--node NAME [--span]]` (and its alias `gingham-operator render`): what
//! the operator would derive from a file datastore directory, as multi-document YAML. Serves
//! GitOps previews and the lab.
//!
//! Each node's span (what the stream sends its agent, never an API object) is shown after its
//! NodeNetwork as a document of kind `NodeSpan` in `stream.gingham.dev/v1`. With `--span`, only
//! that node's span is printed, bare, as `gingham-node-agent --span-file` reads it.

use std::path::Path;
use std::process::ExitCode;

use gingham_crds::api::span::NodeSpan;
use serde::Serialize;

use crate::cli::RenderArgs;
use crate::core::{self, OperatorSettings};
use crate::datastore::file::FileError;
use crate::datastore::file::read::Reader;
use crate::datastore::objects::{ipam_block, node_network, translated_global_policy, translated_policy};

/// The rendered YAML, and the problems found in the directory (to print on stderr).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The derived objects: NodeNetworks, IPAMBlocks, translated policies, the DaemonSet.
    pub yaml: String,
    /// Bad files and objects, skipped.
    pub problems: Vec<String>,
}

/// The API version the rendered span documents carry: not an API group the server serves.
pub const SPAN_API_VERSION: &str = "stream.gingham.dev/v1";

/// What to render.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Every derived object.
    #[default]
    All,
    /// One node's objects.
    Node(&'a str),
    /// One node's span, bare.
    Span(&'a str),
}

/// Reads `dir` once, computes, and renders the derived objects `selection` asks for.
pub fn render(dir: &Path, selection: Selection<'_>, settings: &OperatorSettings) -> Result<Rendered, FileError> {
    let outcome = Reader::new(dir).read()?;
    let desired = core::compute(&outcome.snapshot, settings);
    let mut problems = outcome.problems;
    problems.extend(desired.problems.iter().map(|p| {
        let namespace = p.namespace.as_ref().map(|n| format!("{n}/")).unwrap_or_default();
        format!("{}/{namespace}{}: {}: {}", p.kind, p.name, p.reason, p.message)
    }));
    let yaml = |object: &dyn ErasedSerialize| {
        object.yaml().map_err(|e| FileError::Render { path: dir.to_path_buf(), message: e.to_string() })
    };
    let mut documents = Vec::new();
    let node = match selection {
        Selection::All => None,
        Selection::Node(node) => Some(node),
        Selection::Span(node) => {
            if let Some(span) = desired.spans.get(node) {
                documents.push(yaml(span)?);
            } else {
                problems.push(format!("Node/{node}: NotFound: the directory has no node {node}, so no span"));
            }
            return Ok(Rendered { yaml: documents.join("---\n"), problems });
        }
    };
    let wanted = |name: &str| node.is_none_or(|n| n == name);
    for (name, spec) in desired.node_networks.iter().filter(|(name, _)| wanted(name)) {
        documents.push(yaml(&node_network(name, spec, Some(1)))?);
        if let Some(span) = desired.spans.get(name) {
            let document = SpanDocument {
                api_version: SPAN_API_VERSION,
                kind: "NodeSpan",
                metadata: SpanMetadata { name },
                spec: span,
            };
            documents.push(yaml(&document)?);
        }
    }
    for (name, spec) in desired.blocks.iter().filter(|(_, spec)| wanted(&spec.node)) {
        documents.push(yaml(&ipam_block(name, spec))?);
    }
    if node.is_none() {
        for (key, policy) in &desired.translated_policies {
            documents.push(yaml(&translated_policy(key, policy))?);
        }
        for (name, policy) in &desired.translated_global_policies {
            documents.push(yaml(&translated_global_policy(name, policy))?);
        }
        if let Some(daemon_set) = &desired.agent_daemon_set {
            documents.push(yaml(daemon_set)?);
        }
    }
    Ok(Rendered { yaml: documents.join("---\n"), problems })
}

/// A node's span as a rendered document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanDocument<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: SpanMetadata<'a>,
    spec: &'a NodeSpan,
}

/// The name a rendered span document carries: its node's.
#[derive(Serialize)]
struct SpanMetadata<'a> {
    name: &'a str,
}

/// Runs `render` as a command: skipped objects on stderr, the YAML on stdout; exit 2 when the
/// directory cannot be read (`gingham render` and `gingham-operator render`).
pub fn run(args: &RenderArgs) -> ExitCode {
    let selection = match (args.node.as_deref(), args.span) {
        (Some(node), true) => Selection::Span(node),
        (Some(node), false) => Selection::Node(node),
        (None, _) => Selection::All,
    };
    match render(&args.dir, selection, &args.settings.to_settings()) {
        Ok(rendered) => {
            for problem in &rendered.problems {
                eprintln!("skipped: {problem}");
            }
            print!("{}", rendered.yaml);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Any serializable value, rendered as one YAML document.
trait ErasedSerialize {
    fn yaml(&self) -> Result<String, serde_saphyr::ser::Error>;
}

impl<T: Serialize> ErasedSerialize for T {
    fn yaml(&self) -> Result<String, serde_saphyr::ser::Error> {
        serde_saphyr::to_string(self)
    }
}
