#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two real agents (file datastore, span files, kernel dataplane, supervised BIRD) in two
//! namespaces: their BIRDs peer, each node learns the other's block `proto bird`, status reports
//! the session, and a spec change reconfigures BIRD without a restart. An agent leaves BIRD alone
//! until its span says which sessions to run; then it leaves out the sessions BIRD refuses, runs
//! the rest and reports them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Namespaces and agents, removed and stopped (by PID) on drop.
struct Lab {
    namespaces: Vec<String>,
    agents: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            // SIGTERM lets the agent stop its BIRD; then make sure.
            let _ = Command::new("kill").args(["-TERM", &agent.id().to_string()]).status();
            let start = Instant::now();
            while agent.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = agent.kill();
            let _ = agent.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) -> String {
    let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn spec(node: &str, address: &str, block: &str, generation: i64) -> String {
    format!(
        "apiVersion: gingham.dev/v1
kind: NodeNetwork
metadata:
  name: {node}
  generation: {generation}
spec:
  address: {address}/24
  blocks: [{block}]
  pools:
    - name: default
      cidr: 10.88.0.0/16
  bgp:
    routerID: {address}
    asNumber: 64512
"
    )
}

/// The node's span: one mesh session to `peer`.
fn span(peer: &str) -> String {
    format!(
        "bgpPeers:
  - name: Mesh_{peer_name}
    address: {peer}
    asNumber: 64512
",
        peer_name = peer.replace('.', "_")
    )
}

/// Starts the real agent for `node` in namespace `ns` over the datastore `store`, its span from
/// `dir/<node>-span.yaml`, its own files under `dir/<node>`, its log in `dir/<node>.log`.
fn agent(ns: &str, node: &str, store: &Path, dir: &Path) -> Child {
    let home = dir.join(node);
    let log = std::fs::File::create(dir.join(format!("{node}.log"))).unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_gingham-node-agent"), "--node", node, "--datastore", "file"])
        .arg("--dir")
        .arg(store)
        .arg("--span-file")
        .arg(dir.join(format!("{node}-span.yaml")))
        .arg("--state-dir")
        .arg(home.join("state"))
        .arg("--cni-socket")
        .arg(home.join("cni.sock"))
        .arg("--bird-dir")
        .arg(home.join("bird"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn status(dir: &Path, node: &str) -> Value {
    std::fs::read_to_string(dir.join(format!("status/nodenetworks/{node}.yaml")))
        .ok()
        .and_then(|text| serde_saphyr::from_str::<Value>(&text).ok())
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

fn wait(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(40), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_agents_exchange_their_blocks_over_bgp() {
    let id = std::process::id();
    let mut lab = Lab { namespaces: vec![format!("gba-a-{id}"), format!("gba-b-{id}")], agents: Vec::new() };
    for ns in &lab.namespaces {
        let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        run(&["ip", "netns", "add", ns]);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    let (a, b) = (lab.namespaces[0].clone(), lab.namespaces[1].clone());
    run(&["ip", "-n", &a, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", &b]);
    for (ns, address) in [(&a, "10.98.0.1/24"), (&b, "10.98.0.2/24")] {
        run(&["ip", "-n", ns, "addr", "add", address, "dev", "ul0"]);
        run(&["ip", "-n", ns, "link", "set", "ul0", "up"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("datastore");
    let networks = store.join("generated/nodenetworks");
    std::fs::create_dir_all(&networks).unwrap();
    std::fs::write(networks.join("node-a.yaml"), spec("node-a", "10.98.0.1", "10.88.1.0/26", 1)).unwrap();
    std::fs::write(networks.join("node-b.yaml"), spec("node-b", "10.98.0.2", "10.88.2.0/26", 1)).unwrap();
    std::fs::write(dir.path().join("node-a-span.yaml"), span("10.98.0.2")).unwrap();
    std::fs::write(dir.path().join("node-b-span.yaml"), span("10.98.0.1")).unwrap();
    for (ns, node) in [(&a, "node-a"), (&b, "node-b")] {
        lab.agents.push(agent(ns, node, &store, dir.path()));
    }
    let logs = || std::fs::read_to_string(dir.path().join("node-a.log")).unwrap_or_default();

    wait("node-b to learn node-a's block from BIRD", || {
        run(&["ip", "-n", &b, "-4", "route", "show", "10.88.1.0/26"]).contains("proto bird")
    });
    wait("node-a to learn node-b's block from BIRD", || {
        run(&["ip", "-n", &a, "-4", "route", "show", "10.88.2.0/26"]).contains("proto bird")
    });
    wait("node-a to report its session established", || status(&store, "node-a")["bgpSummary"] == "1/1");
    let reported = status(&store, "node-a");
    assert_eq!(reported["bgpSessions"][0]["name"], "Mesh_10_98_0_2", "{reported}");
    assert_eq!(reported["bgpSessions"][0]["peerAddress"], "10.98.0.2");
    let bgp = reported["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "BGPEstablished").unwrap();
    assert_eq!(bgp["status"], "True", "{reported}\n{}", logs());
    // BIRD (root) reads a config only root may read: it holds the BGP passwords.
    let mode = |path: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions());
    let bird_dir = dir.path().join("node-a/bird");
    assert_eq!((mode(&bird_dir) & 0o777, mode(&bird_dir.join("bird.conf")) & 0o777), (0o700, 0o600));

    // A second block on node-a reaches node-b through a reload of the same BIRD.
    let pid_before = run(&["pgrep", "-f", &format!("{}/bird.conf", dir.path().join("node-a/bird").display())]);
    let two_blocks = spec("node-a", "10.98.0.1", "10.88.1.0/26, 10.88.3.0/26", 2);
    let temp = networks.join(".node-a.yaml.tmp");
    std::fs::write(&temp, two_blocks).unwrap();
    std::fs::rename(&temp, networks.join("node-a.yaml")).unwrap();
    wait("node-b to learn node-a's new block", || {
        run(&["ip", "-n", &b, "-4", "route", "show", "10.88.3.0/26"]).contains("proto bird")
    });
    let pid_after = run(&["pgrep", "-f", &format!("{}/bird.conf", dir.path().join("node-a/bird").display())]);
    assert_eq!(pid_before, pid_after, "BIRD was reconfigured, not restarted");
    wait("node-a to report generation 2", || status(&store, "node-a")["observedGeneration"] == 2);
}

/// A node whose span carries BGP sessions BIRD refuses (`keepaliveTime: 0s` from one BGPPeer; a
/// session name BIRD reads as a keyword) and whose BIRD directory is empty, as after a reboot:
/// until the span arrives the agent leaves BIRD alone and says so; then it starts BIRD with the
/// good session, and reports the others in status.
#[test]
fn an_agent_leaves_out_sessions_bird_refuses_and_reports_them() {
    let ns = format!("gba-bad-{}", std::process::id());
    let mut lab = Lab { namespaces: vec![ns.clone()], agents: Vec::new() };
    let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
    run(&["ip", "netns", "add", &ns]);
    run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    run(&["ip", "-n", &ns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1"]);
    run(&["ip", "-n", &ns, "addr", "add", "10.98.0.1/24", "dev", "ul0"]);
    run(&["ip", "-n", &ns, "link", "set", "ul0", "up"]);
    run(&["ip", "-n", &ns, "link", "set", "ul1", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("datastore");
    let networks = store.join("generated/nodenetworks");
    std::fs::create_dir_all(&networks).unwrap();
    std::fs::write(networks.join("node-a.yaml"), spec("node-a", "10.98.0.1", "10.88.1.0/26", 1)).unwrap();
    lab.agents.push(agent(&ns, "node-a", &store, dir.path()));
    let home = dir.path().join("node-a");
    let logs = || std::fs::read_to_string(dir.path().join("node-a.log")).unwrap_or_default();
    let bgp_condition = || {
        let reported = status(&store, "node-a");
        reported["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "BGPEstablished").cloned()
    };
    wait("BGP to wait for the span", || bgp_condition().is_some_and(|c| c["reason"] == "WaitingForSpan"));
    assert!(!home.join("bird/bird.conf").exists(), "no BIRD config without the span's sessions:\n{}", logs());

    let bad_sessions = "  - name: peer_keepalive
    address: 10.98.0.7
    asNumber: 65000
    keepaliveSeconds: 0
  - name: bgp
    address: 10.98.0.8
    asNumber: 65000
";
    let temp = dir.path().join(".node-a-span.yaml.tmp");
    std::fs::write(&temp, span("10.98.0.2") + bad_sessions).unwrap();
    std::fs::rename(&temp, dir.path().join("node-a-span.yaml")).unwrap();
    wait("the sessions BIRD refuses to be reported", || {
        bgp_condition().is_some_and(|c| c["reason"] == "SessionsLeftOut")
    });
    let condition = bgp_condition().unwrap();
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("peer_keepalive") && message.contains("keepaliveSeconds"), "{message}");
    assert!(message.contains("\"bgp\"") && message.contains("BIRD rejected it"), "{message}");
    let last_error = status(&store, "node-a")["lastError"].as_str().unwrap_or_default().to_string();
    assert!(last_error.contains("peer_keepalive"), "{last_error}");
    let birdc = home.join("bird/bird.ctl");
    let protocols = run(&["birdc", "-s", birdc.to_str().unwrap(), "show", "protocols"]);
    assert!(protocols.contains("Mesh_10_98_0_2"), "BIRD runs with the good session:\n{protocols}\n{}", logs());
    assert!(!protocols.contains("peer_keepalive"), "{protocols}");
    assert!(logs().contains("BGP session not programmed"), "the agent logs it:\n{}", logs());
}
