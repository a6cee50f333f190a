//! Whole-system changes on a running lab: natOutgoing, an agent killed and restarted, nodes
//! joining and leaving (encapsulation switches are in `lab_live_switch.rs`, their loss in bench
//! group 9). Runs as root, one lab at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Stack, assert_full_mesh, ping, routes, scenario, scenario_in, up};
use gingham_crds::api::IpFamily;
use gingham_e2e::harness::Pinger;
use gingham_e2e::scenario::NodeSpec;
use gingham_e2e::{cmd, datastore, lab, topology};

#[test]
fn an_agent_killed_and_restarted_loses_no_packet_and_flushes_nothing() {
    let mut lab = up(&scenario(&[("n1", "a"), ("n2", "a")], "Never"), "ghkill");
    let (from, _) = lab.pod("default/p-n1");
    let (_, to) = lab.pod("default/p-n2");
    let n1 = lab.node_netns("n1");
    let pid_file = lab.state.node("n1").unwrap().dir.join("bird/bird.pid");
    let bird_pid = || std::fs::read_to_string(&pid_file).unwrap_or_default().trim().to_string();
    let log = lab.state.logs().join("agent-n1.log");
    let adopted = || std::fs::read_to_string(&log).unwrap_or_default().contains("adopting the BIRD");
    let snapshot = |lab: &gingham_e2e::harness::LabGuard| {
        let nft = cmd::run_in(&n1, "nft", &["list", "table", "inet", "gingham"]).unwrap();
        (routes(lab, "n1"), routes(lab, "n2"), nft)
    };
    let before = snapshot(&lab);
    let pid = bird_pid();
    assert!(!pid.is_empty(), "n1's BIRD runs and wrote {}", pid_file.display());
    assert!(!adopted(), "the first agent started n1's BIRD: {}", log.display());
    assert!(before.1.contains("proto bird"), "n2 learned n1's block from BIRD:\n{}", before.1);
    let pinger = Pinger::start(&from, &to).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab::kill_and_restart_agent(&mut lab.state, "n1").unwrap();
    for _ in 0..300 {
        if adopted() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(adopted(), "the restarted agent did not adopt n1's BIRD; its log ends with:\n{}", lab::log_tail(&log, 30));
    lab::wait_ready(&lab.state, Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let count = pinger.stop().unwrap();
    eprintln!("agent restart: {} of {} pings lost ({} ms)", count.lost(), count.sent, count.lost() * 10);
    assert!(count.sent > 100, "the ping must run throughout: {count:?}");
    assert_eq!(count.lost(), 0, "no packet may be lost while the agent restarts");
    assert_eq!(bird_pid(), pid, "the restarted agent kept the running BIRD");
    let after = snapshot(&lab);
    assert_eq!(before.0, after.0, "n1's routes must survive the restart unchanged");
    assert_eq!(before.1, after.1, "n2's routes (learned from n1's BIRD) must stay unchanged");
    assert_eq!(before.2, after.2, "the nftables table must survive the restart unchanged");
}

/// Per family: a pod reaches the outside, which sees the node's address of that family and no pool
/// address (NAT66 for IPv6 pools, as NAT44 for IPv4).
fn nat_outgoing_in(stack: Stack, prefix: &str) {
    let lab = up(&scenario_in(stack, &[("n1", "a"), ("n2", "a")], "Never"), prefix);
    let outside = topology::names::outside(&lab.state.prefix);
    let (from, _) = lab.pod("default/p-n1");
    for family in stack.families() {
        let (filter, target, ip, pool) = match family {
            IpFamily::IPv4 => ("icmp", topology::OUTSIDE_ADDRESS, "IP", "10.232."),
            // Echo requests only: neighbour discovery is ICMPv6 too.
            IpFamily::IPv6 => ("icmp6 and ip6[40] == 128", topology::OUTSIDE_ADDRESS6, "IP6", "fd00:232:"),
        };
        let mut capture =
            cmd::in_netns(&outside, "timeout", &["8", "tcpdump", "-n", "-l", "-c", "3", "-i", "eth0", filter]);
        let capture = capture.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(ping(&from, target, 3), 3, "{family}: a pod must reach the outside with natOutgoing");
        let seen = String::from_utf8_lossy(&capture.wait_with_output().unwrap().stdout).into_owned();
        let node = lab.state.node("n1").unwrap().ip(family).unwrap().to_string();
        assert!(seen.contains(&format!("{ip} {node} > {target}")), "{family}: the outside must see {node}:\n{seen}");
        assert!(!seen.contains(&format!("{ip} {pool}")), "{family}: no pool address may leave the cluster:\n{seen}");
    }
}

#[test]
fn nat_outgoing_shows_the_node_address_to_the_outside() {
    nat_outgoing_in(Stack::V4, "ghnat");
}

#[test]
fn nat66_shows_the_node_ipv6_address_to_the_outside_on_ipv6_only() {
    nat_outgoing_in(Stack::V6, "ghnat6");
}

#[test]
fn nat_outgoing_masquerades_each_family_to_its_node_address_on_dual_stack() {
    nat_outgoing_in(Stack::Dual, "ghnatd");
}

#[test]
fn a_node_joining_and_leaving_updates_routes_everywhere_and_releases_its_blocks() {
    let mut lab = up(&scenario(&[("n1", "a"), ("n2", "a")], "Never"), "ghjoin");
    let spec = NodeSpec { name: "n3".into(), subnet: "a".into(), labels: Default::default() };
    let n3 = lab::add_node(&mut lab.state, &spec).unwrap();
    let pod = gingham_e2e::scenario::PodSpec {
        name: "p-n3".into(),
        namespace: "default".into(),
        node: "n3".into(),
        labels: [("app".to_string(), "p".to_string())].into(),
        ports: Vec::new(),
        service_account: None,
    };
    gingham_e2e::pods::add(&mut lab.state, &pod).unwrap();
    lab.converge().unwrap();
    let via = format!("via {} dev eth0 proto bird", n3.address.split('/').next().unwrap());
    for node in ["n1", "n2"] {
        wait_for(|| routes(&lab, node).contains(&via), &format!("{node} to learn n3's block"));
    }
    assert_full_mesh(&lab);
    let store = lab.datastore();
    assert!(datastore::ipam_blocks(&store).iter().any(|(_, node)| node == "n3"));
    lab::remove_node(&mut lab.state, "n3").unwrap();
    for node in ["n1", "n2"] {
        wait_for(|| !routes(&lab, node).contains(&via), &format!("{node} to forget n3's block"));
    }
    wait_for(|| !datastore::ipam_blocks(&store).iter().any(|(_, node)| node == "n3"), "n3's blocks to be released");
    assert_full_mesh(&lab);
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    for _ in 0..300 {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after 30 s waiting for {what}");
}
