//! The `gingham` CLI against a running lab, through the file datastore, as a user runs it after
//! `gingham-lab up`: `node status` shows every BGP session established, `ipam show --ip` finds
//! each pod on its node, `diags` collects a node's state, `ipam check` is clean until a pod
//! disappears without a CNI DEL,
//! `policy explain` agrees with the probes on every pair of a policy matrix, and `policy preview`
//! predicts exactly the pairs that a change then flips.
//! Runs as root, one lab at a time; needs `cargo build -p gingham-cli`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{POLICY_SCENARIO, bin_dir, scenario, up};
use gingham_datastore::layout::user_object_path;
use gingham_e2e::harness::LabGuard;
use gingham_e2e::probe::{self, Probe, Reach};

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

fn cmd_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
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

    // On a node, in its network namespace as on a real node: the sessions live from its BIRD, and
    // diags with every part.
    let node = &lab.state.nodes[0];
    let output = Command::new("ip")
        .args(["netns", "exec", &node.netns])
        .arg(bin_dir().join("gingham"))
        .env("GINGHAM_DATASTORE", format!("file:{}", lab.datastore().display()))
        .args(["node", "status", &node.name, "--local", "--bird-dir"])
        .arg(node.dir.join("bird"))
        .output()
        .unwrap();
    let live = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{live}{}", String::from_utf8_lossy(&output.stderr));
    assert!(live.contains("BGP sessions (2/2):"), "{live}");
    assert_eq!(live.lines().filter(|l| l.ends_with("Established")).count(), 2, "{live}");
    let scratch = tempfile::tempdir().unwrap();
    let tarball = scratch.path().join("diags.tar.gz");
    let output = Command::new("ip")
        .args(["netns", "exec", &node.netns])
        .arg(bin_dir().join("gingham"))
        .env("GINGHAM_DATASTORE", format!("file:{}", lab.datastore().display()))
        .args(["diags", &node.name, "--out", tarball.to_str().unwrap(), "--bird-dir"])
        .arg(node.dir.join("bird"))
        .arg("--agent-log")
        .arg(lab.state.logs().join(format!("agent-{}.log", node.name)))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{report}{}", String::from_utf8_lossy(&output.stderr));
    let listing = cmd_output("tar", &["-tzf", tarball.to_str().unwrap()]);
    for part in [
        "MANIFEST.txt",
        "routes.txt",
        "nftables.txt",
        "bird.conf",
        "bird-protocols.txt",
        "agent.log",
        "nodenetwork.yaml",
    ] {
        assert!(listing.contains(&format!("gingham-diags-{}/{part}", node.name)), "{part} missing:\n{listing}");
    }
    let protocols = cmd_output(
        "tar",
        &["-xzOf", tarball.to_str().unwrap(), &format!("gingham-diags-{}/bird-protocols.txt", node.name)],
    );
    assert!(protocols.contains("Established"), "{protocols}");

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

    // On the leak's node: a live pod's address is refused; --fix releases the leak, and only once.
    let on_node = |node: &str, args: &[&str]| {
        let record = lab.state.node(node).unwrap();
        let output = Command::new("ip")
            .args(["netns", "exec", &record.netns])
            .arg(bin_dir().join("gingham"))
            .env("GINGHAM_DATASTORE", format!("file:{}", lab.datastore().display()))
            .args(args)
            .args(["--node", node, "--state-dir"])
            .arg(record.dir.join("state"))
            .arg("--cni-socket")
            .arg(gingham_e2e::lab::cni_socket(record))
            .output()
            .unwrap();
        (output.status.code().unwrap(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let live = &lab.state.pods[1];
    let live_address = live.address.as_deref().unwrap().split('/').next().unwrap();
    let (code, refused) = on_node(&live.node, &["ipam", "release", "--ip", live_address]);
    assert_eq!(code, 1, "{refused}");
    assert!(refused.contains(&format!("which runs on {}: delete the pod instead", live.node)), "{refused}");
    let (code, fixed) = on_node(&gone.node, &["ipam", "check", "--fix", "--grace-seconds", "0"]);
    assert_eq!(code, 0, "{fixed}");
    assert!(fixed.starts_with(&format!("released {address} ({}/{}, container ", gone.namespace, gone.name)), "{fixed}");
    assert_eq!(
        on_node(&gone.node, &["ipam", "check", "--fix", "--grace-seconds", "0"]),
        (0, "nothing to release\n".into())
    );
    let mut last = (1, String::new());
    for _ in 0..300 {
        last = gingham(&lab, &["ipam", "check"]);
        if last.0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last, (0, "2 addresses, 2 pods, 3 blocks checked: 0 problems\n".into()));
}

/// A Kubernetes deny of all ingress to web, and GlobalNetworkPolicies in order: at 10 a Deny for
/// `other` and a Pass for clients into web; at 20 an egress Deny from dev to prod/other.
const POLICIES: &str = "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: prod}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
---
apiVersion: gingham.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: deny-other-pass-clients}
spec:
  order: 10
  selector: app == 'web'
  types: [Ingress]
  ingress:
    - {action: Deny, source: {selector: app == 'other'}}
    - {action: Pass, source: {selector: app == 'client'}}
---
apiVersion: gingham.dev/v1
kind: GlobalNetworkPolicy
metadata: {name: dev-not-to-other}
spec:
  order: 20
  namespaceSelector: env == 'dev'
  types: [Egress]
  egress:
    - {action: Deny, destination: {selector: app == 'other'}}
    - {action: Allow}
";

/// Who reaches whom, by (from, to, probe as the CLI names it: `80/TCP` or `ICMP`). Refused
/// counts as reached: the packet got there, and nothing but web listens on 80.
fn probed(lab: &LabGuard) -> BTreeMap<(String, String, String), bool> {
    let mut seen = BTreeMap::new();
    for (probe, name) in [(Probe::Tcp(80), "80/TCP"), (Probe::Icmp, "ICMP")] {
        for ((from, to), reach) in probe::matrix(&lab.state, probe) {
            seen.insert((from, to, name.to_string()), reach != Reach::Blocked);
        }
    }
    seen
}

/// The pairs where `policy explain` disagrees with what was probed.
fn disagreements(lab: &LabGuard, seen: &BTreeMap<(String, String, String), bool>) -> Vec<String> {
    let mut wrong = Vec::new();
    for ((from, to, probe), reached) in seen {
        let mut args = vec!["policy", "explain", "--from", from.as_str(), "--to", to.as_str(), "-o", "json"];
        if probe != "ICMP" {
            args.extend(["--port", probe.as_str()]);
        }
        let (code, out) = gingham(lab, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
        let said = serde_json::from_str::<serde_json::Value>(&out).unwrap()["allowed"].as_bool().unwrap();
        if said != *reached {
            wrong.push(format!("{from} -> {to} {probe}: explain says allowed={said}, the probe reached={reached}"));
        }
    }
    wrong
}

#[test]
fn policy_explain_and_preview_agree_with_the_probes_on_every_pair() {
    let lab = up(POLICY_SCENARIO, "ghcx");
    let before = probed(&lab);
    assert_eq!((before.len(), before.values().filter(|r| **r).count()), (24, 24), "no policy yet: {before:?}");
    assert_eq!(disagreements(&lab, &before), Vec::<String>::new());

    let scratch = tempfile::tempdir().unwrap();
    let change = scratch.path().join("change.yaml");
    std::fs::write(&change, POLICIES).unwrap();
    let (code, out) = gingham(&lab, &["policy", "preview", "-f", change.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let predicted: BTreeSet<(String, String, String)> = report["flips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| [&f["from"], &f["to"], &f["probe"]].map(|v| v.as_str().unwrap().to_string()).into())
        .collect();

    lab.apply(POLICIES).unwrap();
    let after = probed(&lab);
    let changed: BTreeSet<(String, String, String)> =
        after.iter().filter(|(key, reached)| before.get(*key) != Some(*reached)).map(|(key, _)| key.clone()).collect();
    assert_eq!(predicted, changed, "preview predicted {predicted:?}, the lab changed {changed:?}");
    // Into web: clients pass, other is denied; dev/client may not reach other: 2 pairs, 2 probes.
    assert_eq!(changed.len(), 4, "{changed:?}");
    assert_eq!(disagreements(&lab, &after), Vec::<String>::new());

    let (_, text) =
        gingham(&lab, &["policy", "explain", "--from", "prod/other", "--to", "prod/web", "--port", "80/TCP"]);
    assert!(text.starts_with("prod/other ("), "{text}");
    assert!(text.contains(": DENIED\n"), "{text}");
    assert!(text.contains(": denied by global/deny-other-pass-clients rule 0"), "{text}");
}
