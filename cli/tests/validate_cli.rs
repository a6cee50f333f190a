//! `gingham validate`, run as a user would: the real binary on a directory of good and bad
//! manifests; every problem printed as `file:line: Kind/name: field.path: message`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const GOOD: &str = "\
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: default
spec:
  cidr: 10.244.0.0/16
  vxlanMode: Always
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
";

const BAD: &str = "\
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: both
spec:
  cidr: 10.1.0.0/16
  ipipMode: Always
  vxlanMode: Always
---
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: inner
spec:
  cidr: 10.244.8.0/24
---
apiVersion: gingham.dev/v1
kind: BGPPeer
metadata:
  name: peer
spec:
  nodeSelector: \"rack ==\"
  peerIP: 192.0.2.1
  asNumber: 64513
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: calico
spec:
  cidr: 10.9.0.0/16
";

fn validate(dir: &Path, args: &[&str]) -> (i32, Vec<String>) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_gingham")).current_dir(dir).arg("validate").args(args).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.code().unwrap(), stdout.lines().map(str::to_string).collect())
}

#[test]
fn valid_manifests_exit_zero_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), GOOD).unwrap();
    assert_eq!(validate(dir.path(), &["good.yaml"]), (0, vec!["2 objects in 1 files: 0 invalid".to_string()]));
}

#[test]
fn every_problem_is_printed_with_file_line_object_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), GOOD).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/bad.yml"), BAD).unwrap();
    std::fs::write(dir.path().join("sub/broken.yaml"), "a: [\n").unwrap();
    std::fs::write(dir.path().join("sub/notes.txt"), "not a manifest").unwrap();
    std::fs::write(dir.path().join("sub/.hidden.yaml"), "a: [\n").unwrap();
    let (code, lines) = validate(dir.path(), &["good.yaml", "sub"]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            "sub/bad.yml:1: IPPool/both: spec: ipipMode and vxlanMode cannot both be enabled: set one of them to Never",
            "sub/bad.yml:10: IPPool/inner: spec.cidr: 10.244.8.0/24 overlaps IPPool default (10.244.0.0/16) in good.yaml:1 (fix: choose a range outside every other pool)",
            "sub/bad.yml:17: BGPPeer/peer: spec.nodeSelector: invalid selector at character 7: expected a label value in quotes, found end of input (fix: write a Calico selector such as role == 'db' && has(app))",
            "sub/bad.yml:26: IPPool/calico: projectcalico.org/v3 IPPool is not a kind gingham reads: change apiVersion to gingham.dev/v1: gingham reads Calico manifests unchanged otherwise",
            "sub/broken.yaml:1: invalid YAML: line 1 column 4: unclosed bracket '['",
            "6 objects in 3 files: 5 invalid",
        ]
    );
}

#[test]
fn a_missing_path_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gingham"))
        .current_dir(dir.path())
        .args(["validate", "missing.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read missing.yaml"));
}

#[test]
fn an_endless_file_stops_at_the_limit_and_a_document_on_its_marker_line_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, lines) = validate(dir.path(), &["/dev/zero"]);
    assert_eq!(code, 1);
    assert_eq!(
        lines[0],
        "/dev/zero:0: /dev/zero is larger than 16777216 bytes, the limit for a manifest file: split it, or check that it is the right file"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    std::fs::write(
        dir.path().join("pool.yaml"),
        "--- {apiVersion: gingham.dev/v1, kind: IPPool, metadata: {name: p}, spec: {cidr: 10.0.0.0/16, ipipMode: Always, vxlanMode: Always}}\n",
    )
    .unwrap();
    let (code, lines) = validate(dir.path(), &["pool.yaml"]);
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("1 objects in 1 files: 1 invalid"));
}
