//! `gingham render DIR [--node NAME [--span]]`, run as a user would: the derived objects and each
//! node's span as multi-document YAML on stdout, bad files named on stderr and skipped.

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
            ("NodeSpan", "node-1"),
            ("NodeNetwork", "node-2"),
            ("NodeSpan", "node-2"),
            ("IPAMBlock", "10-244-0-0-26"),
            ("IPAMBlock", "10-244-0-64-26"),
            ("DaemonSet", "gingham-node-agent"),
        ])
    );
    assert_eq!(documents[0]["spec"]["blocks"], serde_json::json!(["10.244.0.0/26"]));
    assert_eq!(documents[0]["spec"].get("policy").and_then(|p| p.get("endpoints")), None, "no span in the object");
    assert_eq!(documents[1]["apiVersion"], "stream.gingham.dev/v1");
    let mesh = &documents[1]["spec"]["bgpPeers"][0];
    assert_eq!((&mesh["name"], &mesh["address"]), (&"mesh_192_168_10_2".into(), &"192.168.10.2".into()));
    assert_eq!(documents[4]["spec"]["node"], "node-1");
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
    assert_eq!(names, pairs(&[("NodeNetwork", "node-2"), ("NodeSpan", "node-2"), ("IPAMBlock", "10-244-0-64-26")]));
}

/// `--span` prints the node's span alone and bare, as `gingham-node-agent --span-file` reads it.
#[test]
fn render_span_prints_the_bare_span_an_agent_reads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gingham"))
        .args(["render", dir.path().to_str().unwrap(), "--node", "node-2", "--span"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let span: gingham_crds::api::span::NodeSpan =
        serde_saphyr::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert_eq!(span.bgp_peers.iter().map(|p| p.address.as_str()).collect::<Vec<_>>(), ["192.168.10.1"]);
    let missing = Command::new(env!("CARGO_BIN_EXE_gingham"))
        .args(["render", dir.path().to_str().unwrap(), "--node", "node-9", "--span"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no node node-9"), "a node that is not there is named");
    let alone = Command::new(env!("CARGO_BIN_EXE_gingham")).args(["render", "x", "--span"]).output().unwrap();
    assert_eq!(alone.status.code(), Some(2), "--span needs --node");
}
