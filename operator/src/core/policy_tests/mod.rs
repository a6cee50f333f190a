//! End-to-end policy tests: Kubernetes NetworkPolicy, Calico policy and tier semantics checked by
//! a reference evaluator over the compiled spans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts_services;
mod calico_order;
mod cluster_matrix;
mod evaluator;
mod hosts;
mod knp_matrix;
mod network_sets;
mod tiers;
pub(super) mod world;
