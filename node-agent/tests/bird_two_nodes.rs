#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two real BIRDs in two network namespaces, configured from rendered specs, exchange their nodes'
//! blocks; a bad config never replaces a working one; a killed BIRD is restarted.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec, PoolRouting};
use gingham_node_agent::bird::{BirdError, BirdPaths, BirdSupervisor, parse_protocols, render, summary};

/// Two namespaces joined by a veth; removed (and BIRDs killed by PID) on drop.
struct Lab {
    namespaces: [String; 2],
    pids: Vec<u32>,
}

impl Lab {
    fn new() -> Self {
        let id = std::process::id();
        let namespaces = [format!("gb-a-{id}"), format!("gb-b-{id}")];
        for ns in &namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let [a, b] = &namespaces;
        run(&["ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b]);
        for (ns, dev, address) in [(a, "va", "10.99.0.1/24"), (b, "vb", "10.99.0.2/24")] {
            run(&["ip", "-n", ns, "addr", "add", address, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        Self { namespaces, pids: Vec::new() }
    }

    fn routes(&self, index: usize) -> String {
        run(&["ip", "-n", &self.namespaces[index], "-4", "route", "show"])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
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

fn node(address: &str, block: &str, peer: &str) -> (NodeNetworkSpec, NodeBgpSpec) {
    let spec = NodeNetworkSpec {
        address: format!("{address}/24"),
        blocks: vec![block.into()],
        pools: vec![PoolRouting { name: "default".into(), cidr: "10.244.0.0/16".into(), ..Default::default() }],
        ..Default::default()
    };
    let session = BgpPeerSession {
        name: format!("Mesh_{}", peer.replace('.', "_")),
        address: peer.into(),
        port: 179,
        as_number: 64512,
        use_node_source_address: true,
        ..Default::default()
    };
    let bgp = NodeBgpSpec {
        router_id: address.into(),
        as_number: 64512,
        listen_port: 179,
        route_reflector_cluster_id: None,
        peers: vec![session],
    };
    (spec, bgp)
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(40), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_birds_exchange_their_blocks() {
    let mut lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let nodes = [node("10.99.0.1", "10.244.1.0/26", "10.99.0.2"), node("10.99.0.2", "10.244.2.0/26", "10.99.0.1")];
    let mut birds = Vec::new();
    for (index, (spec, bgp)) in nodes.iter().enumerate() {
        let mut paths = BirdPaths::debian(&dir.path().join(index.to_string()));
        paths.bird = ["ip", "netns", "exec", &lab.namespaces[index], "/usr/sbin/bird"].map(String::from).to_vec();
        let mut bird = BirdSupervisor::new(paths);
        bird.apply(&render(&format!("node-{index}"), spec, bgp).unwrap()).await.unwrap();
        lab.pids.push(bird.pid().unwrap());
        birds.push(bird);
    }

    wait_for("node 1 to learn node 0's block", || {
        lab.routes(1).contains("10.244.1.0/26 via 10.99.0.1 dev vb proto bird")
    })
    .await;
    wait_for("node 0 to learn node 1's block", || {
        lab.routes(0).contains("10.244.2.0/26 via 10.99.0.2 dev va proto bird")
    })
    .await;
    assert!(!lab.routes(0).contains("10.244.1.0/26"), "a node's own blackhole is not written by BIRD");

    let output = birds[0].paths().birdc(&["show", "protocols"]).await.unwrap();
    let sessions = parse_protocols(&output, &nodes[0].1.peers);
    assert_eq!(sessions.len(), 1, "{output}");
    assert_eq!(sessions[0].peer_address, "10.99.0.2");
    assert_eq!(summary(&sessions), "1/1", "{output}");

    // A config BIRD rejects leaves the working one in place.
    let before = std::fs::read_to_string(birds[0].paths().config()).unwrap();
    let error = birds[0].apply("router id nonsense;\n").await.unwrap_err();
    assert!(matches!(error, BirdError::Rejected { .. }), "{error}");
    assert_eq!(std::fs::read_to_string(birds[0].paths().config()).unwrap(), before);
    assert!(birds[0].paths().birdc(&["show", "status"]).await.is_ok(), "BIRD still runs");

    // A killed BIRD is reported and restarted after its backoff.
    let old = birds[0].pid().unwrap();
    run(&["kill", "-9", &old.to_string()]);
    let mut reported = false;
    let start = Instant::now();
    while birds[0].pid().is_none_or(|pid| pid == old) {
        assert!(start.elapsed() < Duration::from_secs(10), "BIRD was not restarted");
        reported |= matches!(birds[0].poll(), Err(BirdError::Exited { .. }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.pids.extend(birds[0].pid());
    assert!(reported, "the exit was reported");
    assert_eq!(birds[0].restarts().0, 1);
    wait_for("the restarted BIRD to answer", || {
        Command::new("birdc")
            .arg("-s")
            .arg(birds[0].paths().socket())
            .arg("show status")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Daemon is up"))
    })
    .await;

    // A new supervisor (an agent restarted after a crash) shuts down the BIRD it finds on its socket.
    let orphan = birds[1].pid().unwrap();
    let mut adopted = BirdSupervisor::new(birds[1].paths().clone());
    adopted.apply(&render("node-1", &nodes[1].0, &nodes[1].1).unwrap()).await.unwrap();
    lab.pids.extend(adopted.pid());
    assert_ne!(adopted.pid(), Some(orphan));
    let _ = birds[1].poll();
    assert!(birds[1].pid().is_none(), "the orphan exited");
    wait_for("node 0 to learn node 1's block again", || {
        lab.routes(0).contains("10.244.2.0/26 via 10.99.0.2 dev va proto bird")
    })
    .await;
}
