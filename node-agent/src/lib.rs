//! The gingham node agent: applies one node's NodeNetwork and its span (from the operator's stream
//! or a span file) through netlink, nftables and BIRD, and serves the CNI plugin with node-local
//! IPAM. It makes no cluster-wide decisions.

pub mod agent;
pub mod api;
pub mod bird;
pub mod cli;
pub mod cni;
pub mod dataplane;
pub mod datastore;
pub mod endpoint;
pub mod http;
pub mod ipam;
pub mod logging;
pub mod metrics;
pub mod private_files;
pub mod shared;
pub mod span_file;
pub mod status;
pub mod stream_inputs;
