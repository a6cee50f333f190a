//! `gingham validate FILE|DIR...` (and its alias `gingham-operator validate`): checks manifests the
//! way the cluster would (schema with defaults and CEL, the Rust validators) and, across all the
//! given files, IPPool overlaps.

use std::fmt;
use std::path::{Path, PathBuf};

use gingham_crds::manifest::{Document, Manifest, read_documents, read_manifest_file};
use gingham_crds::offline::validate_document;
use gingham_crds::validate::find_pool_overlaps;

use crate::core::cluster_policy::normalize::check_cluster_policy;
use serde_json::Value;

use gingham_datastore::files::{YamlFilesError, yaml_files};

/// Why validation could not run at all (as opposed to finding problems).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A path could not be listed.
    #[error(transparent)]
    Files(#[from] YamlFilesError),
}

impl ValidateError {
    /// A stable short label for metrics and tests.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Files(e) => e.label(),
        }
    }
}

/// One problem, printed as `file:line: Kind/name: field.path: message`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The line the document starts on (0 when the file could not be read).
    pub line: usize,
    /// `Kind/name`, when the document got that far.
    pub object: Option<String>,
    /// The field path, when the problem is in one field.
    pub path: Option<String>,
    /// What is wrong and the fix.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// The outcome of validating some files; displayed as one line per problem, then the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Documents found.
    pub objects: usize,
    /// Objects (or unreadable files) with at least one problem.
    pub invalid: usize,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// The last line printed.
    pub fn summary(&self) -> String {
        format!("{} objects in {} files: {} invalid", self.objects, self.files, self.invalid)
    }

    /// Whether every object is valid.
    pub fn is_clean(&self) -> bool {
        self.invalid == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        writeln!(f, "{}", self.summary())
    }
}

/// A valid IPPool seen so far: where it is, for overlap reports.
struct PoolSeen {
    name: String,
    cidr: String,
    file: PathBuf,
    line: usize,
}

/// Validates every YAML document under `paths`.
pub fn validate_paths(paths: &[PathBuf]) -> Result<Report, ValidateError> {
    let mut report = Report::default();
    let mut pools = Vec::new();
    for path in paths {
        for file in yaml_files(path)? {
            report.files += 1;
            validate_file(&file, &mut report, &mut pools);
        }
    }
    let keyed: Vec<(String, String, usize)> =
        pools.iter().enumerate().map(|(i, p)| (p.name.clone(), p.cidr.clone(), i)).collect();
    for overlap in find_pool_overlaps(&keyed) {
        let loser = pools.iter().find(|p| p.name == overlap.pool);
        let winner = pools.iter().find(|p| p.name == overlap.other);
        if let (Some(loser), Some(winner)) = (loser, winner) {
            report.invalid += 1;
            report.problems.push(Problem {
                file: loser.file.clone(),
                line: loser.line,
                object: Some(format!("IPPool/{}", loser.name)),
                path: Some("spec.cidr".into()),
                message: format!(
                    "{} overlaps IPPool {} ({}) in {}:{} (fix: choose a range outside every other pool)",
                    loser.cidr,
                    winner.name,
                    winner.cidr,
                    winner.file.display(),
                    winner.line
                ),
            });
        }
    }
    report.problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    Ok(report)
}

