//! The file datastore in a temporary directory: objects land where docs/file-datastore.md says,
//! unchanged state writes nothing, stale files go, bad files are skipped and the rest still read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use gingham_crds::api::NodeNetwork;
use gingham_crds::manifest::read_documents;
use gingham_operator::core::engine::Changes;
use gingham_operator::core::engine::Event;
use gingham_operator::core::engine::store::Object;
use gingham_operator::datastore::file::FileDatastore;
use gingham_operator::datastore::file::read::Reader;
use gingham_operator::datastore::file::write::{write_changes, write_desired};
use gingham_operator::datastore::{Datastore, Observation, WriteOp};
use support::{block_name, node_spec, scenario};

fn node_network(root: &Path, node: &str) -> NodeNetwork {
    let text = std::fs::read_to_string(root.join(format!("generated/nodenetworks/{node}.yaml"))).unwrap();
    serde_json::from_value(read_documents(&text).unwrap().remove(0).value).unwrap()
}

fn stamp(path: &Path) -> (u64, i64, i64) {
    let metadata = std::fs::metadata(path).unwrap();
    (metadata.ino(), metadata.mtime(), metadata.mtime_nsec())
}

#[test]
fn derived_objects_are_written_where_the_layout_says() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_desired(dir.path(), &scenario()).unwrap().summary;
    for path in [
        "generated/nodenetworks/node-1.yaml",
        "generated/nodenetworks/node-2.yaml",
        &format!("generated/ipamblocks/{}.yaml", block_name(1)),
        &format!("generated/ipamblocks/{}.yaml", block_name(2)),
        "generated/networkpolicies/default.knp.web.yaml",
        "status/ippools/default.yaml",
    ] {
        assert!(dir.path().join(path).is_file(), "{path} missing");
    }
    assert_eq!(summary.writes.get(&("NodeNetwork", WriteOp::Apply)), Some(&2));
    assert_eq!(summary.total(), 6);
    let node = node_network(dir.path(), "node-1");
    assert_eq!(node.spec, node_spec(1));
    assert_eq!(node.metadata.generation, Some(1));
    let status = std::fs::read_to_string(dir.path().join("status/ippools/default.yaml")).unwrap();
    let status = read_documents(&status).unwrap().remove(0).value;
    assert_eq!(status["metadata"], serde_json::json!({"name": "default"}));
    assert_eq!(status["status"]["blocksInUse"], 2);
    assert!(status.get("spec").is_none());
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("generated/nodenetworks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unchanged_desired_state_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_desired(dir.path(), &scenario()).unwrap();
    let files = ["generated/nodenetworks/node-1.yaml", "status/ippools/default.yaml"].map(|f| dir.path().join(f));
    let before: Vec<_> = files.iter().map(|f| stamp(f)).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let summary = write_desired(dir.path(), &scenario()).unwrap().summary;
    assert_eq!(summary.total(), 0, "{summary:?}");
    assert_eq!(files.iter().map(|f| stamp(f)).collect::<Vec<_>>(), before);
}

#[test]
fn a_spec_change_rewrites_that_node_only_and_bumps_its_generation() {
    let dir = tempfile::tempdir().unwrap();
    write_desired(dir.path(), &scenario()).unwrap();
    let untouched = stamp(&dir.path().join("generated/nodenetworks/node-2.yaml"));
    let mut desired = scenario();
    desired.node_networks.get_mut("node-1").unwrap().blocks.push("10.244.1.0/26".into());
    let summary = write_desired(dir.path(), &desired).unwrap().summary;
    assert_eq!(summary.total(), 1, "{summary:?}");
    assert_eq!(node_network(dir.path(), "node-1").metadata.generation, Some(2));
    assert_eq!(node_network(dir.path(), "node-2").metadata.generation, Some(1));
    assert_eq!(stamp(&dir.path().join("generated/nodenetworks/node-2.yaml")), untouched);
}

