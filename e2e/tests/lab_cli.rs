//! The `gingham` CLI against a running lab, through the file datastore, as a user runs it after
//! `gingham-lab up`: `node status` shows every BGP session established, `ipam show --ip` finds
//! each pod on its node, `ipam check` is clean until a pod disappears without a CNI DEL, and
//! `policy explain` agrees with the probes on every pair of a policy matrix.
//! Runs as root, one lab at a time; needs `cargo build -p gingham-cli`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin_dir, scenario, up};
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

const POLICY_LAB: &str = "lab: {prefix: tt}
subnets:
  - {name: a, cidr: 10.231.1.0/24}
nodes:
  - {name: n1, subnet: a}
  - {name: n2, subnet: a}
namespaces:
  - {name: prod, labels: {env: prod}}
  - {name: dev, labels: {env: dev}}
pods:
  - {name: web, namespace: prod, node: n1, labels: {app: web}, ports: [{name: http, port: 80}]}
  - {name: client, namespace: prod, node: n2, labels: {app: client}}
  - {name: other, namespace: prod, node: n2, labels: {app: other}}
  - {name: client, namespace: dev, node: n1, labels: {app: client}}
objects:
  - apiVersion: gingham.dev/v1
    kind: IPPool
    metadata: {name: pool}
    spec: {cidr: 10.232.0.0/16, blockSize: 26, vxlanMode: Never}
";

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

/// What `policy explain` says of every pair, against what the probes see, for TCP 80 and ICMP.
fn disagreements(lab: &LabGuard) -> (usize, Vec<String>) {
    let mut disagreements = Vec::new();
    let mut allowed = 0;
    for (probe, port) in [(Probe::Tcp(80), Some("80/TCP")), (Probe::Icmp, None)] {
        for ((from, to), seen) in probe::matrix(&lab.state, probe) {
            let mut args = vec!["policy", "explain", "--from", from.as_str(), "--to", to.as_str(), "-o", "json"];
            args.extend(port.iter().flat_map(|p| ["--port", p]));
            let (code, out) = gingham(lab, &args);
            assert_eq!(code, 0, "{args:?}: {out}");
            let said = serde_json::from_str::<serde_json::Value>(&out).unwrap()["allowed"].as_bool().unwrap();
            allowed += usize::from(said);
            // Refused means the packet got there: nothing listens on 80 but web.
            if said != (seen != Reach::Blocked) {
                disagreements
                    .push(format!("{from} -> {to} {probe:?}: explain says allowed={said}, the probe saw {seen:?}"));
            }
        }
    }
    (allowed, disagreements)
}

#[test]
fn policy_explain_agrees_with_the_probes_on_every_pair() {
    let lab = up(POLICY_LAB, "ghcx");
    let (allowed, wrong) = disagreements(&lab);
    assert_eq!((allowed, wrong), (24, Vec::<String>::new()), "without policy everything is allowed");
    lab.apply(POLICIES).unwrap();
    let (allowed, wrong) = disagreements(&lab);
    assert!(wrong.is_empty(), "explain disagrees with the lab:\n{}", wrong.join("\n"));
    // Into web: dev/client and prod/client pass, other is denied; dev/client cannot reach other.
    assert_eq!(allowed, 24 - 2 * 2, "TCP and ICMP: other->web and dev/client->other are denied");

    let (_, text) =
        gingham(&lab, &["policy", "explain", "--from", "prod/other", "--to", "prod/web", "--port", "80/TCP"]);
    assert!(text.starts_with("prod/other ("), "{text}");
    assert!(text.contains(": DENIED\n"), "{text}");
    assert!(
        text.contains("Ingress of prod/web (") && text.contains(": denied by global/deny-other-pass-clients rule 0"),
        "{text}"
    );
}
