//! End-to-end policy tests: Kubernetes NetworkPolicy semantics checked by a reference evaluator
//! over the compiled NodeNetworks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod calico_order;
mod cluster_matrix;
mod evaluator;
mod knp_matrix;
pub(super) mod world;
