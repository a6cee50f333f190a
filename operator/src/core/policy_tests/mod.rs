//! End-to-end policy tests: Kubernetes NetworkPolicy semantics checked by a reference evaluator
//! over the compiled NodeNetworks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts_services;
mod calico_order;
mod evaluator;
mod knp_matrix;
pub(super) mod world;
