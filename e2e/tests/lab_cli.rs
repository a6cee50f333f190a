//! The `gingham` CLI against a running lab, through the file datastore, as a user runs it after
//! `gingham-lab up`: `node status` shows every BGP session established, `ipam show --ip` finds
//! each pod on its node, and `ipam check` is clean until a pod disappears without a CNI DEL.
//! Runs as root, one lab at a time; needs `cargo build -p gingham-cli`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin_dir, scenario, up};
use gingham_datastore::layout::user_object_path;
use gingham_e2e::harness::LabGuard;

/// Runs `gingham` with the lab's datastore in GINGHAM_DATASTORE, as `gingham-lab up` suggests.
fn gingham(lab: &LabGuard, args: &[&str]) -> (i32, String) {
    let binary = bin_dir().join("gingham");
    assert!(binary.is_file(), "{} is missing: build it with `cargo build -p gingham-cli`", binary.display());
    let output = Command::new(binary)
        .env("GINGHAM_DATASTORE", format!("file:{}", lab.datastore().display()))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "gingham {args:?} complained: {stderr}");
    (output.status.code().unwrap(), String::from_utf8(output.stdout).unwrap())
}

#[test]
fn node_status_and_ipam_show_read_a_running_lab() {
    let lab = up(&scenario(&[("n1", "a"), ("n2", "a"), ("n3", "a")], "Never"), "ghcl");

    // Sessions come up a little after Ready: wait for the CLI itself to say all is well.
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = gingham(&lab, &["node", "status"]);
        if last.0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, table) = last;
    assert_eq!(code, 0, "node status never turned healthy:\n{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    for node in &lab.state.nodes {
        let row = table.lines().find(|l| l.starts_with(&format!("{} ", node.name))).unwrap();
        assert!(row.contains(&format!("{}  True   True    True    2/2", node.address)), "{row}");

        let (code, detail) = gingham(&lab, &["node", "status", &node.name]);
        assert_eq!(code, 0, "{detail}");
        for peer in lab.state.nodes.iter().filter(|p| p.name != node.name) {
            let ip = peer.address.split('/').next().unwrap();
            let session = detail.lines().find(|l| l.contains(&format!(" {ip} "))).unwrap_or_default();
            assert!(session.contains(" up ") && session.ends_with("Established"), "{}→{ip}: {detail}", node.name);
        }
    }

    for pod in &lab.state.pods {
        let address = pod.address.as_deref().unwrap().split('/').next().unwrap();
        let (code, found) = gingham(&lab, &["ipam", "show", "--ip", address, "-o", "json"]);
        assert_eq!(code, 0, "{found}");
        let found: serde_json::Value = serde_json::from_str(&found).unwrap();
        let holder = &found["ip"]["holder"];
        assert_eq!(holder["owner"], format!("{}/{}", pod.namespace, pod.name), "{found}");
        assert_eq!(holder["node"], pod.node.as_str(), "{found}");
        assert_eq!(holder["uid"], pod.uid.as_str(), "{found}");
        assert_eq!(holder["blockNode"], pod.node.as_str(), "a lab pod's address is in its node's block: {found}");
    }
    let (code, pools) = gingham(&lab, &["ipam", "show"]);
    assert_eq!(code, 0);
    assert!(pools.lines().nth(1).unwrap().starts_with("pool  10.232.0.0/16  3       3/192"), "{pools}");

    let (code, clean) = gingham(&lab, &["ipam", "check"]);
    assert_eq!((code, clean.as_str()), (0, "3 addresses, 3 pods, 3 blocks checked: 0 problems\n"));
    // The pod's object goes away as with a deleted namespace, but no CNI DEL ever reaches the agent.
    let gone = &lab.state.pods[0];
    let address = gone.address.as_deref().unwrap().split('/').next().unwrap();
    std::fs::remove_file(user_object_path(&lab.datastore(), "v1", "Pod", Some(&gone.namespace), &gone.name)).unwrap();
    let (code, found) = gingham(&lab, &["ipam", "check"]);
    assert_eq!(code, 1, "{found}");
    let row = found.lines().find(|l| l.starts_with("leaked ")).unwrap_or_default();
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["leaked", address, gone.node.as_str()], "{found}");
    let why = format!("held for {}/{} which no longer exists", gone.namespace, gone.name);
    assert!(row.contains(&why), "expected {why:?} in\n{found}");
    assert!(found.ends_with("3 addresses, 2 pods, 3 blocks checked: 1 problems\n"), "{found}");
}