fn validate_file(file: &Path, report: &mut Report, pools: &mut Vec<PoolSeen>) {
    let problem = |line: usize, object: Option<String>, path: Option<String>, message: String| Problem {
        file: file.to_path_buf(),
        line,
        object,
        path,
        message,
    };
    let text = match read_manifest_file(file) {
        Ok(text) => text,
        Err(e) => {
            report.invalid += 1;
            report.problems.push(problem(0, None, None, e.to_string()));
            return;
        }
    };
    let documents = match read_documents(&text) {
        Ok(documents) => documents,
        Err(e) => {
            report.invalid += 1;
            let line = e.line();
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            report.problems.push(problem(line, None, None, strip_line_prefix(first, line)));
            return;
        }
    };
    for document in documents {
        report.objects += 1;
        let object = object_label(&document);
        match validate_document(&document) {
            Ok(Manifest::IPPool(pool)) => pools.push(PoolSeen {
                name: pool.metadata.name.clone().unwrap_or_default(),
                cidr: pool.spec.cidr.clone(),
                file: file.to_path_buf(),
                line: document.line,
            }),
            Ok(manifest) => {
                let found = check_cluster_policy(&manifest);
                report.invalid += usize::from(!found.is_empty());
                for p in found {
                    let (path, message) = match p.message.split_once(": ") {
                        Some((path, message)) => (Some(path.to_string()), message.to_string()),
                        None => (None, p.message.clone()),
                    };
                    report.problems.push(problem(document.line, Some(object.clone()), path, message));
                }
            }
            Err(found) => {
                report.invalid += 1;
                for p in found {
                    let path = (!p.path.is_empty()).then_some(p.path);
                    let message = strip_line_prefix(&p.message, document.line);
                    report.problems.push(problem(document.line, Some(object.clone()), path, message));
                }
            }
        }
    }
}

/// `Kind/name` of a document, as far as it says.
fn object_label(document: &Document) -> String {
    let field = |pointer: &str| document.value.pointer(pointer).and_then(Value::as_str).unwrap_or("<unnamed>");
    format!("{}/{}", field("/kind"), field("/metadata/name"))
}

/// Manifest errors start with `line N: `; the printed problem already says where.
fn strip_line_prefix(message: &str, line: usize) -> String {
    message.strip_prefix(&format!("line {line}: ")).unwrap_or(message).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn documents_on_their_marker_line_names_that_are_no_strings_and_endless_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "a pool on its --- line is read and checked",
                "--- {apiVersion: gingham.dev/v1, kind: IPPool, metadata: {name: p}, spec: {cidr: 10.0.0.0/33}}\n",
                (1, 1),
                "1: IPPool/p: ",
            ),
            (
                "a cluster policy's problems name the field",
                "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: mine}\nspec: {subject: {namespaces: {}}}\n",
                (1, 1),
                "1: BaselineAdminNetworkPolicy/mine: metadata.name: only one",
            ),
            (
                "a bare y is no name",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: y\n",
                (0, 1),
                "4: metadata.name is the boolean true",
            ),
        ];
        for (case, text, (objects, invalid), message) in cases {
            let file = dir.path().join("case.yaml");
            std::fs::write(&file, text).unwrap();
            let report = validate_paths(std::slice::from_ref(&file)).unwrap();
            assert_eq!((report.objects, report.invalid), (objects, invalid), "{case}: {:?}", report.problems);
            let printed = report.problems[0].to_string();
            assert!(printed.starts_with(&format!("{}:{message}", file.display())), "{case}: {printed}");
        }
        let report = validate_paths(&[PathBuf::from("/dev/zero")]).unwrap();
        assert_eq!((report.files, report.objects, report.invalid), (1, 0, 1));
        assert_eq!(
            report.problems[0].to_string(),
            format!(
                "/dev/zero:0: /dev/zero is larger than {} bytes, the limit for a manifest file: split it, or check that it is the right file",
                gingham_crds::manifest::MAX_MANIFEST_BYTES
            )
        );
    }

    #[test]
    fn overlapping_pools_report_the_younger_one_only() {
        let dir = tempfile::tempdir().unwrap();
        let pool = |name: &str, cidr: &str| {
            format!("apiVersion: gingham.dev/v1\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n")
        };
        std::fs::write(dir.path().join("a.yaml"), pool("first", "10.0.0.0/16")).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            format!("{}---\n{}", pool("second", "10.0.1.0/24"), pool("third", "10.1.0.0/16")),
        )
        .unwrap();
        let report = validate_paths(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!((report.files, report.objects, report.invalid), (2, 3, 1));
        let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        let b = dir.path().join("b.yaml");
        let a = dir.path().join("a.yaml");
        assert_eq!(
            lines,
            [format!(
                "{}:1: IPPool/second: spec.cidr: 10.0.1.0/24 overlaps IPPool first (10.0.0.0/16) in {}:1 (fix: choose a range outside every other pool)",
                b.display(),
                a.display()
            )]
        );
    }
}