#[test]
fn a_round_after_events_writes_and_removes_only_the_objects_named_as_changed() {
    let dir = tempfile::tempdir().unwrap();
    write_desired(dir.path(), &scenario()).unwrap();
    let untouched = stamp(&dir.path().join("generated/nodenetworks/node-2.yaml"));
    let mut desired = scenario();
    desired.node_networks.get_mut("node-1").unwrap().blocks.push("10.244.1.0/26".into());
    desired.node_networks.get_mut("node-2").unwrap().blocks.clear();
    desired.blocks.remove(&block_name(2));
    let changes =
        Changes { node_networks: ["node-1".to_string()].into(), blocks: [block_name(2)].into(), ..Changes::default() };
    let written = write_changes(dir.path(), &desired, &changes).unwrap();
    assert_eq!(written.summary.writes.get(&("NodeNetwork", WriteOp::Apply)), Some(&1));
    assert_eq!(written.summary.writes.get(&("IPAMBlock", WriteOp::Delete)), Some(&1));
    assert_eq!(written.summary.total(), 2, "{:?}", written.summary);
    assert_eq!(written.files.len(), 2, "{:?}", written.files);
    assert_eq!(node_network(dir.path(), "node-1").metadata.generation, Some(2));
    // node-2 differs from the desired state, but nothing said it changed: it is not compared.
    assert_eq!(stamp(&dir.path().join("generated/nodenetworks/node-2.yaml")), untouched);
    assert!(!dir.path().join(format!("generated/ipamblocks/{}.yaml", block_name(2))).exists());
    assert_eq!(written.summary.managed.get("NodeNetwork"), Some(&2));
}

#[test]
fn stale_generated_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_desired(dir.path(), &scenario()).unwrap();
    std::fs::write(dir.path().join("pools.yaml"), "# the user's file is never removed\n").unwrap();
    let mut desired = scenario();
    desired.node_networks.remove("node-2");
    desired.blocks.remove(&block_name(2));
    desired.translated_policies.clear();
    let summary = write_desired(dir.path(), &desired).unwrap().summary;
    assert_eq!(summary.writes.get(&("NodeNetwork", WriteOp::Delete)), Some(&1));
    assert_eq!(summary.writes.get(&("IPAMBlock", WriteOp::Delete)), Some(&1));
    assert_eq!(summary.writes.get(&("NetworkPolicy", WriteOp::Delete)), Some(&1));
    assert!(!dir.path().join("generated/nodenetworks/node-2.yaml").exists());
    assert!(!dir.path().join(format!("generated/ipamblocks/{}.yaml", block_name(2))).exists());
    assert!(!dir.path().join("generated/networkpolicies/default.knp.web.yaml").exists());
    assert!(dir.path().join("generated/nodenetworks/node-1.yaml").exists());
    assert!(dir.path().join("pools.yaml").exists());
}

const POOL_AND_NODE: &str = "\
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: default
spec:
  cidr: 10.244.0.0/16
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
";

const BAD_POOL: &str = "\
apiVersion: gingham.dev/v1
kind: IPPool
metadata:
  name: host-bits
spec:
  cidr: 10.1.0.1/16
";

const BAD_PEER: &str = "\
apiVersion: gingham.dev/v1
kind: BGPPeer
metadata:
  name: broken
spec:
  nodeSelector: \"rack ==\"
  peerIP: 192.0.2.1
  asNumber: 64513
---
apiVersion: v1
kind: Node
metadata:
  name: node-2
";

const AGENT_STATUS: &str = "\
apiVersion: gingham.dev/v1
kind: NodeNetwork
metadata:
  name: node-1
status:
  observedGeneration: 3
";

#[test]
fn malformed_files_and_objects_are_skipped_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-pools.yaml"), POOL_AND_NODE).unwrap();
    std::fs::write(dir.path().join("b-broken.yaml"), "kind: [\n").unwrap();
    std::fs::write(dir.path().join("c-pool.yaml"), BAD_POOL).unwrap();
    std::fs::create_dir_all(dir.path().join("objects/team")).unwrap();
    std::fs::write(dir.path().join("objects/team/peers.yaml"), BAD_PEER).unwrap();
    std::fs::create_dir_all(dir.path().join("status/nodenetworks")).unwrap();
    std::fs::write(dir.path().join("status/nodenetworks/node-1.yaml"), AGENT_STATUS).unwrap();
    std::fs::write(dir.path().join("status/nodenetworks/.node-2.yaml.tmp"), "half a fi").unwrap();
    write_desired(dir.path(), &scenario()).unwrap();

    let mut reader = Reader::new(dir.path());
    let outcome = reader.read().unwrap();
    let snapshot = &outcome.snapshot;
    // The invalid pool still reaches the core, which reports it in the pool's status.
    let pools: Vec<_> = snapshot.pools.iter().map(|p| p.spec.cidr.clone()).collect();
    assert_eq!(pools, ["10.244.0.0/16", "10.1.0.1/16"]);
    let nodes: Vec<_> = snapshot.nodes.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
    assert_eq!(nodes, ["node-1", "node-2"]);
    assert!(snapshot.bgp_peers.is_empty());
    assert_eq!(snapshot.blocks.len(), 2, "generated blocks are read back as state");
    assert_eq!(snapshot.network_policies.len(), 1, "translations are read back");
    assert_eq!(snapshot.node_statuses.get("node-1").and_then(|s| s.observed_generation), Some(3));
    assert_eq!(outcome.problems.len(), 3, "{:?}", outcome.problems);
    assert!(outcome.problems[0].contains("b-broken.yaml"), "{:?}", outcome.problems);
    assert!(outcome.problems[1].contains("c-pool.yaml:1: IPPool/host-bits: spec.cidr"), "{:?}", outcome.problems);
    assert!(outcome.problems[2].contains("peers.yaml:1: BGPPeer/broken: spec.nodeSelector"), "{:?}", outcome.problems);

    let again = reader.read().unwrap();
    assert!(!again.changed, "nothing changed");
    assert!(again.problems.is_empty(), "problems are reported once per file version");
    assert_eq!(again.snapshot.nodes.len(), 2);
}

