//! The lab's own machinery, without gingham: the underlay, the router, the outside namespace,
//! the pod servers and `down` (after a clean run and after a crash). Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gingham_crds::api::IpFamily;
use gingham_e2e::harness::LabGuard;
use gingham_e2e::probe::{self, Probe, Reach};
use gingham_e2e::state::LabState;
use gingham_e2e::{cmd, lab, process, topology};

fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gingham-lab")).parent().unwrap().to_path_buf()
}

const TWO_SUBNETS: &str = "lab: {prefix: xx}
subnets:
  - {name: a, cidr: 10.231.1.0/24}
  - {name: b, cidr: 10.231.2.0/24}
nodes:
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
  - {name: n3, subnet: b}
";

#[test]
fn the_underlay_joins_nodes_across_subnets_and_down_removes_everything() {
    let guard = LabGuard::up(TWO_SUBNETS, "ghtopo", &bin_dir(), true).unwrap();
    let state = &guard.state;
    let address = |n: usize| state.nodes[n].address.split('/').next().unwrap().to_string();
    assert_eq!(address(0), "10.231.1.10");
    assert_eq!(address(2), "10.231.2.10");
    // Same subnet, across the router, and out to the "outside" namespace.
    for (from, to) in [(0, address(1)), (0, address(2)), (2, address(0)), (1, topology::OUTSIDE_ADDRESS.to_string())] {
        assert_eq!(probe::reach(state, &state.nodes[from].netns, &to, Probe::Icmp), Reach::Ok, "{from} -> {to}");
    }
    // Nothing of the lab is in the host's root namespace.
    let host_links = cmd::ip(None, &["-o", "link"]).unwrap();
    assert!(!host_links.contains("ghtopo") && !host_links.contains(" vn0"), "{host_links}");
    // The probe tooling: a server in n3, TCP and UDP from n1, refused on a closed port.
    let mut state = guard.state.clone();
    let mut serve = Command::new("ip");
    serve.args(["netns", "exec", &state.nodes[2].netns]).arg(bin_dir().join("gingham-lab")).args([
        "serve",
        "--name",
        "n3",
        "--ports",
        "tcp:8080,udp:5353",
    ]);
    let record = process::spawn("serve n3", &mut serve, &state.logs().join("serve-n3.log")).unwrap();
    state.processes.push(record.clone());
    state.save().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let n1 = state.nodes[0].netns.clone();
    assert_eq!(probe::reach(&state, &n1, &address(2), Probe::Tcp(8080)), Reach::Ok);
    assert_eq!(probe::reach(&state, &n1, &address(2), Probe::Udp(5353)), Reach::Ok);
    assert_eq!(probe::reach(&state, &n1, &address(2), Probe::Tcp(8081)), Reach::Refused);
    assert_eq!(probe::reach(&state, &n1, "10.231.2.99", Probe::Tcp(8080)), Reach::Blocked);
    let (prefix, dir) = (state.prefix.clone(), state.state_dir.clone());
    drop(guard);
    assert!(!process::is_running(&record), "down must stop the processes it started");
    assert_no_lab_left(&prefix, &dir);
}

