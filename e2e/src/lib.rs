//! The network-namespace lab and whole-system tests.
//!
//! [`scenario`] reads and checks a scenario; [`topology`] builds namespaces and links with `ip`;
//! [`lab`] starts the operator and the agents; [`pods`] plumbs pods with the real CNI plugin;
//! [`probe`] measures connectivity; [`harness`] is what the e2e tests use; [`live`] switches
//! encapsulation on a running lab and checks every pod pair after each switch.

pub mod bench;
pub mod cmd;
pub mod datastore;
pub mod family;
pub mod harness;
pub mod lab;
pub mod live;
pub mod nft;
pub mod pods;
pub mod probe;
pub mod process;
pub mod report;
pub mod scenario;
pub mod serve;
pub mod services;
pub mod state;
pub mod stream;
pub mod topology;
