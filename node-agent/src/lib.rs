//! The gingham node agent: applies one node's NodeNetwork through netlink, nftables and BIRD, and
//! serves the CNI plugin with node-local IPAM. It makes no cluster-wide decisions.

pub mod api;
pub mod atomic_file;
pub mod dataplane;
pub mod endpoint;
pub mod ipam;
pub mod shared;
pub mod cni;
pub mod bird;
pub mod datastore;
pub mod status;
pub mod http;
pub mod metrics;
pub mod agent;
pub mod cli;
pub mod logging;