const DUAL_STACK: &str = "lab: {prefix: xx}
subnets:
  - {name: a, cidr: 10.231.1.0/24, cidr6: \"fd00:231:1::/64\"}
  - {name: b, cidr: 10.231.2.0/24, cidr6: \"fd00:231:2::/64\"}
nodes:
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
  - {name: n3, subnet: b}
";

#[test]
fn a_dual_stack_underlay_joins_nodes_in_both_families_with_unique_local_addresses_only() {
    let guard = LabGuard::up(DUAL_STACK, "ghtopo6", &bin_dir(), true).unwrap();
    let state = &guard.state;
    assert_eq!(state.families(), [IpFamily::IPv4, IpFamily::IPv6]);
    let ip = |n: usize, family| state.nodes[n].ip(family).unwrap().to_string();
    assert_eq!((ip(0, IpFamily::IPv4), ip(0, IpFamily::IPv6)), ("10.231.1.10".into(), "fd00:231:1::a".into()));
    assert_eq!(ip(2, IpFamily::IPv6), "fd00:231:2::a");
    for (from, to) in [
        (0, ip(1, IpFamily::IPv6)),
        (0, ip(2, IpFamily::IPv6)),
        (2, ip(0, IpFamily::IPv4)),
        (1, topology::OUTSIDE_ADDRESS6.to_string()),
    ] {
        assert_eq!(probe::reach(state, &state.nodes[from].netns, &to, Probe::Icmp), Reach::Ok, "{from} -> {to}");
    }
    let node = cmd::ip(Some(&state.nodes[0].netns), &["-6", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(!node.contains("tentative"), "underlay addresses skip DAD: {node}");
    // An IPv6-only lab: the same shape without IPv4; a node's primary address is its IPv6 one.
    let v6_only = DUAL_STACK.replace("cidr: 10.231.1.0/24, ", "").replace("cidr: 10.231.2.0/24, ", "");
    let scenario = gingham_e2e::scenario::parse(&v6_only).unwrap();
    assert!(scenario.subnets.iter().all(|s| s.v4.is_none() && s.v6.is_some()));
    let mixed = DUAL_STACK.replace("cidr: 10.231.2.0/24, ", "");
    let error = gingham_e2e::scenario::parse(&mixed).unwrap_err().to_string();
    assert!(error.contains("subnets[1].cidr6") && error.contains("same families"), "{error}");
    let outside = DUAL_STACK.replace("fd00:231:2::/64", "2001:db8::/64");
    let error = gingham_e2e::scenario::parse(&outside).unwrap_err().to_string();
    assert!(error.contains("inside fd00:231::/32"), "{error}");
}

#[test]
fn down_after_a_crash_finds_the_lab_by_prefix() {
    let mut guard = LabGuard::up(TWO_SUBNETS, "ghcrash", &bin_dir(), true).unwrap();
    let state = guard.state.clone();
    // A process nobody recorded, inside a lab namespace, and a lost state file: a crash.
    let mut sleeper = Command::new("ip");
    sleeper.args(["netns", "exec", &state.nodes[0].netns, "sleep", "600"]);
    let orphan = process::spawn("orphan", &mut sleeper, &state.logs().join("orphan.log")).unwrap();
    std::fs::remove_file(LabState::file(&state.state_dir)).unwrap();
    guard.disarm(); // This test runs down by hand, as after a crash.
    let report = lab::down("ghcrash", &state.state_dir).unwrap();
    assert_eq!(report.namespaces.len(), 6, "{report:?}");
    assert!(!process::is_running(&orphan), "a process inside a lab namespace must be stopped");
    assert_no_lab_left("ghcrash", &state.state_dir);
    // Down again is harmless, and never touches other namespaces.
    assert!(lab::down("ghcrash", &state.state_dir).unwrap().namespaces.is_empty());
}

#[test]
fn a_bad_scenario_creates_nothing() {
    let bad = TWO_SUBNETS.replace("{name: n3, subnet: b}", "{name: n3, subnet: c}");
    let error = LabGuard::up(&bad, "ghbad", &bin_dir(), true).err().unwrap().to_string();
    assert!(error.contains("line 8") && error.contains("nodes[2].subnet"), "{error}");
    assert!(topology::netns_with_prefix("ghbad").unwrap().is_empty());
    let missing = lab::check_binaries(Path::new("/nonexistent"), false).unwrap_err().to_string();
    assert!(missing.contains("gingham-node-agent") && missing.contains("cargo build"), "{missing}");
}

fn assert_no_lab_left(prefix: &str, dir: &Path) {
    assert!(topology::netns_with_prefix(prefix).unwrap().is_empty(), "namespaces of {prefix} left behind");
    assert!(!dir.exists(), "state dir {} left behind", dir.display());
}
