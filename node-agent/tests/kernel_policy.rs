//! Kernel tests (root): nftables dispatch allowing and denying real TCP between pods, default drop
//! for pods without policy, incremental membership changes, incremental structural changes that
//! leave the same table as a rewrite, masquerade, a failed transaction leaving the previous
//! rules in force, and a restarted agent whose span has not arrived leaving the table alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, CompiledRule, EndpointPolicy, IpSet, IpSetKind, NodeNetworkSpec, PoolRouting,
    PortRange, TierPolicies,
};
use gingham_crds::api::policy::Action;
use gingham_crds::api::span::NodeSpan;
use gingham_node_agent::dataplane::kernel::NftOutcome;
use gingham_node_agent::dataplane::nft::apply::{Nft, NftCommand};
use gingham_node_agent::dataplane::{Dataplane, KernelDataplane};
use kernel_support::{Netns, Node, assert_clean, endpoint, link, plumb_pod, require_root};

const CLIENT: [u8; 4] = [10, 80, 0, 5];
const SERVER: [u8; 4] = [10, 80, 0, 6];
const PENDING: [u8; 4] = [10, 80, 0, 7];

/// `client` has no policy (allow all), `server` allows TCP 8080 from the `clients` set only,
/// `pending` has no policy entry yet.
fn node() -> Node {
    let endpoints = vec![endpoint("client", CLIENT), endpoint("server", SERVER), endpoint("pending", PENDING)];
    let spec = NodeNetworkSpec {
        address: Some("192.168.80.1/24".into()),
        blocks: vec!["10.80.0.0/26".into()],
        pools: vec![PoolRouting {
            name: "default".into(),
            cidr: "10.80.0.0/16".into(),
            nat_outgoing: true,
            ..Default::default()
        }],
        ..NodeNetworkSpec::default()
    };
    let span = NodeSpan {
        ip_sets: vec![
            IpSet {
                name: "clients".into(),
                kind: IpSetKind::Addresses,
                members: vec!["10.80.0.5".into()],
                ..IpSet::default()
            }
            .into(),
        ],
        policies: vec![
            CompiledPolicy {
                name: "default/allow-8080".into(),
                ingress: vec![CompiledRule {
                    action: Action::Allow,
                    protocol: Some(6),
                    source: CompiledMatch { sets: vec!["clients".into()], ..Default::default() },
                    destination: CompiledMatch {
                        ports: vec![PortRange { first: 8080, last: 8080 }],
                        ..Default::default()
                    },
                    ..Default::default()
                }],
                egress: vec![],
            }
            .into(),
        ],
        endpoints: vec![
            EndpointPolicy { name: "default/client".into(), ..Default::default() },
            EndpointPolicy {
                name: "default/server".into(),
                ingress: vec![TierPolicies::default_tier(["default/allow-8080"])],
                ..Default::default()
            },
        ],
        ..NodeSpan::default()
    };
    Node { name: "node-a".into(), spec, span: Some(span), blocks: vec![], endpoints }
}

struct Lab {
    host: Netns,
    outside: Netns,
    pods: Vec<Netns>,
}

fn lab(test: &str, node: &Node) -> Lab {
    let host = Netns::new(test, "node");
    let outside = Netns::new(test, "out");
    link(&host, "eth0", "192.168.80.1/24", &outside, "eth0", "192.168.80.2/24");
    host.ip("route add default via 192.168.80.2");
    // Without masquerade the outside would answer the pod directly.
    outside.ip("route add 10.80.0.0/16 via 192.168.80.1");
    let pods = node
        .endpoints
        .iter()
        .map(|e| {
            let ns = Netns::new(test, &e.pod);
            plumb_pod(&host, &ns, e);
            ns
        })
        .collect();
    Lab { host, outside, pods }
}

