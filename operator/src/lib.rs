//! The gingham operator: the cluster-wide brain. A pure core computes the desired state from the
//! observed objects; datastores (Kubernetes or a directory of files) feed it and apply its output.

pub mod app;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod core;
pub mod datastore;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod render;
pub mod stream;
pub mod validate;
pub mod webhook;
