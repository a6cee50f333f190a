#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two real BIRDs in two network namespaces, configured from rendered specs and sessions, exchange their nodes'
//! blocks; a bad config never replaces a working one; a killed BIRD is restarted; a new supervisor
//! (an agent restarted after a crash) adopts the running BIRD and no route disappears; sessions
//! BIRD refuses are left out and the rest runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec, PoolRouting};
use gingham_node_agent::bird::{BirdConfig, BirdError, BirdPaths, BirdSupervisor, parse_protocols, render, summary};

/// Two namespaces joined by a veth; removed (and BIRDs killed by PID) on drop.
struct Lab {
    namespaces: [String; 2],
    pids: Vec<u32>,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let id = std::process::id();
        let namespaces = [format!("gb{tag}-a-{id}"), format!("gb{tag}-b-{id}")];
        for ns in &namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let [a, b] = &namespaces;
        run(&["ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b]);
        for (ns, dev, address, address6) in
            [(a, "va", "10.99.0.1/24", "fd00:99::1/64"), (b, "vb", "10.99.0.2/24", "fd00:99::2/64")]
        {
            run(&["ip", "-n", ns, "addr", "add", address, "dev", dev]);
            run(&["ip", "-n", ns, "addr", "add", address6, "dev", dev, "nodad"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        Self { namespaces, pids: Vec::new() }
    }

    fn routes(&self, index: usize) -> String {
        run(&["ip", "-n", &self.namespaces[index], "-4", "route", "show"])
    }

    fn routes6(&self, index: usize) -> String {
        run(&["ip", "-n", &self.namespaces[index], "-6", "route", "show"])
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

/// A node's spec, its BGP settings and its one session (from its span).
type BgpNode = (NodeNetworkSpec, NodeBgpSpec, Vec<BgpPeerSession>);

fn node(address: &str, block: &str, peer: &str) -> BgpNode {
    let spec = NodeNetworkSpec {
        address: Some(format!("{address}/24").into()),
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
    let bgp =
        NodeBgpSpec { router_id: address.into(), as_number: 64512, listen_port: 179, route_reflector_cluster_id: None };
    (spec, bgp, vec![session])
}

const ROUTE_TO_0: &str = "10.244.1.0/26 via 10.99.0.1 dev vb proto bird";
const ROUTE_TO_1: &str = "10.244.2.0/26 via 10.99.0.2 dev va proto bird";

/// Starts a supervised BIRD per namespace and waits until each node learned the other's block.
async fn start_two(lab: &mut Lab, dir: &Path) -> ([BgpNode; 2], Vec<BirdSupervisor>) {
    let nodes = [node("10.99.0.1", "10.244.1.0/26", "10.99.0.2"), node("10.99.0.2", "10.244.2.0/26", "10.99.0.1")];
    let mut birds = Vec::new();
    for (index, (spec, bgp, peers)) in nodes.iter().enumerate() {
        let mut bird = BirdSupervisor::new(paths(lab, dir, index));
        bird.apply(&render(&format!("node-{index}"), spec, bgp, peers).unwrap()).await.unwrap();
        lab.pids.push(bird.pid().unwrap());
        birds.push(bird);
    }
    wait_for("node 1 to learn node 0's block", || lab.routes(1).contains(ROUTE_TO_0)).await;
    wait_for("node 0 to learn node 1's block", || lab.routes(0).contains(ROUTE_TO_1)).await;
    (nodes, birds)
}

fn paths(lab: &Lab, dir: &Path, index: usize) -> BirdPaths {
    let mut paths = BirdPaths::debian(&dir.join(index.to_string()));
    paths.bird = ["ip", "netns", "exec", &lab.namespaces[index], "/usr/sbin/bird"].map(String::from).to_vec();
    paths
}

/// Checks every 20 ms, until stopped, that both nodes keep the route to the other's block; returns
/// the routing tables of the checks that failed.
struct RouteWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl RouteWatch {
    fn start(lab: &Lab) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let namespaces = lab.namespaces.clone();
        let thread = std::thread::spawn(move || {
            let (mut checks, mut missing) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                for (ns, route) in [(&namespaces[0], ROUTE_TO_1), (&namespaces[1], ROUTE_TO_0)] {
                    let table = run(&["ip", "-n", ns, "-4", "route", "show"]);
                    if !table.contains(route) {
                        missing.push(format!("{ns} lacks {route}:\n{table}"));
                    }
                }
                checks += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (checks, missing)
        });
        Self { stop, thread }
    }

    fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
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
    let mut lab = Lab::new("");
    let dir = tempfile::tempdir().unwrap();
    let (nodes, mut birds) = start_two(&mut lab, dir.path()).await;
    assert!(!lab.routes(0).contains("10.244.1.0/26"), "a node's own blackhole is not written by BIRD");

    let output = birds[0].paths().birdc(&["show", "protocols"]).await.unwrap();
    let sessions = parse_protocols(&output, &nodes[0].2);
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
}

/// A dual-stack node: an IPv4 and an IPv6 block, and a session per family to the other node.
fn dual_stack_node(index: u8) -> BgpNode {
    let other = 3 - index;
    let (mut spec, bgp, mut sessions) =
        node(&format!("10.99.0.{index}"), &format!("10.244.{index}.0/26"), &format!("10.99.0.{other}"));
    spec.address6 = Some(format!("fd00:99::{index}/64").into());
    spec.blocks.push(format!("fd00:244:0:{index}::/122").into());
    spec.pools.push(PoolRouting { name: "v6".into(), cidr: "fd00:244::/48".into(), ..Default::default() });
    sessions.push(BgpPeerSession {
        name: format!("Mesh_fd00_99__{other}"),
        address: format!("fd00:99::{other}").into(),
        ..sessions[0].clone()
    });
    (spec, bgp, sessions)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_dual_stack_birds_exchange_the_blocks_of_both_families_each_over_its_own_session() {
    let mut lab = Lab::new("6");
    let dir = tempfile::tempdir().unwrap();
    let nodes = [dual_stack_node(1), dual_stack_node(2)];
    let mut birds = Vec::new();
    for (index, (spec, bgp, peers)) in nodes.iter().enumerate() {
        let mut bird = BirdSupervisor::new(paths(&lab, dir.path(), index));
        bird.apply(&render(&format!("node-{index}"), spec, bgp, peers).unwrap()).await.unwrap();
        lab.pids.push(bird.pid().unwrap());
        birds.push(bird);
    }
    wait_for("node 1 to learn node 0's IPv4 block", || lab.routes(1).contains(ROUTE_TO_0)).await;
    wait_for("node 0 to learn node 1's IPv6 block", || {
        lab.routes6(0).contains("fd00:244:0:2::/122 via fd00:99::2 dev va proto bird")
    })
    .await;
    wait_for("node 1 to learn node 0's IPv6 block", || {
        lab.routes6(1).contains("fd00:244:0:1::/122 via fd00:99::1 dev vb proto bird")
    })
    .await;
    assert!(!lab.routes6(0).contains("fd00:244:0:1::/122"), "a node's own IPv6 blackhole is not written by BIRD");
    assert!(!lab.routes(0).contains("fd00"), "no IPv6 route in the IPv4 table");
    let output = birds[0].paths().birdc(&["show", "protocols"]).await.unwrap();
    let sessions = parse_protocols(&output, &nodes[0].2);
    assert_eq!(summary(&sessions), "2/2", "{output}");
    let route = birds[0].paths().birdc(&["show", "route", "for", "fd00:244:0:2::1", "all"]).await.unwrap();
    assert!(route.contains("Mesh_fd00_99__2"), "the IPv6 block came over the IPv6 session: {route}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_supervisor_adopts_the_running_bird_and_no_route_disappears() {
    let mut lab = Lab::new("adopt");
    let dir = tempfile::tempdir().unwrap();
    let (nodes, mut birds) = start_two(&mut lab, dir.path()).await;
    let orphan = birds[1].pid().unwrap();
    let watch = RouteWatch::start(&lab);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The agent dies (its supervisor goes, BIRD stays); a new one adopts that BIRD and reloads it
    // with a config that announces a second block.
    drop(birds.pop());
    let (mut spec, bgp, peers) = nodes[1].clone();
    spec.blocks.push("10.244.3.0/26".into());
    let mut adopted = BirdSupervisor::new(paths(&lab, dir.path(), 1));
    adopted.apply(&render("node-1", &spec, &bgp, &peers).unwrap()).await.unwrap();
    assert_eq!(adopted.pid(), Some(orphan), "the running BIRD is adopted, not replaced");
    assert!(adopted.is_adopted());
    wait_for("node 0 to learn the block added through the adopted BIRD", || {
        lab.routes(0).contains("10.244.3.0/26 via 10.99.0.2 dev va proto bird")
    })
    .await;
    adopted.poll().unwrap();
    assert_eq!(adopted.pid(), Some(orphan));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (checks, missing) = watch.stop();
    assert!(checks > 10, "the routes were checked throughout ({checks} checks)");
    assert!(missing.is_empty(), "routes disappeared while the BIRD was adopted:\n{}", missing.join("\n"));

    // The adopted BIRD crashes: the exit is noticed by PID and BIRD restarted in graceful-restart
    // recovery, so both nodes keep their routes meanwhile.
    let watch = RouteWatch::start(&lab);
    run(&["kill", "-9", &orphan.to_string()]);
    let start = Instant::now();
    let mut reported = false;
    while adopted.pid().is_none_or(|pid| pid == orphan) {
        assert!(start.elapsed() < Duration::from_secs(10), "the adopted BIRD was not restarted");
        reported |= matches!(adopted.poll(), Err(BirdError::Exited { .. }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.pids.extend(adopted.pid());
    assert!(reported, "the exit of the adopted BIRD was reported");
    assert!(!adopted.is_adopted(), "the new BIRD is a child");
    wait_for("the restarted BIRD's session to be established", || {
        let output = Command::new("birdc").arg("-s").arg(adopted.paths().socket()).args(["show", "protocols"]).output();
        output.is_ok_and(|o| summary(&parse_protocols(&String::from_utf8_lossy(&o.stdout), &peers)) == "1/1")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, missing) = watch.stop();
    assert!(missing.is_empty(), "routes disappeared while BIRD restarted:\n{}", missing.join("\n"));
    adopted.stop().await;
}

/// One BGPPeer with values BIRD refuses (`keepaliveTime: 0s` made every node's BIRD reject its
/// config, and a node with an empty BIRD directory never started BIRD): the bad sessions are left
/// out and reported, BIRD starts with the rest, and the good session exchanges routes.
#[tokio::test(flavor = "multi_thread")]
async fn bad_sessions_are_left_out_and_bird_starts_with_the_rest() {
    let mut lab = Lab::new("bad");
    let dir = tempfile::tempdir().unwrap();
    let nodes = [node("10.99.0.1", "10.244.1.0/26", "10.99.0.2"), node("10.99.0.2", "10.244.2.0/26", "10.99.0.1")];
    let mut birds = Vec::new();
    for (index, (spec, bgp, peers)) in nodes.iter().enumerate() {
        let mut peers = peers.clone();
        let good = peers[0].clone();
        let bad =
            |name: &str, address: &str| BgpPeerSession { name: name.into(), address: address.into(), ..good.clone() };
        // Values the validators refuse, and a name they pass but BIRD refuses (a keyword).
        peers.push(BgpPeerSession { keepalive_seconds: Some(0), ..bad("peer_keepalive", "10.99.0.7") });
        peers.push(BgpPeerSession { local_as_number: Some(0), ..bad("peer_local_as", "10.99.0.8") });
        peers.push(bad("bgp", "10.99.0.9"));
        let (config, mut left_out) = BirdConfig::decode(&format!("node-{index}"), spec, bgp, &peers).unwrap();
        let mut bird = BirdSupervisor::new(paths(&lab, dir.path(), index));
        assert!(!bird.paths().config().exists(), "BIRD's directory starts empty, as after a reboot");
        let (rejected, outcome) = bird.apply_config(config).await;
        assert!(outcome.unwrap(), "the config without the bad sessions is applied");
        left_out.extend(rejected);
        let names: Vec<&str> = left_out.iter().map(|l| l.peer.as_str()).collect();
        assert_eq!(names, ["peer_keepalive", "peer_local_as", "bgp"], "{left_out:?}");
        assert!(left_out[0].reason.contains("keepaliveSeconds"), "{}", left_out[0]);
        assert!(left_out[2].reason.contains("BIRD rejected it"), "{}", left_out[2]);
        lab.pids.push(bird.pid().expect("BIRD started"));
        birds.push(bird);
    }
    wait_for("node 1 to learn node 0's block", || lab.routes(1).contains(ROUTE_TO_0)).await;
    wait_for("node 0 to learn node 1's block", || lab.routes(0).contains(ROUTE_TO_1)).await;
    let output = birds[0].paths().birdc(&["show", "protocols"]).await.unwrap();
    let sessions = parse_protocols(&output, &nodes[0].2);
    assert_eq!(sessions.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Mesh_10_99_0_2"], "{output}");
    for bird in &mut birds {
        bird.stop().await;
    }
}
