//! A three-node gingham lab (real operator, agents, BIRD and CNI plugin) with an IPIP pool, inside the
//! qemu VM of `e2e/vm/run-ipip.sh` (the host kernel has no IP-in-IP): IPIP Always carries pod
//! traffic through tunl0 (proven by its counters); after switching to CrossSubnet, same-subnet
//! traffic goes direct and cross-subnet traffic stays on tunl0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn ipip_always_and_cross_subnet_lab_in_a_vm() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vm/run-ipip.sh");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_gingham-lab")).parent().unwrap().to_path_buf();
    let out = Command::new("bash")
        .arg(script)
        .arg("--lab")
        .arg(&bin_dir)
        .env("GINGHAM_VM_TIMEOUT", "600")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "the VM could not be prepared:\n{stderr}");
    for line in [
        "Always: p-n1 -> p-n2 through tunl0",
        "Always: p-n1 -> p-n3 through tunl0",
        "CrossSubnet: p-n1 -> p-n2 direct",
        "CrossSubnet: p-n1 -> p-n3 through tunl0",
        "GINGHAM-VM PASS",
    ] {
        assert!(stdout.contains(line), "missing `{line}`:\n{stdout}\n{stderr}");
    }
}