#[test]
fn policy_allows_and_denies_real_tcp() {
    require_root();
    let mut node = node();
    let lab = lab("policy", &node);
    let (client, server, pending) = (&lab.pods[0], &lab.pods[1], &lab.pods[2]);
    server.serve_peer_address(8080);
    server.serve_peer_address(9090);
    client.serve_peer_address(8080);
    pending.serve_peer_address(8080);
    let (report, _) = lab.host.sync(&node);
    assert_eq!(report.programmed_endpoints, ["default/client".to_string(), "default/server".to_string()].into());
    assert!(report.routes_programmed && report.policy_programmed, "{report:?}");

    let server_ip = SERVER.into();
    assert_eq!(client.connect(server_ip, 8080).as_deref(), Some("10.80.0.5"), "allowed by policy, not masqueraded");
    assert_eq!(client.connect(server_ip, 9090), None, "no rule allows 9090");
    assert_eq!(pending.connect(CLIENT.into(), 8080), None, "a pod without policy cannot send");
    assert_eq!(server.connect(CLIENT.into(), 8080).as_deref(), Some("10.80.0.6"), "client has no ingress policy");
    assert_eq!(client.connect(PENDING.into(), 8080), None, "a pod without policy cannot receive");
    let (ok, _) = lab.host.sh("nft delete table inet gingham");
    assert!(ok);
    assert_eq!(client.connect(PENDING.into(), 8080).as_deref(), Some("10.80.0.5"), "only policy stood in the way");
    assert_eq!(client.connect(server_ip, 9090).as_deref(), Some("10.80.0.5"));
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Rewrite, "a deleted table is recreated");
    assert_eq!(client.connect(server_ip, 9090), None);

    node.span_mut().ip_sets[0].members.clear();
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Elements, "a membership change is an element update");
    assert_eq!(client.connect(server_ip, 8080), None, "the client left the allowed set");
}

#[test]
fn outgoing_traffic_from_nat_pools_is_masqueraded() {
    require_root();
    let mut node = node();
    let lab = lab("masq", &node);
    lab.outside.serve_peer_address(7070);
    assert!(lab.host.sync(&node).0.policy_programmed);
    let outside = [192, 168, 80, 2].into();
    assert_eq!(lab.pods[0].connect(outside, 7070).as_deref(), Some("192.168.80.1"), "the far side sees the node");

    node.spec.pools[0].nat_outgoing = false;
    let (report, stats) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Elements);
    assert_eq!(lab.pods[0].connect(outside, 7070).as_deref(), Some("10.80.0.5"), "natOutgoing off: the pod itself");
}

#[test]
fn a_failed_transaction_leaves_the_previous_rules_in_force() {
    require_root();
    let node = node();
    let lab = lab("nftfail", &node);
    let (client, server) = (&lab.pods[0], &lab.pods[1]);
    server.serve_peer_address(8080);
    assert_clean(&lab.host.sync(&node).0);
    let before = lab.host.run(|| async { NftCommand::default().list().await.unwrap() });
    assert!(before.is_some());

    let broken = "delete table inet gingham\ntable inet gingham { chain forward { this is not nft } }\n";
    let failed = lab.host.run(move || async move { NftCommand::default().run_script(broken).await });
    assert!(failed.is_err(), "nft must refuse the broken transaction");

    let mut bad = node.clone();
    bad.span_mut().ip_sets[0].name = "x".repeat(300);
    bad.span_mut().policies[0].ingress[0].source.sets = vec!["x".repeat(300)];
    let (report, stats) = lab.host.sync(&bad);
    assert!(!report.policy_programmed);
    assert!(report.programmed_endpoints.is_empty(), "no endpoint is ready while policy failed");
    assert_eq!(stats.nft, NftOutcome::Failed);
    assert!(report.errors.iter().any(|e| e.message.contains("previous ruleset stays in force")), "{:?}", report.errors);

    let after = lab.host.run(|| async { NftCommand::default().list().await.unwrap() });
    assert_eq!(after, before, "the table is exactly as it was");
    assert_eq!(client.connect(SERVER.into(), 8080).as_deref(), Some("10.80.0.5"), "and still enforced");
}

