//! The gingham node agent: applies one node's NodeNetwork through netlink, nftables and BIRD, and
//! serves the CNI plugin with node-local IPAM. It makes no cluster-wide decisions.

pub mod dataplane;
pub mod endpoint;
pub mod atomic_file;
pub mod ipam;
