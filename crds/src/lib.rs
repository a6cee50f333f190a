//! The `gingham.dev/v1` API: resource types, defaults, validation, the selector language and CRD
//! generation. No I/O lives here: the operator, the agent and the tests all share this crate.

pub mod api;
pub mod crdgen;
pub mod manifest;
pub mod naming;
pub mod netpolapi;
#[cfg(feature = "offline")]
pub mod offline;
pub mod selector;
pub mod unknown_fields;
pub mod validate;
