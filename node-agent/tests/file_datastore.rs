#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The file datastore: what the operator writes is read back whole, bad files are reported or
//! skipped, and status files hold only the name and the status.

use gingham_crds::api::felix::ProtoPort;
use gingham_crds::api::nodenetwork::{EndpointToHostAction, NodeBgpSpec, NodePolicySpec, PoolRouting};
use gingham_crds::api::{IPAMBlock, IPAMBlockSpec, NodeNetwork, NodeNetworkSpec, NodeNetworkStatus};
use gingham_node_agent::datastore::file::{FileDatastore, FileStatus};
use gingham_node_agent::datastore::{NodeNetworkState, StatusSink};
use serde_json::Value;

fn full_spec() -> NodeNetworkSpec {
    NodeNetworkSpec {
        address: Some("192.168.10.2/24".into()),
        blocks: vec!["10.244.0.0/26".into()],
        pools: vec![PoolRouting { name: "default".into(), cidr: "10.244.0.0/16".into(), ..Default::default() }],
        bgp: Some(NodeBgpSpec {
            router_id: "192.168.10.2".into(),
            as_number: 64512,
            listen_port: 179,
            route_reflector_cluster_id: Some("192.168.10.2".into()),
        }),
        policy: NodePolicySpec {
            default_endpoint_to_host_action: EndpointToHostAction::Accept,
            failsafe_inbound: vec![ProtoPort { protocol: "TCP".into(), port: 22, net: None }],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn what_the_operator_writes_is_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut network = NodeNetwork::new("node-a", full_spec());
    network.metadata.generation = Some(7);
    write(&dir.path().join("generated/nodenetworks/node-a.yaml"), &serde_saphyr::to_string(&network).unwrap());
    match FileDatastore::new(dir.path(), "node-a").read().node_network {
        NodeNetworkState::Found(found) => {
            assert_eq!(found.spec, full_spec());
            assert_eq!(found.metadata.generation, Some(7));
        }
        other => panic!("expected the NodeNetwork, got {other:?}"),
    }
}

#[test]
fn bad_node_networks_are_reported_with_their_file() {
    let cases = [
        ("spec: [unclosed", "invalid YAML"),
        (
            "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-a}\nspec: {address: 1.2.3.4/24, blokcs: []}\n",
            "",
        ),
        (
            "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-a}\nspec: {address: 1.2.3.4/24, blokcs: [10.0.0.0/26]}\n",
            "spec.blokcs",
        ),
        (
            "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-a}\nspec: {address: 17, blocks: {}}\n",
            "NodeNetwork node-a",
        ),
        (
            "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-b}\nspec: {address: 1.2.3.4/24}\n",
            "no NodeNetwork named node-a",
        ),
        // The span (endpoints, policies, sets, BGP sessions) is no part of a NodeNetwork any more.
        (
            "apiVersion: gingham.dev/v1\nkind: NodeNetwork\nmetadata: {name: node-a}\nspec: {address: 1.2.3.4/24, policy: {endpoints: [{name: default/web}]}}\n",
            "spec.policy.endpoints",
        ),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("generated/nodenetworks/node-a.yaml"), text);
        let state = FileDatastore::new(dir.path(), "node-a").read().node_network;
        if expected.is_empty() {
            assert!(matches!(state, NodeNetworkState::Found(_)), "an empty unknown list is harmless: {state:?}");
            continue;
        }
        match state {
            NodeNetworkState::Malformed(message) => {
                assert!(message.contains(expected) && message.contains("node-a.yaml"), "{text}: {message}")
            }
            other => panic!("{text}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn bad_block_files_and_hidden_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("generated/ipamblocks");
    let block = |cidr: &str| {
        let spec = IPAMBlockSpec {
            cidr: cidr.into(),
            node: "node-b".into(),
            pool: "default".into(),
            node_address: "192.168.10.3/24".into(),
            ..Default::default()
        };
        serde_saphyr::to_string(&IPAMBlock::new(&gingham_crds::naming::block_object_name(cidr), spec)).unwrap()
    };
    write(&blocks.join("10-244-1-0-26.yaml"), &block("10.244.1.0/26"));
    write(&blocks.join(".10-244-2-0-26.yaml.tmp"), &block("10.244.2.0/26"));
    write(
        &blocks.join("garbled.yaml"),
        "apiVersion: gingham.dev/v1\nkind: IPAMBlock\nmetadata: {name: x}\nspec: {cidr: 5}\n",
    );
    let read = FileDatastore::new(dir.path(), "node-a").read();
    assert_eq!(read.node_network, NodeNetworkState::Missing);
    assert_eq!(read.blocks.iter().map(|b| b.cidr.as_str()).collect::<Vec<_>>(), ["10.244.1.0/26"]);
}

#[tokio::test]
async fn status_files_hold_only_the_name_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let status = NodeNetworkStatus { observed_generation: Some(3), endpoint_count: 1, ..Default::default() };
    FileStatus::new(dir.path(), "node-a").write_status(&status).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("status/nodenetworks/node-a.yaml")).unwrap();
    let value: Value = serde_saphyr::from_str(&text).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "status"]);
    assert_eq!(value["metadata"], serde_json::json!({ "name": "node-a" }));
    assert_eq!(value["status"]["observedGeneration"], 3);
}
