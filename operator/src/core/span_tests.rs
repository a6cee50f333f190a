//! The stream's view of the desired state: items once, spans per node, batches between states.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::Shared;
use gingham_crds::api::span::SpanItem;
use gingham_stream::{ItemKey, ItemKind};
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use serde_json::json;

use super::{ItemConflict, StreamState};
use crate::core::policy_tests::world::world;
use crate::core::{ClusterSnapshot, DesiredState, OperatorSettings, compute};

/// The policy tests' world (nodes a and b, pods in prod and dev) with prod isolated: only the
/// frontend may reach prod's pods, on whichever node they run.
fn isolated_prod() -> ClusterSnapshot {
    let mut snapshot = world();
    let knp: KubeNetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "frontend-only", "namespace": "prod", "uid": "uid-1"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]}]},
    }))
    .unwrap();
    snapshot.kube_network_policies.push(knp);
    snapshot
}

fn desired(snapshot: &ClusterSnapshot) -> DesiredState {
    compute(snapshot, &OperatorSettings::default())
}

#[test]
fn a_policy_and_its_sets_are_one_item_each_in_the_span_of_every_node_that_uses_them() {
    let desired = desired(&isolated_prod());
    let state = StreamState::of(&desired).unwrap();
    let policies: Vec<&ItemKey> = state.items.keys().filter(|key| key.kind == ItemKind::Policy).collect();
    assert_eq!(policies.len(), 1, "one compiled policy for both nodes: {policies:?}");
    for node in ["a", "b"] {
        let computed = &desired.spans[node];
        let span = &state.spans[node];
        assert!(span.contains(policies[0]), "{node} has prod pods, so the policy is in its span");
        for set in &computed.ip_sets {
            assert!(span.contains(&ItemKey::new(ItemKind::IpSet, set.name.clone())), "{node} uses {}", set.name);
        }
        assert!(span.contains(&ItemKey::new(ItemKind::Endpoints, node)));
        let own = span.iter().filter(|key| matches!(key.kind, ItemKind::Endpoints | ItemKind::BgpPeers));
        assert!(own.clone().all(|key| key.name == node), "a node's own items are its alone");
        let expected = computed.policies.len() + computed.ip_sets.len() + 2;
        assert_eq!(span.len(), expected, "{node}'s span is exactly its computed span");
    }
    let SpanItem::Policy(policy) = &state.items[policies[0]] else { panic!("a policy key holds a policy") };
    let shared = &desired.spans["a"].policies[0];
    assert!(Shared::ptr_eq(policy, shared), "the item is the desired state's copy, not another");
}

#[test]
fn a_pod_added_is_a_batch_of_the_sets_that_gain_it_and_the_nodes_whose_span_changed_only() {
    let before = StreamState::of(&desired(&isolated_prod())).unwrap();
    let mut snapshot = isolated_prod();
    let mut status = snapshot.node_statuses["b"].clone();
    let mut endpoint = status.endpoints[0].clone();
    endpoint.name = "dev/newcomer".into();
    endpoint.address = "10.0.2.50".into();
    status.endpoints.push(endpoint);
    snapshot.node_statuses.insert("b".into(), status);
    snapshot.pods.push(crate::core::testkit::scheduled(crate::core::testkit::pod("dev", "newcomer"), "b", false));
    let after = StreamState::of(&desired(&snapshot)).unwrap();
    let batch = before.batch_to(&after);
    let keys: Vec<String> = batch.items.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["endpoints/b"], "the newcomer is selected by no set; only b's endpoint list changes");
    assert!(batch.spans.is_empty(), "no span gains or loses an item");
    assert_eq!(after.batch_to(&after).items.len(), 0, "a state against itself is an empty batch");
}

#[test]
fn two_contents_under_one_name_are_refused() {
    let mut desired = desired(&isolated_prod());
    let b = desired.spans.get_mut("b").unwrap();
    let mut other = (*b.policies[0]).clone();
    other.ingress.clear();
    b.policies[0] = Shared::new(other);
    let error: ItemConflict = StreamState::of(&desired).unwrap_err();
    assert_eq!(error.key.kind, ItemKind::Policy);
    assert_eq!((error.first.as_str(), error.second.as_str()), ("a", "b"));
    assert!(error.to_string().contains("compiled the same for every node"), "{error}");
}
