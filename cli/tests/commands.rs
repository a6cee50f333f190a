//! `gingham node status`, `ipam show` and `version` on a file datastore, run as a user would: the
//! real binary, human and machine output, and exit codes (0 ok, 1 problems found, 2 usage).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// Two nodes: node-1 ready and current, node-2 not ready with an error; one block each; two
/// pods on node-1 (one in node-2's block: borrowed) and a tunnel address on node-2.
const FILES: &[(&str, &str)] = &[
    ("node.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n"),
    ("pool.yaml", "apiVersion: gingham.dev/v1\nkind: IPPool\nmetadata: {name: pool}\nspec: {cidr: 10.244.0.0/16}\n"),
    (
        "objects/k8s/pod/prod.web.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod, uid: u-1, creationTimestamp: \"2026-12-01T10:00:00Z\"}\nspec: {nodeName: node-1, containers: [{name: c, image: i}]}\n",
    ),
    ("generated/nodenetworks/node-1.yaml", "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-1, generation: 3}\nspec: {address: 192.168.10.1/24}\n"),
    ("generated/nodenetworks/node-2.yaml", "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-2, generation: 2}\nspec: {address: 192.168.10.2/24}\n"),
    ("generated/ipamblocks/10-244-0-0-26.yaml", "apiVersion: gingham.dev/v1\nkind: IPAMBlock\nmetadata: {name: 10-244-0-0-26}\nspec: {cidr: 10.244.0.0/26, node: node-1, pool: pool, nodeAddress: 192.168.10.1/24}\n"),
    ("generated/ipamblocks/10-244-0-64-26.yaml", "apiVersion: gingham.dev/v1\nkind: IPAMBlock\nmetadata: {name: 10-244-0-64-26}\nspec: {cidr: 10.244.0.64/26, node: node-2, pool: pool, nodeAddress: 192.168.10.2/24}\n"),
    (
        "status/nodenetworks/node-1.yaml",
        "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-1}\nstatus:
  observedGeneration: 3
  bgpSummary: 1/1
  conditions:
    - {type: Ready, status: \"True\", reason: Applied, message: ok, lastTransitionTime: \"2026-12-01T10:00:00Z\"}
    - {type: RoutesProgrammed, status: \"True\", reason: Applied, message: ok, lastTransitionTime: \"2026-12-01T10:00:00Z\"}
  bgpSessions:
    - {name: mesh_192_168_10_2, peerAddress: 192.168.10.2, state: up, info: Established, since: \"10:00:01\"}
  endpointCount: 2
  endpoints:
    - {name: prod/web, uid: u-1, address: 10.244.0.5, interface: gh0a1b2c3d}
    - {name: prod/db, address: 10.244.0.70, interface: gh0e5f6a7b}
",
    ),
    (
        "status/nodenetworks/node-2.yaml",
        "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-2}\nstatus:
  observedGeneration: 1
  conditions:
    - {type: Ready, status: \"False\", reason: ApplyFailed, message: nft refused, lastTransitionTime: \"2026-12-01T10:00:00Z\"}
  tunnelAddress: 10.244.0.65
  lastError: nft refused the ruleset
",
    ),
];

fn datastore() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in FILES {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn gingham(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gingham"))
        .env_remove("GINGHAM_DATASTORE")
        .arg("--datastore")
        .arg(format!("file:{}", dir.display()))
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code().unwrap(), text(output.stdout), text(output.stderr))
}

#[test]
fn node_status_lists_every_node_and_fails_while_one_is_not_ready() {
    let dir = datastore();
    let (code, out, err) = gingham(dir.path(), &["node", "status"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        "\
NODE    ADDRESS          READY  ROUTES   POLICY   BGP  ENDPOINTS  REVISION  LAST ERROR
node-1  192.168.10.1/24  True   True     Unknown  1/1  2          3/3
node-2  192.168.10.2/24  False  Unknown  Unknown  -    0          1/2       nft refused the ruleset
"
    );
}

#[test]
fn node_status_of_one_node_shows_sessions_and_endpoints() {
    let dir = datastore();
    let (code, out, _) = gingham(dir.path(), &["node", "status", "node-1"]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "Revision:    applied 3/3 (applied/written generation)",
        "  mesh_192_168_10_2  192.168.10.2  up     10:00:01  Established",
        "  prod/web  10.244.0.5   gh0a1b2c3d",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let (code, _, err) = gingham(dir.path(), &["node", "status", "node-9"]);
    assert_eq!(code, 1);
    assert!(err.contains("node node-9 has no NodeNetwork (known: node-1, node-2)"), "{err}");
}

#[test]
fn ipam_show_gives_utilisation_blocks_borrowed_and_the_holder_of_an_address() {
    let dir = datastore();
    let (code, out, _) = gingham(dir.path(), &["ipam", "show", "--show-blocks", "--show-borrowed"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "\
POOL  CIDR           BLOCKS  IN USE/IN BLOCKS  OF BLOCKS  OF POOL
pool  10.244.0.0/16  2       3/128             2.3%       0.0%

BLOCK           NODE    POOL  IN USE  STATE
10.244.0.0/26   node-1  pool  1/64
10.244.0.64/26  node-2  pool  2/64

Borrowed addresses (1):
ADDRESS      OWNER    NODE    BLOCK
10.244.0.70  prod/db  node-1  10.244.0.64/26 of node-2
"
    );
    let (code, out, _) = gingham(dir.path(), &["ipam", "show", "--ip", "10.244.0.5"]);
    assert_eq!(code, 0);
    for line in [
        "Held by:   prod/web",
        "Node:      node-1",
        "Block:     10.244.0.0/26 (node node-1)",
        "Since:     2026-12-01T10:00:00Z",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let (code, out, _) = gingham(dir.path(), &["ipam", "show", "--ip", "10.244.0.9"]);
    assert_eq!(code, 1, "an address nobody holds is a finding");
    assert!(out.ends_with("10.244.0.9: not in use (block 10.244.0.0/26 (node node-1))\n"), "{out}");
}

#[test]
fn ipam_check_names_every_problem_and_exits_one() {
    let dir = datastore();
    let (code, out, _) = gingham(dir.path(), &["ipam", "check"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        "\
PROBLEM             SUBJECT         NODE    DETAIL
leaked              10.244.0.70     node-1  held for prod/db which no longer exists; the node's agent releases it on the pod's CNI DEL or GC
blockOfDeletedNode  10.244.0.64/26  node-2  the node is gone; the operator releases the block once no address in it is held
3 addresses, 1 pods, 2 blocks checked: 2 problems
"
    );
    let status = dir.path().join("status/nodenetworks/node-2.yaml");
    let text =
        std::fs::read_to_string(&status).unwrap().replace("tunnelAddress: 10.244.0.65", "tunnelAddress: 10.244.0.5");
    std::fs::write(&status, text).unwrap();
    let (_, out, _) = gingham(dir.path(), &["ipam", "check", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let collision = report["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "tunnelCollision").unwrap();
    assert_eq!(collision["subject"], "10.244.0.5");
    assert_eq!(
        collision["detail"],
        "held by prod/web on node-1 and tunnel on node-2: delete the pod so that it gets a fresh address; the tunnel keeps its own"
    );
}

#[test]
fn policy_preview_lists_the_verdicts_a_change_flips() {
    let dir = datastore();
    let change = dir.path().join("../change.yaml");
    let deny = "apiVersion: gingham.dev/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: deny}\nspec: {selector: all(), types: [Ingress]}\n";
    std::fs::write(&change, deny).unwrap();
    let (code, out, err) = gingham(dir.path(), &["policy", "preview", "-f", change.to_str().unwrap(), "--port", "80"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "\
FROM      TO        PROBE   CHANGE
prod/db   prod/web  80/TCP  allowed -> denied
prod/db   prod/web  ICMP    allowed -> denied
prod/web  prod/db   80/TCP  allowed -> denied
prod/web  prod/db   ICMP    allowed -> denied
4 of 4 pair-probes change (2 ordered pairs; probes ICMP, 80/TCP)
"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_gingham"))
        .args(["--datastore", "kubernetes", "policy", "preview", "-f"])
        .arg(&change)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs the file datastore"));
}

#[test]
fn an_address_that_does_not_decode_is_named_and_left_out() {
    let dir = datastore();
    let status = dir.path().join("status/nodenetworks/node-2.yaml");
    let text =
        std::fs::read_to_string(&status).unwrap().replace("tunnelAddress: 10.244.0.65", "tunnelAddress: 10.244.0.x");
    std::fs::write(&status, text).unwrap();
    let (code, out, err) = gingham(dir.path(), &["ipam", "show"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "skipped: NodeNetwork/node-2: status.tunnelAddress: \"10.244.0.x\" is no IP address; left out\n");
    assert!(out.contains(" 2/128 "), "two addresses remain: {out}");
}

#[test]
fn machine_output_carries_the_same_facts() {
    let dir = datastore();
    let (code, out, _) = gingham(dir.path(), &["ipam", "show", "--ip", "10.244.0.65", "-o", "json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ip"]["holder"]["owner"], "tunnel");
    assert_eq!(report["ip"]["holder"]["node"], "node-2");
    let (_, out, _) = gingham(dir.path(), &["node", "status", "-o", "yaml"]);
    assert!(out.starts_with("- name: node-1\n  address: 192.168.10.1/24\n"), "{out}");
    let (code, out, _) = gingham(dir.path(), &["version", "-o", "json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["agentsReporting"].as_u64(), report["nodes"].as_u64()), (Some(2), Some(2)));
    assert_eq!(report["components"], serde_json::json!([]), "the file datastore has no deployed images");
}

#[test]
fn usage_errors_exit_two_and_say_what_to_write() {
    let dir = datastore();
    let cases: &[(&[&str], &str)] = &[
        (&["ipam", "show", "--ip", "10.244.0"], "invalid value '10.244.0' for '--ip <ADDR>'"),
        (&["node", "status", "-o", "xml"], "invalid value 'xml' for '--output <OUTPUT>'"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["validate"], "the following required arguments were not provided"),
        (&["node", "status", "--bird-dir", "/x"], "the following required arguments were not provided"),
        (&["ipam", "check", "--grace-seconds", "5"], "the following required arguments were not provided"),
        (
            &["ipam", "check", "--fix", "--state-dir", "/nonexistent"],
            "no agent state in /nonexistent: run this on the node",
        ),
        (&["node", "status", "--local", "--bird-dir", "/nonexistent"], "BIRD did not answer on /nonexistent/bird.ctl"),
    ];
    for (args, message) in cases {
        let (code, _, err) = gingham(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_gingham")).args(["--datastore", "etcd", "version"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("use `kubernetes` or `file:DIR`"));
    let (code, _, err) = gingham(dir.path(), &["ipam", "release", "--ip", "10.244.0.5", "--state-dir", "/nonexistent"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no agent state in /nonexistent"), "{err}");
    let (code, _, err) = gingham(&dir.path().join("missing"), &["node", "status"]);
    assert_eq!(code, 2, "an unreadable datastore is no finding: {err}");
    assert!(err.contains("missing"), "{err}");
}
