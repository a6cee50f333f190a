//! The gingham operator: the cluster-wide brain. A pure core computes the desired state from the
//! observed objects; datastores (Kubernetes or a directory of files) feed it and apply its output.

pub mod core;
