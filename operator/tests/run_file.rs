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

/// Sends SIGTERM and waits for a clean exit.
fn stop(operator: &mut Guard) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(operator.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = operator.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the operator did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
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

    stop(&mut operator);
    let mut logs = String::new();
    operator.0.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    // Every log line is JSON (anything else on stderr is not a log line and is ignored).
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["fields"]["message"].is_string()), "{logs}");
    let skipped: Vec<String> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "skipping an invalid object")
        .map(|l| l["fields"]["problem"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(skipped.iter().any(|p| p.contains("broken.yaml")), "{skipped:?}");
    assert!(skipped.iter().any(|p| p.contains("worse.yaml")), "{skipped:?}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "shutting down"), "{logs}");
}

const NODE: &str = "\
apiVersion: v1
kind: Node
metadata:
  name: NAME
status:
  addresses:
    - {type: InternalIP, address: ADDRESS}
";

fn node(name: &str, address: &str) -> String {
    NODE.replace("NAME", name).replace("ADDRESS", address)
}

/// Inode and modification time of every file the operator wrote.
fn generated_stamps(dir: &Path) -> Vec<(String, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut stamps = Vec::new();
    for area in ["generated/nodenetworks", "generated/ipamblocks", "status/ippools"] {
        for entry in std::fs::read_dir(dir.join(area)).unwrap() {
            let entry = entry.unwrap();
            let m = entry.metadata().unwrap();
            stamps.push((
                format!("{area}/{}", entry.file_name().to_string_lossy()),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
            ));
        }
    }
    stamps.sort();
    stamps
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    gingham_crds::manifest::read_documents(&text).unwrap().remove(0).value
}

#[test]
fn nodes_join_with_few_writes_and_a_restart_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("pool.yaml"), USER_OBJECTS).unwrap();
    std::fs::write(
        root.join("nodes.yaml"),
        format!("{}---\n{}", node("node-1", "192.168.10.1"), node("node-2", "192.168.10.2")),
    )
    .unwrap();
    let (metrics, health) = (free_port(), free_port());
    let mut operator = start(root, metrics, health);
    let node_1 = root.join("generated/nodenetworks/node-1.yaml");
    let pool_status = root.join("status/ippools/default.yaml");
    wait_for("both NodeNetworks and the pool status", || {
        node_1.exists() && root.join("generated/nodenetworks/node-2.yaml").exists() && pool_status.exists()
    });
    wait_for("two blocks", || std::fs::read_dir(root.join("generated/ipamblocks")).is_ok_and(|d| d.count() == 2));
    let status = yaml(&pool_status);
    assert_eq!(status["status"]["conditions"][0]["type"], "Allocatable");
    assert_eq!(status["status"]["conditions"][0]["status"], "True");
    assert_eq!(status["status"]["blocksInUse"], 2);

    // Settled: several polls later nothing has been rewritten.
    std::thread::sleep(Duration::from_millis(1200));
    let settled = generated_stamps(root);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(generated_stamps(root), settled, "the operator keeps rewriting unchanged objects");
    assert_eq!(yaml(&node_1)["metadata"]["generation"], 1);

    // A third node joins: its own objects appear, and nothing of the other nodes is rewritten
    // (their new mesh session travels in their spans, through the stream).
    let others = generated_stamps(root);
    std::fs::create_dir_all(root.join("objects")).unwrap();
    std::fs::write(root.join("objects/node-3.yaml"), node("node-3", "192.168.10.3")).unwrap();
    wait_for("node-3's NodeNetwork", || root.join("generated/nodenetworks/node-3.yaml").exists());
    wait_for("three blocks in use", || yaml(&pool_status)["status"]["blocksInUse"] == 3);
    std::thread::sleep(Duration::from_millis(1200));
    let unchanged: Vec<_> = generated_stamps(root).into_iter().filter(|s| others.iter().any(|o| o.0 == s.0)).collect();
    let pool = |stamps: &[(String, u64, i64, i64)]| {
        stamps.iter().filter(|s| !s.0.starts_with("status/")).cloned().collect::<Vec<_>>()
    };
    assert_eq!(pool(&unchanged), pool(&others), "a joining node rewrote another node's objects");
    assert_eq!(yaml(&node_1)["metadata"]["generation"], 1);
    stop(&mut operator);

    // A restart reads its blocks back and rewrites nothing.
    let before = generated_stamps(root);
    let mut operator = start(root, metrics, health);
    wait_for("readiness", || http_get(health, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(generated_stamps(root), before, "a restart rewrote objects");
    stop(&mut operator);
}
