//! `gingham-operator run --datastore file`, run as the lab runs it: the real binary on a
//! directory; it removes stale generated files, serves health and metrics, survives a bad file,
//! logs JSON, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER_OBJECTS: &str = "\
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: default
spec:
  cidr: 10.244.0.0/16
";

const GHOST: &str = "\
apiVersion: gingham.dev/v1
kind: NodeNetwork
metadata:
  name: ghost
  labels:
    app.kubernetes.io/managed-by: gingham-operator
spec:
  address: 192.168.10.99/24
";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child if the test fails before it stops it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn start(dir: &Path, metrics: u16, health: u16) -> Guard {
    let child = Command::new(env!("CARGO_BIN_EXE_gingham-operator"))
        .args(["--log-format", "json", "run", "--datastore", "file", "--dir"])
        .arg(dir)
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}"), "--health-addr", &format!("127.0.0.1:{health}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(child)
}

#[test]
fn the_file_operator_reconciles_serves_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pools.yaml"), USER_OBJECTS).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "kind: [\n").unwrap();
    std::fs::create_dir_all(dir.path().join("generated/nodenetworks")).unwrap();
    let ghost = dir.path().join("generated/nodenetworks/ghost.yaml");
    std::fs::write(&ghost, GHOST).unwrap();
    let (metrics, health) = (free_port(), free_port());
    let mut operator = start(dir.path(), metrics, health);

    wait_for("the stale NodeNetwork to be removed", || !ghost.exists());
    wait_for("readiness", || http_get(health, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    let healthz = http_get(health, "/healthz").unwrap();
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
    let text = http_get(metrics, "/metrics").unwrap();
    assert!(text.contains("gingham_operator_writes_total{kind=\"NodeNetwork\",op=\"delete\"} 1"), "{text}");
    assert!(text.contains("gingham_operator_reconciles_total{controller=\"cluster\"}"), "{text}");

    // A new bad file changes nothing else; the operator keeps running.
    std::fs::write(dir.path().join("worse.yaml"), "apiVersion: gingham.dev/v1\nkind: IPPool\n").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(operator.0.try_wait().unwrap().is_none(), "the operator stopped");

    let status = Command::new("kill").args(["-TERM", &operator.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = operator.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the operator did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    operator.0.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    let lines: Vec<serde_json::Value> = logs.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let skipped: Vec<String> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "skipping an invalid object")
        .map(|l| l["fields"]["problem"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(skipped.iter().any(|p| p.contains("broken.yaml")), "{skipped:?}");
    assert!(skipped.iter().any(|p| p.contains("worse.yaml")), "{skipped:?}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "shutting down"), "{logs}");
}
