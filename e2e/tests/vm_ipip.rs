//! IP-in-IP for real: the host kernel has no ipip, so `e2e/vm/run-ipip.sh` boots a stock Debian
//! kernel under qemu (TCG) and runs a two-namespace IPIP ping there. Runs as root; the first run
//! downloads qemu and the kernel into ~/.cache/gingham-vm with apt-get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn ipip_between_two_namespaces_in_a_vm_goes_through_tunl0() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vm/run-ipip.sh");
    let out = Command::new("bash").arg(script).output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => panic!("the IPIP VM could not be prepared (qemu or the kernel could not be fetched?):\n{stderr}"),
        _ => panic!("the IPIP test failed in the VM:\n{stdout}\n{stderr}"),
    }
    // Judge by the lines the VM printed, not by the exit status alone.
    assert!(stdout.contains("GINGHAM-VM PASS"), "{stdout}");
    let counters = stdout.lines().find(|l| l.contains("tunl0 a tx_packets")).expect("counter line");
    let numbers: Vec<u64> = counters
        .split('+')
        .skip(1)
        .filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect();
    assert!(numbers.len() == 2 && numbers.iter().all(|n| *n >= 5), "pings must cross tunl0: {counters}");
}