/// An agent restarted before its span arrived keeps enforcing the table it finds, byte for byte,
/// while it programs the routes of a pod added meanwhile; its span's arrival brings the table up to
/// date.
#[test]
fn until_its_span_arrives_a_restarted_agent_leaves_the_table_alone() {
    require_root();
    let mut node = node();
    let lab = lab("nospan", &node);
    let (client, server) = (&lab.pods[0], &lab.pods[1]);
    server.serve_peer_address(8080);
    server.serve_peer_address(9090);
    assert_clean(&lab.host.sync(&node).0);
    let before = listing(&lab.host);

    let span = node.span.take();
    lab.host.ip(&format!("route del {}/32", std::net::Ipv4Addr::from(SERVER)));
    let (report, stats) = lab.host.sync(&node);
    assert!(report.routes_programmed && !report.policy_programmed, "{report:?}");
    assert!(report.errors.iter().all(|e| e.label == "span_unknown"), "{:?}", report.errors);
    assert!(report.programmed_endpoints.is_empty(), "the CNI plugin's ready waits");
    assert_eq!(stats.nft, NftOutcome::Untouched);
    assert_eq!(listing(&lab.host), before, "the table is exactly as it was");
    assert_eq!(client.connect(SERVER.into(), 8080).as_deref(), Some("10.80.0.5"), "routed again, and allowed");
    assert_eq!(client.connect(SERVER.into(), 9090), None, "and the old table still denies");

    node.span = span;
    node.span_mut().ip_sets[0].members.clear();
    let (report, _) = lab.host.sync(&node);
    assert_clean(&report);
    assert_eq!(client.connect(SERVER.into(), 8080), None, "the span's policy is enforced");
}

/// `nft list table` with its sets, maps and chains sorted by name: a table changed incrementally
/// lists new chains last, a rewritten one in the ruleset's order; their contents must be equal.
fn listing(host: &Netns) -> Vec<String> {
    let (ok, text) = host.sh("nft list table inet gingham");
    assert!(ok, "{text}");
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        let starts_block = line.starts_with('\t') && !line.starts_with("\t\t") && line != "\t}";
        match blocks.last_mut() {
            Some(block) if !starts_block => block.push_str(&format!("{line}\n")),
            _ => blocks.push(format!("{line}\n")),
        }
    }
    blocks.sort();
    blocks
}

