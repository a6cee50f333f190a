//! `gingham render DIR [--node NAME]`, run as a user would: the derived objects as
//! multi-document YAML on stdout, bad files named on stderr and skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gingham_crds::manifest::read_documents;
use serde_json::Value;

const CLUSTER: &str = "\
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: default
spec:
  cidr: 10.244.0.0/16
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
status:
  addresses:
    - {type: InternalIP, address: 192.168.10.1}
---
apiVersion: v1
kind: Node
metadata:
  name: node-2
status:
  addresses:
    - {type: InternalIP, address: 192.168.10.2}
";

/// Runs `render` and returns (exit code, (kind, name) of each document, the documents, stderr).
fn render(dir: &Path, extra: &[&str]) -> (i32, Vec<(String, String)>, Vec<Value>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gingham")).arg("render").arg(dir).args(extra).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let documents: Vec<Value> = read_documents(&stdout).unwrap().into_iter().map(|d| d.value).collect();
    let names = documents
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d["metadata"]["name"].as_str().unwrap().to_string()))
        .collect();
    (output.status.code().unwrap(), names, documents, String::from_utf8(output.stderr).unwrap())
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect()
}

#[test]
fn render_prints_every_derived_object_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: [\n").unwrap();
    let (code, names, documents, stderr) = render(dir.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(
        names,
        pairs(&[
            ("NodeNetwork", "node-1"),
            ("NodeNetwork", "node-2"),
            ("IPAMBlock", "10-244-0-0-26"),
            ("IPAMBlock", "10-244-0-64-26"),
            ("DaemonSet", "gingham-node-agent"),
        ])
    );
    assert_eq!(documents[0]["spec"]["blocks"], serde_json::json!(["10.244.0.0/26"]));
    assert_eq!(documents[2]["spec"]["node"], "node-1");
    assert!(stderr.contains("skipped: ") && stderr.contains("broken.yaml"), "{stderr}");
    // Rendering writes nothing into the directory.
    assert!(!dir.path().join("generated").exists());
}

#[test]
fn render_for_one_node_prints_only_its_objects() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    let (code, names, _, _) = render(dir.path(), &["--node", "node-2"]);
    assert_eq!(code, 0);
    assert_eq!(names, pairs(&[("NodeNetwork", "node-2"), ("IPAMBlock", "10-244-0-64-26")]));
}
