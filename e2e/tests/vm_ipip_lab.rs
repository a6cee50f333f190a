//! A three-node gingham lab (real operator, agents, BIRD and CNI plugin) with an IPIP pool, inside the
//! qemu VM of `e2e/vm/run-ipip.sh` (the host kernel has no IP-in-IP): IPIP Always carries pod
//! traffic through tunl0 (proven by its counters); after switching to CrossSubnet, same-subnet
//! traffic goes direct and cross-subnet traffic stays on tunl0. Then, in the same VM, this test
//! binary itself runs [`every_ipip_and_vxlan_switch_each_way_keeps_every_pod_pair_in_the_vm`]:
//! every IPIP transition each way and IPIP ↔ VXLAN each way, on the full pod matrix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use gingham_e2e::live::{self, Encap, IPIP_SWITCHES};

#[test]
fn ipip_always_and_cross_subnet_lab_in_a_vm() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vm/run-ipip.sh");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_gingham-lab")).parent().unwrap().to_path_buf();
    let out = Command::new("bash")
        .arg(script)
        .arg("--lab")
        .arg(&bin_dir)
        .arg("--live")
        .arg(std::env::current_exe().unwrap())
        .env("GINGHAM_VM_TIMEOUT", "1500")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert_ne!(out.status.code(), Some(2), "the VM could not be prepared:\n{stderr}");
    for line in [
        "Always: p-n1 -> p-n2 through tunl0",
        "Always: p-n1 -> p-n3 through tunl0",
        "CrossSubnet: p-n1 -> p-n2 direct",
        "CrossSubnet: p-n1 -> p-n3 through tunl0",
        "ipip-live: test result: ok. 1 passed",
        "ipip-lab: live switches: PASS",
        "GINGHAM-VM PASS",
    ] {
        assert!(stdout.contains(line), "missing `{line}`:\n{stdout}\n{stderr}");
    }
}

/// Runs inside the VM only (started by `ipip-lab.sh` when `run-ipip.sh --live` gave it this test
/// binary, with `GINGHAM_LAB_BIN_DIR`): three nodes on two subnets, three pods each, the pool
/// switched through [`IPIP_SWITCHES`] with the full matrix and a new pod checked after each.
#[test]
#[ignore = "needs IP-in-IP: runs inside the VM, started by ipip_always_and_cross_subnet_lab_in_a_vm"]
fn every_ipip_and_vxlan_switch_each_way_keeps_every_pod_pair_in_the_vm() {
    let mut lab = common::up(&live::scenario("tt", 3, Encap::NONE), "ghvm");
    let problems = live::problems_through(&mut lab.state, "pool", IPIP_SWITCHES, Duration::from_secs(30)).unwrap();
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n\n"));
}