#[test]
fn structural_changes_are_incremental_and_leave_the_table_a_rewrite_would() {
    require_root();
    let mut full = node();
    // List the table on every sync, so that the in-place edit of the last step is found at once.
    full.spec.agent.nftables_refresh_seconds = 0;
    // Before: no policy and no set yet, and `server` not known (its traffic dropped).
    let mut bare = full.clone();
    bare.span_mut().policies.clear();
    bare.span_mut().ip_sets.clear();
    bare.span_mut().endpoints.retain(|e| e.name == "default/client");
    let lab = lab("incr", &full);
    let (client, server) = (&lab.pods[0], &lab.pods[1]);
    server.serve_peer_address(8080);
    server.serve_peer_address(9090);

    // The last step edits a rule the incremental changes did not touch, then syncs again.
    let steps = [bare.clone(), full.clone(), bare.clone(), bare.clone()];
    let path = format!("/run/netns/{}", lab.host.name);
    let (outcomes_tx, outcomes_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    // One dataplane over every step (as a running agent), pausing after each for the checks.
    let worker = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut dataplane = KernelDataplane::connect().unwrap();
            for (index, step) in steps.iter().enumerate() {
                if index == 3 {
                    let edit = "nft replace rule inet gingham endpoint_to_host handle \
                         $(nft -a list chain inet gingham endpoint_to_host | awk '/drop # handle/ {print $NF}') accept";
                    let status = std::process::Command::new("sh").args(["-c", edit]).status().unwrap();
                    assert!(status.success(), "{edit}");
                }
                let report = dataplane.sync(&step.view(&step.plan())).await;
                outcomes_tx.send((report, dataplane.last_sync().nft)).unwrap();
                go_rx.recv().unwrap();
            }
        });
    });
    let step = |expected: NftOutcome| {
        let (report, outcome) = outcomes_rx.recv().unwrap();
        assert_clean(&report);
        assert_eq!(outcome, expected);
        let shown = listing(&lab.host);
        go_tx.send(()).unwrap();
        (report, shown)
    };
    let (_, first) = step(NftOutcome::Rewrite);
    assert_eq!(server.connect(CLIENT.into(), 8080), None, "server has no policy yet: dropped");

    let (report, added) = step(NftOutcome::Incremental);
    assert_eq!(report.programmed_endpoints, ["default/client".to_string(), "default/server".to_string()].into());
    assert_eq!(client.connect(SERVER.into(), 8080).as_deref(), Some("10.80.0.5"), "the new policy allows 8080");
    assert_eq!(client.connect(SERVER.into(), 9090), None, "and only 8080");
    let (_, removed) = step(NftOutcome::Incremental);
    let (_, repaired) = step(NftOutcome::Rewrite);
    assert_eq!(repaired, first, "a rule edited in place after incremental changes is still found and repaired");
    assert_eq!(client.connect(SERVER.into(), 8080), None, "server's policy entry is gone again: dropped");
    worker.join().unwrap();
    assert_ne!(added, first);
    assert_eq!(removed, first, "removing leaves the table as before adding");

    let (ok, text) = lab.host.sh("nft delete table inet gingham");
    assert!(ok, "{text}");
    let (report, stats) = lab.host.sync(&full);
    assert_clean(&report);
    assert_eq!(stats.nft, NftOutcome::Rewrite);
    assert_eq!(listing(&lab.host), added, "the incremental change left exactly the rewritten table");
}

/// A set holding overlapping and nested CIDRs (from several network sets and pods' addresses, as
/// the operator sends them) programs as one interval set, and every change is an element update
/// that keeps the transaction valid: when a covering CIDR goes, the ones it covered come back.
#[test]
fn overlapping_cidrs_program_and_change_as_element_updates() {
    require_root();
    let mut node = node();
    let lab = lab("cidrs", &node);
    let (client, server) = (&lab.pods[0], &lab.pods[1]);
    server.serve_peer_address(8080);
    assert_clean(&lab.host.sync(&node).0);
    let elements = || {
        let (ok, text) = lab.host.sh("nft list set inet gingham s_clients");
        assert!(ok, "{text}");
        let inside = text.split("elements = {").nth(1).map_or("", |rest| rest.split('}').next().unwrap_or(""));
        inside.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect::<Vec<_>>()
    };
    let steps: [(&[&str], &[&str], bool); 5] = [
        (&["10.80.0.0/26", "10.80.0.4/30", "10.80.0.5"], &["10.80.0.0/26"], true),
        (&["10.80.0.4/30", "10.80.0.5"], &["10.80.0.4/30"], true),
        (&["10.80.0.5"], &["10.80.0.5"], true),
        (&["10.80.0.8/29"], &["10.80.0.8/29"], false),
        (&["10.80.0.0/24", "10.80.0.8/29", "10.80.0.6"], &["10.80.0.0/24"], true),
    ];
    for (members, programmed, allowed) in steps {
        node.span_mut().ip_sets[0].members = members.iter().map(|m| (*m).into()).collect();
        let (report, stats) = lab.host.sync(&node);
        assert_clean(&report);
        assert_eq!(stats.nft, NftOutcome::Elements, "{members:?} is an element update");
        assert_eq!(elements(), *programmed, "{members:?}");
        let reached = client.connect(SERVER.into(), 8080);
        assert_eq!(reached.is_some(), allowed, "{members:?}: the client (10.80.0.5) is allowed: {allowed}");
    }
}
