//! The scenario shared by the datastore tests: one pool and two nodes, each with one block, and
//! one translated policy. Built by hand so the datastore tests do not depend on the core.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::common::Condition;
use gingham_crds::api::{IPAMBlockSpec, IPPoolStatus, NetworkPolicy, NetworkPolicySpec, NodeNetworkSpec};
use gingham_operator::core::DesiredState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// node-1 and node-2's specs: their address and block.
pub fn node_spec(index: u8) -> NodeNetworkSpec {
    NodeNetworkSpec {
        address: Some(format!("192.168.10.{index}/24").into()),
        blocks: vec![block_cidr(index).into()],
        ..NodeNetworkSpec::default()
    }
}

/// The block of node `index`: 10.244.0.0/26 for node 1, 10.244.0.64/26 for node 2.
pub fn block_cidr(index: u8) -> String {
    format!("10.244.0.{}/26", (u16::from(index) - 1) * 64)
}

/// The IPAMBlock of node `index`.
pub fn block_spec(index: u8) -> IPAMBlockSpec {
    IPAMBlockSpec {
        cidr: block_cidr(index).into(),
        node: format!("node-{index}"),
        pool: "default".into(),
        node_address: format!("192.168.10.{index}/24").into(),
        ..IPAMBlockSpec::default()
    }
}

/// The block object name of node `index`.
pub fn block_name(index: u8) -> String {
    gingham_crds::naming::block_object_name(&block_cidr(index))
}

/// The pool's status: allocatable, two blocks in use.
pub fn pool_status() -> IPPoolStatus {
    IPPoolStatus {
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Allocatable".into(),
            status: "True".into(),
            reason: "PoolValid".into(),
            message: "the pool hands out blocks".into(),
            observed_generation: Some(1),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }],
        blocks_in_use: 2,
        addresses_in_use: 3,
    }
}

/// The translation of the Kubernetes NetworkPolicy `web` in `default`.
pub fn translated() -> NetworkPolicy {
    NetworkPolicy::new(
        "knp.web",
        NetworkPolicySpec { selector: Some("app == 'web'".into()), ..NetworkPolicySpec::default() },
    )
}

/// The whole scenario.
pub fn scenario() -> DesiredState {
    let mut desired = DesiredState::default();
    for index in [1, 2] {
        desired.node_networks.insert(format!("node-{index}"), node_spec(index));
        desired.blocks.insert(block_name(index), block_spec(index));
    }
    desired.pool_statuses.insert("default".into(), pool_status());
    desired.translated_policies.insert(("default".into(), "web".into()), translated());
    desired
}
