//! Host endpoints on the lab's nodes' `eth0` (their uplink to the underlay), as truth tables:
//! a deny-all host policy leaves BGP (failsafe 179), the pod-to-pod matrix and the pods' way out
//! up and cuts the rest; then applyOnForward, preDNAT and doNotTrack each decide one thing.
//! Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_full_mesh, ping, scenario, up, wrong_pairs};
use gingham_e2e::harness::LabGuard;
use gingham_e2e::{datastore, topology};

/// A HostEndpoint for each node's eth0, labelled `uplink: eth0`; `profiles` as YAML.
fn host_endpoints(lab: &LabGuard, profiles: &str) -> String {
    lab.state
        .nodes
        .iter()
        .map(|node| {
            format!(
                "---\napiVersion: gingham.dev/v1\nkind: HostEndpoint\nmetadata: {{name: {n}-eth0, labels: {{uplink: eth0}}}}\nspec: {{node: {n}, interfaceName: eth0, expectedIPs: [\"{ip}\"], profiles: {profiles}}}\n",
                n = node.name,
                ip = node.address.split('/').next().unwrap(),
            )
        })
        .collect()
}

fn gnp(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  selector: uplink == 'eth0'\n{spec}"
    )
}

const DENY_ALL: &str = "  types: [Ingress, Egress]\n  ingress: [{action: Deny}]\n  egress: [{action: Deny}]\n";

