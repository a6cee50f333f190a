//! The agents' stream on the lab (docs/stream.md): the operator killed with SIGKILL and started
//! again under a 10 ms ping loses no packet and rewrites no nftables table or route on any node;
//! the agents keep enforcing what they hold while the stream is down and say so in their status,
//! resync when it is back, and a policy changed afterwards is enforced through the stream. Runs as
//! root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{POLICY_SCENARIO, routes, up};
use gingham_e2e::harness::{LabGuard, Pinger};
use gingham_e2e::probe::{self, Probe, Reach};
use gingham_e2e::{cmd, lab, process};
use nix::sys::signal::Signal;

/// prod/web accepts prod/client only.
const CLIENT_ONLY: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
";

/// The same, and every pod of namespace dev too.
const CLIENT_AND_DEV: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}, {namespaceSelector: {matchLabels: {env: dev}}}]}]
";

fn nodes() -> [&'static str; 3] {
    ["n1", "n2", "n3"]
}

/// Every node's routes and nftables table.
fn dataplanes(lab: &LabGuard) -> Vec<(String, String)> {
    nodes()
        .iter()
        .map(|node| {
            (
                routes(lab, node),
                cmd::run_in(&lab.node_netns(node), "nft", &["list", "table", "inet", "gingham"]).unwrap(),
            )
        })
        .collect()
}

fn synced(lab: &LabGuard) -> usize {
    std::fs::read_to_string(lab.state.logs().join("operator.log"))
        .unwrap_or_default()
        .matches("subscriber synced")
        .count()
}

/// Waits until every node's status says the stream is in `state`.
fn wait_for_stream_state(lab: &LabGuard, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = |node: &str| {
        let path = lab.datastore().join(format!("status/nodenetworks/{node}.yaml"));
        std::fs::read_to_string(path).unwrap_or_default()
    };
    for node in nodes() {
        while !status(node).contains(&format!("state: {state}")) {
            assert!(Instant::now() < deadline, "{node}'s status never said the stream is {state}:\n{}", status(node));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn dev_reaches_web(lab: &LabGuard) -> Reach {
    let (dev, _) = lab.pod("dev/client");
    let (_, web) = lab.pod("prod/web");
    probe::reach(&lab.state, &dev, &web, Probe::Icmp)
}

#[test]
fn the_operator_killed_and_restarted_costs_no_packet_and_rewrites_nothing() {
    let mut lab = up(POLICY_SCENARIO, "ghstream");
    lab.apply(CLIENT_ONLY).unwrap();
    assert_eq!(dev_reaches_web(&lab), Reach::Blocked, "only prod/client may reach prod/web");
    assert_eq!(synced(&lab), 3, "every agent follows the stream");
    let before = dataplanes(&lab);
    let (client, _) = lab.pod("prod/client");
    let (_, web) = lab.pod("prod/web");
    let pinger = Pinger::start(&client, &web).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let operator = lab.state.processes.iter().find(|p| p.name == "operator").cloned().unwrap();
    assert!(process::signal(&operator, Signal::SIGKILL), "the lab's operator runs");
    lab.state.processes.retain(|p| p.name != "operator");
    wait_for_stream_state(&lab, "Disconnected");
    std::thread::sleep(Duration::from_secs(1));
    lab::start_operator(&mut lab.state).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while synced(&lab) < 6 {
        assert!(Instant::now() < deadline, "the agents did not resync with the new operator");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_stream_state(&lab, "Streaming");
    std::thread::sleep(Duration::from_secs(2));
    let count = pinger.stop().unwrap();
    eprintln!("operator restart: {} of {} pings lost", count.lost(), count.sent);
    assert!(count.sent > 200, "the ping must run throughout: {count:?}");
    assert_eq!(count.lost(), 0, "no packet may be lost while the operator restarts");
    assert_eq!(dataplanes(&lab), before, "no route or nftables table was rewritten on any node");
    let agent_log = std::fs::read_to_string(lab.state.logs().join("agent-n1.log")).unwrap_or_default();
    assert!(agent_log.contains("stream broken; enforcing what is held"), "the agent says it kept its copy");

    lab.apply(CLIENT_AND_DEV).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dev_reaches_web(&lab) != Reach::Ok {
        assert!(Instant::now() < deadline, "a policy changed after the restart is enforced through the stream");
        std::thread::sleep(Duration::from_millis(200));
    }
}