/// Observations until one holds an event `wanted` accepts (or the test times out).
async fn until_event(store: &mut FileDatastore, wanted: impl Fn(&Event) -> bool) {
    let wait = async {
        loop {
            match store.next().await.unwrap() {
                Observation::Events(events) if events.iter().any(&wanted) => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), wait).await.expect("no such event");
}

#[tokio::test]
async fn after_a_snapshot_the_datastore_reports_written_files_as_events_and_restores_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pools.yaml"), POOL_AND_NODE).unwrap();
    let mut store = FileDatastore::new(dir.path());
    let Observation::Snapshot(snapshot) = store.next().await.unwrap() else { panic!("a snapshot comes first") };
    assert_eq!(snapshot.nodes.len(), 1);
    store.apply(&scenario(), None).await.unwrap();

    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-2\n";
    std::fs::create_dir_all(dir.path().join("objects")).unwrap();
    std::fs::write(dir.path().join("objects/node-2.yaml"), node).unwrap();
    until_event(
        &mut store,
        |e| matches!(e, Event::Upsert(Object::Node(n)) if n.metadata.name.as_deref() == Some("node-2")),
    )
    .await;

    // Someone removes a NodeNetwork: the next round compares everything, though nothing changed.
    let own = dir.path().join("generated/nodenetworks/node-1.yaml");
    std::fs::remove_file(&own).unwrap();
    let wait =
        async { while !matches!(store.next().await.unwrap(), Observation::Events(events) if events.is_empty()) {} };
    tokio::time::timeout(std::time::Duration::from_secs(20), wait).await.expect("no round for the removal");
    let summary = store.apply(&scenario(), Some(&Changes::default())).await.unwrap();
    assert_eq!(summary.writes.get(&("NodeNetwork", WriteOp::Apply)), Some(&1), "{summary:?}");
    assert_eq!(node_network(dir.path(), "node-1").spec, node_spec(1));
}

const CLUSTER_POLICIES: &str = "\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {env: dev}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{networks: [0.0.0.0/0]}]}]
";

#[test]
fn cluster_policies_are_read_translated_written_and_their_translations_ignored_when_read_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster-policies.yaml"), CLUSTER_POLICIES).unwrap();
    let mut reader = Reader::new(dir.path());
    let outcome = reader.read().unwrap();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert_eq!(outcome.snapshot.cluster_network_policies.len(), 1);
    assert_eq!(outcome.snapshot.baseline_admin_network_policies.len(), 1);
    let settings = gingham_operator::core::OperatorSettings::default();
    let desired = gingham_operator::core::compute(&outcome.snapshot, &settings);
    let names: Vec<&str> = desired.translated_global_policies.keys().map(String::as_str).collect();
    assert_eq!(names, ["kube-admin.cnp.guard", "kube-baseline.banp.default"]);
    write_desired(dir.path(), &desired).unwrap();
    let written = dir.path().join("generated/networkpolicies/global.kube-admin.cnp.guard.yaml");
    let text = std::fs::read_to_string(&written).unwrap();
    let object = read_documents(&text).unwrap().remove(0).value;
    assert_eq!(
        (object["kind"].as_str(), object["spec"]["tier"].as_str()),
        (Some("GlobalNetworkPolicy"), Some("kube-admin"))
    );
    assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/managed-by"], "gingham-operator");

    // Read back, the translations are state, not input: the same desired state comes out.
    let again = reader.read().unwrap();
    assert!(again.problems.is_empty(), "{:?}", again.problems);
    assert_eq!(again.snapshot.global_network_policies.len(), 2, "translations are read back");
    assert_eq!(gingham_operator::core::compute(&again.snapshot, &settings), desired);

    // The source removed, its translation goes.
    std::fs::write(dir.path().join("cluster-policies.yaml"), "").unwrap();
    let emptied = reader.read().unwrap();
    let desired = gingham_operator::core::compute(&emptied.snapshot, &settings);
    assert!(desired.translated_global_policies.is_empty());
    write_desired(dir.path(), &desired).unwrap();
    assert!(!written.exists());
}
