//! End-to-end policy tests: Kubernetes NetworkPolicy, Calico policy and tier semantics checked by
//! a reference evaluator over the compiled spans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod calico_order;
mod evaluator;
mod hosts;
mod knp_matrix;
mod tiers;
pub(super) mod world;
