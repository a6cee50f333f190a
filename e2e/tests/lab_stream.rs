//! The agents' stream on the lab (docs/stream.md): the operator killed with SIGKILL and started
//! again under a 10 ms ping loses no packet and rewrites no nftables table or route on any node;
//! the agents keep enforcing what they hold while the stream is down and say so in their status,
//! resync by content when it is back (the restarted operator counts other revisions, and nothing
//! changed: no snapshot, nothing sent), and a policy changed afterwards is enforced through the
//! stream. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::stream::{WEB_FROM_CLIENTS, dataplanes, wait_for_stream, wait_until};
use common::{POLICY_SCENARIO, up};
use gingham_e2e::harness::{LabGuard, Pinger};
use gingham_e2e::probe::{self, Probe, Reach};
use gingham_e2e::{lab, process, stream};
use nix::sys::signal::Signal;

/// The same, and every pod of namespace dev too.
const CLIENT_AND_DEV: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}, {namespaceSelector: {matchLabels: {env: dev}}}]}]
";

const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn dev_reaches_web(lab: &LabGuard) -> Reach {
    let (dev, _) = lab.pod("dev/client");
    let (_, web) = lab.pod("prod/web");
    probe::reach(&lab.state, &dev, &web, Probe::Icmp)
}

#[test]
fn the_operator_killed_and_restarted_costs_no_packet_and_rewrites_nothing() {
    let mut lab = up(POLICY_SCENARIO, "ghstream");
    lab.apply(WEB_FROM_CLIENTS).unwrap();
    assert_eq!(dev_reaches_web(&lab), Reach::Blocked, "only prod/client may reach prod/web");
    let first = stream::syncs(&lab.state, 0);
    assert_eq!(first.len(), 3, "every agent follows the stream: {first:?}");
    let before = dataplanes(&lab);
    let (client, _) = lab.pod("prod/client");
    let (_, web) = lab.pod("prod/web");
    let pinger = Pinger::start(&client, &web).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let operator = lab.state.processes.iter().find(|p| p.name == "operator").cloned().unwrap();
    assert!(process::signal(&operator, Signal::SIGKILL), "the lab's operator runs");
    lab.state.processes.retain(|p| p.name != "operator");
    wait_for_stream(&lab, &NODES, "Disconnected", None);
    std::thread::sleep(Duration::from_secs(1));
    lab::start_operator(&mut lab.state, 0).unwrap();
    wait_until("the agents to resync with the new operator", Duration::from_secs(30), || {
        let syncs = stream::syncs(&lab.state, 0);
        if syncs.len() >= 6 { Ok(()) } else { Err(format!("{syncs:?}")) }
    });
    let resyncs = &stream::syncs(&lab.state, 0)[3..];
    assert!(
        resyncs.iter().all(|(_, how)| how == "content"),
        "the restarted operator counts other revisions: every agent resynced by content, none by snapshot: {resyncs:?}"
    );
    wait_for_stream(&lab, &NODES, "Streaming", None);
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
