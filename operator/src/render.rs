//! `gingham render DIR [--node NAME]` (and its alias `gingham-operator render`): what the operator
//! would derive from a file datastore directory, as multi-document YAML. Serves GitOps previews
//! and the lab.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::RenderArgs;
use crate::core::{self, OperatorSettings};
use crate::datastore::file::FileError;
use crate::datastore::file::read::Reader;
use crate::datastore::objects::{ipam_block, node_network, translated_policy};

/// The rendered YAML, and the problems found in the directory (to print on stderr).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The derived objects: NodeNetworks, IPAMBlocks, translated policies, the DaemonSet.
    pub yaml: String,
    /// Bad files and objects, skipped.
    pub problems: Vec<String>,
}

/// Reads `dir` once, computes, and renders the derived objects (only `node`'s with `--node`).
pub fn render(dir: &Path, node: Option<&str>, settings: &OperatorSettings) -> Result<Rendered, FileError> {
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
    let wanted = |name: &str| node.is_none_or(|n| n == name);
    for (name, spec) in desired.node_networks.iter().filter(|(name, _)| wanted(name)) {
        documents.push(yaml(&node_network(name, spec, Some(1)))?);
    }
    for (name, spec) in desired.blocks.iter().filter(|(_, spec)| wanted(&spec.node)) {
        documents.push(yaml(&ipam_block(name, spec))?);
    }
    if node.is_none() {
        for (key, policy) in &desired.translated_policies {
            documents.push(yaml(&translated_policy(key, policy))?);
        }
        if let Some(daemon_set) = &desired.agent_daemon_set {
            documents.push(yaml(daemon_set)?);
        }
    }
    Ok(Rendered { yaml: documents.join("---\n"), problems })
}

/// Runs `render` as a command: skipped objects on stderr, the YAML on stdout; exit 2 when the
/// directory cannot be read (`gingham render` and `gingham-operator render`).
pub fn run(args: &RenderArgs) -> ExitCode {
    match render(&args.dir, args.node.as_deref(), &args.settings.to_settings()) {
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
