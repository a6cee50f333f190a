//! A GlobalNetworkSet allow-list on the lab: a GlobalNetworkPolicy lets into prod/web only the
//! sources in the GlobalNetworkSets labelled `feed: partners`; the set's nets change while the lab
//! runs. Each step checks the full pod matrix (ICMP) and the outside namespace's address to every
//! pod. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Stack, policy_scenario, up, wrong_pairs};
use gingham_crds::api::IpFamily;
use gingham_e2e::cmd;
use gingham_e2e::harness::LabGuard;
use gingham_e2e::probe::{self, Probe, Reach};
use gingham_e2e::topology::{OUTSIDE_ADDRESS, names};

const OUTSIDE: &str = "outside";
const PARTNERS: &str = "---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: web-from-partners}\nspec:\n  selector: app == 'web'\n  types: [Ingress]\n  ingress:\n  - {action: Allow, source: {selector: feed == 'partners'}}\n";

fn network_set(nets: &[String]) -> String {
    format!(
        "---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkSet\nmetadata: {{name: partners, labels: {{feed: partners}}}}\nspec:\n  nets: [{}]\n",
        nets.join(", ")
    )
}

/// The router learns a route to every pod through its node, so that the outside namespace
/// reaches pods (the lab's router otherwise knows the underlay only).
fn route_pods_from_the_outside(lab: &LabGuard) {
    let router = names::router(&lab.state.prefix);
    for pod in &lab.state.pods {
        let node = lab.state.nodes.iter().find(|n| n.name == pod.node).unwrap();
        let via = node.address.split('/').next().unwrap();
        let address = pod.ip(IpFamily::IPv4).unwrap();
        cmd::ip(Some(&router), &["route", "replace", &format!("{address}/32"), "via", via]).unwrap();
    }
}

/// Every (source, destination) whose reach differs from `allowed`: the pod matrix and the outside
/// to every pod.
fn mismatches(lab: &LabGuard, allowed: &dyn Fn(&str, &str) -> bool) -> Vec<String> {
    let mut wrong = wrong_pairs(lab, allowed);
    let outside = names::outside(&lab.state.prefix);
    for pod in &lab.state.pods {
        let address = pod.ip(IpFamily::IPv4).unwrap();
        let seen = probe::reach(&lab.state, &outside, address, Probe::Icmp);
        if (seen == Reach::Ok) != allowed(OUTSIDE, &pod.key()) {
            wrong.push(format!("{OUTSIDE} -> {}: {seen:?}", pod.key()));
        }
    }
    wrong
}

/// Waits (the set travels on the stream, after the NodeNetworks converged) until the table holds.
fn check(lab: &LabGuard, step: &str, allowed: &dyn Fn(&str, &str) -> bool, failures: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wrong = mismatches(lab, allowed);
        if wrong.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            failures.extend(wrong.into_iter().map(|w| format!("{step}: {w}")));
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_global_network_set_allow_list_follows_its_nets_live() {
    let lab = up(&policy_scenario(Stack::V4), "ghnetset");
    route_pods_from_the_outside(&lab);
    let ip = |key: &str| format!("{}/32", common::pod_ip(&lab, key, IpFamily::IPv4));
    let mut failures = Vec::new();
    check(&lab, "no policy", &|_, _| true, &mut failures);

    // The outside and prod/client are partners.
    lab.apply(&(network_set(&[format!("{OUTSIDE_ADDRESS}/32"), ip("prod/client")]) + PARTNERS)).unwrap();
    let partners = |from: &str, to: &str| to != "prod/web" || from == OUTSIDE || from == "prod/client";
    check(&lab, "outside and prod/client", &partners, &mut failures);

    // Live: the nets now name dev/client only.
    lab.apply(&network_set(&[ip("dev/client")])).unwrap();
    check(&lab, "dev/client", &|from, to| to != "prod/web" || from == "dev/client", &mut failures);

    // Nested: the whole pool and a /32 inside it (covered), not the outside.
    lab.apply(&network_set(&["10.232.0.0/16".into(), ip("prod/other")])).unwrap();
    check(&lab, "the pool", &|from, to| to != "prod/web" || from != OUTSIDE, &mut failures);

    // The covering CIDR goes: the /32 it covered stays in force.
    lab.apply(&network_set(&[ip("prod/other")])).unwrap();
    check(&lab, "prod/other", &|from, to| to != "prod/web" || from == "prod/other", &mut failures);

    lab.delete(&(network_set(&[]) + PARTNERS)).unwrap();
    check(&lab, "removed", &|_, _| true, &mut failures);
    assert!(failures.is_empty(), "GlobalNetworkSet allow-list:\n{}", failures.join("\n"));
}
