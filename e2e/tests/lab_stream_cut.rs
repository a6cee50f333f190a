//! An agent's stream cut for real and restored (docs/stream.md): the operator serves the stream
//! over TCP on the lab's underlay, and an nftables rule in node n1's namespace drops every packet
//! to and from it. n1's agent notices the silence, says Disconnected and keeps enforcing what it
//! holds while a pod's new label changes a set n1 uses; once the rule goes, it resumes from its
//! revision with a delta (the operator's log says so, and no snapshot), says Streaming, enforces
//! the change, and no route or nftables table is rewritten on any node: only that set gained the
//! pod's address. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::stream::{WEB_FROM_CLIENTS, dataplanes, wait_for_stream, wait_until};
use common::{POLICY_SCENARIO, up, wrong_pairs};
use gingham_e2e::probe::{self, Probe, Reach};
use gingham_e2e::scenario::PodSpec;
use gingham_e2e::{pods, stream};

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// Who may reach prod/web: the pods of prod labelled app=client.
fn allowed(clients: &[&str]) -> impl Fn(&str, &str) -> bool {
    move |from, to| to != "prod/web" || clients.contains(&from)
}

#[test]
fn a_stream_cut_and_restored_resyncs_with_deltas_only_and_rewrites_nothing() {
    let scenario = POLICY_SCENARIO.replace("lab: {prefix: tt}", "lab: {prefix: tt, operator: {stream: tcp}}");
    let lab = up(&scenario, "ghcut");
    lab.apply(WEB_FROM_CLIENTS).unwrap();
    let server = stream::endpoint(&lab.state, 0).1;
    assert_eq!(server, "http://10.231.1.2:5473", "the control host on the first subnet");
    wait_for_stream(&lab, &NODES, "Streaming", Some(&server));
    let wrong = wrong_pairs(&lab, allowed(&["prod/client"]));
    assert!(wrong.is_empty(), "before the cut:\n{}", wrong.join("\n"));
    let before = dataplanes(&lab);
    let n1 = lab.state.node("n1").cloned().unwrap();

    stream::cut(&lab.state, &n1).unwrap();
    wait_for_stream(&lab, &["n1"], "Disconnected", None);
    let rounds = stream::log_lines(&lab.state, 0, "reconciled").len();
    let other = lab.scenario.pods.iter().find(|p| p.namespace == "prod" && p.name == "other").unwrap();
    let relabelled = PodSpec { labels: [("app".to_string(), "client".to_string())].into(), ..other.clone() };
    pods::update(&lab.state, &relabelled).unwrap();
    wait_until("the operator to compute the new label", Duration::from_secs(10), || {
        let now = stream::log_lines(&lab.state, 0, "reconciled").len();
        if now > rounds { Ok(()) } else { Err(format!("{now} rounds")) }
    });
    let (other_netns, other_address) = lab.pod("prod/other");
    let (_, web) = lab.pod("prod/web");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        probe::reach(&lab.state, &other_netns, &web, Probe::Icmp),
        Reach::Blocked,
        "cut off, n1 keeps enforcing what it holds"
    );
    let syncs_before = stream::syncs(&lab.state, 0);

    stream::restore(&n1).unwrap();
    wait_for_stream(&lab, &["n1"], "Streaming", Some(&server));
    let syncs = stream::syncs(&lab.state, 0);
    let new = &syncs[syncs_before.len()..];
    assert_eq!(new, [("n1".to_string(), "delta".to_string())], "n1 resumed from its revision: {syncs:?}");
    let snapshots = syncs.iter().filter(|(_, how)| how == "snapshot").count();
    assert_eq!(snapshots, NODES.len(), "one snapshot per agent, when it started, and none since: {syncs:?}");
    wait_until("n1 to enforce the new label", Duration::from_secs(10), || {
        let seen = probe::reach(&lab.state, &other_netns, &web, Probe::Icmp);
        if seen == Reach::Ok { Ok(()) } else { Err(format!("prod/other -> prod/web: {seen:?}")) }
    });
    let wrong = wrong_pairs(&lab, allowed(&["prod/client", "prod/other"]));
    assert!(wrong.is_empty(), "after the restore:\n{}", wrong.join("\n"));

    let after = dataplanes(&lab);
    for node in NODES {
        let (was, now) = (&before[node], &after[node]);
        assert_eq!(was.routes, now.routes, "{node}: no route changed");
        assert_eq!(was.nft.structure, now.nft.structure, "{node}: the nftables table was not rewritten");
        let names: BTreeSet<&String> = was.nft.elements.keys().chain(now.nft.elements.keys()).collect();
        let members = |elements: &BTreeMap<String, BTreeSet<String>>, set: &String| {
            elements.get(set).cloned().unwrap_or_default()
        };
        // Each changed set and map: what it gained and what it lost.
        let changed: Vec<(&String, Vec<String>, Vec<String>)> = names
            .into_iter()
            .map(|set| {
                let (old, new) = (members(&was.nft.elements, set), members(&now.nft.elements, set));
                (set, new.difference(&old).cloned().collect(), old.difference(&new).cloned().collect())
            })
            .filter(|(_, gained, lost): &(_, Vec<String>, Vec<String>)| !gained.is_empty() || !lost.is_empty())
            .collect();
        match node {
            "n1" => {
                assert_eq!(changed.len(), 1, "n1: only the set of app=client pods changed: {changed:?}");
                assert_eq!((&changed[0].1, &changed[0].2), (&vec![other_address.clone()], &vec![]), "n1: {changed:?}");
            }
            _ => assert!(changed.is_empty(), "{node}: nothing changed: {changed:?}"),
        }
    }
}
