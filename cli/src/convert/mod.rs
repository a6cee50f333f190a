//! `gingham convert -f FILE|DIR|-`: Calico manifests (and Kubernetes NetworkPolicies) as gingham
//! ones, validated, with every field that does not carry over named. The output is a YAML stream
//! that `gingham validate` and `kubectl apply` read; notes are YAML comments above each object.

mod calico;

use std::io::Read;
use std::path::Path;

use gingham_crds::manifest::{Document, read_documents, read_manifest_file};
use gingham_datastore::files::yaml_files;
use serde::Serialize;

pub use calico::Converted;

use crate::output::Report;

/// What `convert` prints.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConvertReport {
    /// Every input document, in order.
    pub documents: Vec<Converted>,
}

impl ConvertReport {
    /// Whether every document converted to a valid gingham object.
    pub fn is_clean(&self) -> bool {
        self.documents.iter().all(|d| d.problems.is_empty())
    }
}

/// Reads `path` (a file, a directory of `*.yaml`, or `-` for stdin) and converts every document.
pub fn convert_path(path: &Path) -> Result<ConvertReport, String> {
    let mut inputs: Vec<(String, String)> = Vec::new();
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
        inputs.push(("-".into(), text));
    } else {
        for file in yaml_files(path).map_err(|e| e.to_string())? {
            let text = read_manifest_file(&file).map_err(|e| e.to_string())?;
            inputs.push((file.display().to_string(), text));
        }
    }
    let mut parsed: Vec<(String, Document)> = Vec::new();
    let mut report = ConvertReport::default();
    for (name, text) in inputs {
        match read_documents(&text) {
            Ok(documents) => parsed.extend(documents.into_iter().map(|d| (name.clone(), d))),
            Err(e) => {
                report.documents.push(Converted { source: name, problems: vec![e.to_string()], ..Converted::default() })
            }
        }
    }
    let documents: Vec<Document> = parsed.iter().map(|(_, d)| d.clone()).collect();
    let pools = calico::pools(&documents);
    for (name, document) in &parsed {
        report.documents.push(calico::convert(document, &format!("{name}:{}", document.line), &pools));
    }
    Ok(report)
}

impl Report for ConvertReport {
    fn human(&self) -> String {
        let mut out = String::new();
        for document in &self.documents {
            out += &format!("# from {} ({})\n", document.source, document.input);
            for dropped in &document.dropped {
                out += &format!("# not carried over: {dropped}\n");
            }
            for problem in &document.problems {
                out += &format!("# PROBLEM: {problem}\n");
            }
            match document.object.as_ref().map(serde_saphyr::to_string) {
                Some(Ok(yaml)) => out += &format!("---\n{yaml}"),
                Some(Err(e)) => out += &format!("# PROBLEM: cannot print as YAML: {e}\n"),
                None => {}
            }
        }
        let bad = self.documents.iter().filter(|d| !d.problems.is_empty()).count();
        out + &format!(
            "# {} documents: {} converted cleanly, {bad} with problems\n",
            self.documents.len(),
            self.documents.len() - bad
        )
    }
}