/// What the table checks: (what, seen, expected).
type Row = (&'static str, bool, bool);

fn check(case: &str, rows: &[Row], failures: &mut Vec<String>) {
    for (what, seen, expected) in rows {
        if seen != expected {
            failures.push(format!("{case}: {what}: expected {expected}, saw {seen}"));
        }
    }
}

fn established_sessions(lab: &LabGuard) -> usize {
    lab.state
        .nodes
        .iter()
        .map(|node| {
            let status = datastore::node_status(&lab.datastore(), &node.name).unwrap().unwrap();
            datastore::bgp_sessions(&status).iter().filter(|s| s[3] == "Established").count()
        })
        .sum()
}

#[test]
fn host_endpoint_truth_tables_on_eth0() {
    let lab = up(&scenario(&[("n1", "a"), ("n2", "a")], "Never"), "ghhep");
    let outside = topology::names::outside(&lab.state.prefix);
    let n1 = lab.state.node("n1").unwrap().address.split('/').next().unwrap().to_string();
    let n2_netns = lab.node_netns("n2");
    let (pod, _) = lab.pod("default/p-n1");
    let sessions = established_sessions(&lab);
    assert_eq!(sessions, 2, "the mesh is up before host endpoints");
    assert_full_mesh(&lab);
    let mut failures = Vec::new();
    // A TCP handshake with one of n1's ports from n2: accepted or reset (BIRD may refuse a second
    // session; nothing listens on 8081) both reached n1; only a timeout means a drop.
    let reaches_port = |port: u16| {
        let script = format!("exec 3<>/dev/tcp/{n1}/{port}");
        let mut command = gingham_e2e::cmd::in_netns(&n2_netns, "timeout", &["3", "bash", "-c", &script]);
        command.output().map(|out| out.status.code() != Some(124)).unwrap_or(false)
    };
    let bgp_connects = || reaches_port(179);
    let outside_pings_node = || ping(&outside, &n1, 2) > 0;
    let node_netns = lab.node_netns("n1");
    // Conntrack in n1's namespace: the ping ids of the outside's pings to n1 (entries of earlier
    // pings linger, so a ping is judged by the ids it adds).
    let conntrack = || gingham_e2e::cmd::run_in(&node_netns, "cat", &["/proc/net/nf_conntrack"]).unwrap_or_default();
    let pings_from_outside = |table: &str| -> std::collections::BTreeSet<String> {
        let pair = format!("src={} dst={n1}", topology::OUTSIDE_ADDRESS);
        table
            .lines()
            .filter(|l| l.contains("icmp") && l.contains(&pair))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("id=")).map(str::to_string))
            .collect()
    };
    let tracked_ping = || {
        let before = pings_from_outside(&conntrack());
        let pinged = outside_pings_node();
        (pinged, pings_from_outside(&conntrack()).difference(&before).count() > 0)
    };
    let pod_reaches_outside = || ping(&pod, topology::OUTSIDE_ADDRESS, 2) > 0;
    let (_, tracked) = tracked_ping();
    check(
        "no host endpoint",
        &[
            ("a ping from the outside is tracked", tracked, true),
            ("n2 opens a new BGP connection to n1", bgp_connects(), true),
            ("n2 reaches n1's port 8081", reaches_port(8081), true),
            ("outside pings n1", outside_pings_node(), true),
            ("pod reaches the outside", pod_reaches_outside(), true),
        ],
        &mut failures,
    );

    // Deny-all on every node's eth0: only failsafes, tunnels and forwarded pod traffic pass.
    let deny_all = host_endpoints(&lab, "[]") + &gnp("deny-all", DENY_ALL);
    lab.apply(&deny_all).unwrap();
    failures.extend(
        wrong_pairs(&lab, |_, _| true).into_iter().map(|pair| format!("deny-all host policy: pod matrix: {pair}")),
    );
    check(
        "deny-all host policy",
        &[
            ("n2 opens a new BGP connection to n1 (failsafe 179)", bgp_connects(), true),
            ("n2 reaches n1's port 8081 (no failsafe)", reaches_port(8081), false),
            ("outside pings n1", outside_pings_node(), false),
            ("pod reaches the outside (forwarded, no applyOnForward policy)", pod_reaches_outside(), true),
        ],
        &mut failures,
    );
    // Reported sessions: agents report what BIRD says, after the policy is in force.
    std::thread::sleep(std::time::Duration::from_secs(3));
    lab.converge().unwrap();
    assert_eq!(established_sessions(&lab), 2, "BGP sessions stay established");

    // applyOnForward: a deny of forwarded traffic out of eth0 to the outside network.
    let forward = gnp(
        "no-outside",
        "  applyOnForward: true\n  types: [Egress]\n  egress: [{action: Deny, destination: {nets: [10.233.0.0/24]}}, {action: Allow}]\n",
    );
    lab.apply(&forward).unwrap();
    failures
        .extend(wrong_pairs(&lab, |_, _| true).into_iter().map(|pair| format!("applyOnForward: pod matrix: {pair}")));
    check("applyOnForward", &[("pod reaches the outside", pod_reaches_outside(), false)], &mut failures);
    lab.delete(&forward).unwrap();
    lab.delete(&deny_all).unwrap();

    // preDNAT: with a default-allow profile, deny the outside before DNAT; nodes still reach n1.
    let allow_profile = host_endpoints(&lab, "[projectcalico-default-allow]");
    let pre_dnat = gnp(
        "pre-dnat",
        "  preDNAT: true\n  applyOnForward: true\n  ingress: [{action: Deny, source: {nets: [10.233.0.0/24]}}]\n",
    );
    lab.apply(&(allow_profile.clone() + &pre_dnat)).unwrap();
    failures.extend(wrong_pairs(&lab, |_, _| true).into_iter().map(|pair| format!("preDNAT: pod matrix: {pair}")));
    check(
        "preDNAT",
        &[
            ("outside pings n1", outside_pings_node(), false),
            ("n2 pings n1", ping(&n2_netns, &n1, 2) > 0, true),
            ("pod reaches the outside (replies are established)", pod_reaches_outside(), true),
        ],
        &mut failures,
    );
    lab.delete(&(allow_profile + &pre_dnat)).unwrap();

    // doNotTrack: under the deny-all, an untracked allow of ICMP to and from the nodes' own
    // addresses lets the outside ping. (Untracked policy on forwarded pod traffic has no net
    // effect, as Calico documents: the untracked request's reply is invalid to conntrack.)
    let untracked = gnp(
        "untracked-icmp",
        "  doNotTrack: true\n  applyOnForward: true\n  types: [Ingress, Egress]\n  ingress: [{action: Allow, protocol: ICMP, destination: {nets: [10.231.0.0/16]}}]\n  egress: [{action: Allow, protocol: ICMP, source: {nets: [10.231.0.0/16]}}]\n",
    );
    lab.apply(&(deny_all.clone() + &untracked)).unwrap();
    failures.extend(wrong_pairs(&lab, |_, _| true).into_iter().map(|pair| format!("doNotTrack: pod matrix: {pair}")));
    let raw = gingham_e2e::cmd::run_in(&node_netns, "nft", &["list", "chain", "inet", "gingham", "hep_raw_prerouting"])
        .unwrap_or_default();
    check(
        "doNotTrack",
        &[
            ("outside pings n1", outside_pings_node(), true),
            ("the raw hook skips conntrack", raw.contains("notrack"), true),
            ("n2 opens a new BGP connection to n1", bgp_connects(), true),
        ],
        &mut failures,
    );
    let (pinged, tracked) = tracked_ping();
    let after = conntrack();
    check(
        "doNotTrack",
        &[
            ("conntrack lists the BGP connection", after.contains("dport=179"), true),
            ("outside pings n1 again", pinged, true),
            ("that ping is tracked", tracked, false),
        ],
        &mut failures,
    );
    lab.delete(&(deny_all + &untracked)).unwrap();
    assert!(failures.is_empty(), "host endpoint cases failed:\n{}", failures.join("\n"));
}
