//! Shared by the stream's lab tests: each node's dataplane as the kernel shows it, the agents'
//! stream status, and waiting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gingham_e2e::datastore;
use gingham_e2e::harness::LabGuard;
use gingham_e2e::nft::Nft;

use super::routes;

/// prod/web accepts prod/client only (the other pods of prod are app=other).
pub const WEB_FROM_CLIENTS: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
";

/// A node's routes and nftables table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataplane {
    /// `ip -4 route`.
    pub routes: String,
    /// gingham's table.
    pub nft: Nft,
}

/// Every node's dataplane, by node.
pub fn dataplanes(lab: &LabGuard) -> BTreeMap<String, Dataplane> {
    let nodes = lab.state.nodes.iter().map(|n| n.name.clone());
    nodes
        .map(|node| {
            (node.clone(), Dataplane { routes: routes(lab, &node), nft: Nft::of(&lab.node_netns(&node)).unwrap() })
        })
        .collect()
}

/// A node's `status.stream`: its state and the server it streams from.
pub fn stream_status(lab: &LabGuard, node: &str) -> (String, Option<String>) {
    let status = datastore::node_status(&lab.datastore(), node).ok().flatten().unwrap_or_default();
    let field = |name: &str| status.pointer(&format!("/stream/{name}")).and_then(|v| v.as_str()).map(str::to_string);
    (field("state").unwrap_or_default(), field("server"))
}

/// Waits up to `timeout` for `condition`, panicking with `what` (and the last `detail`) after that.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match condition() {
            Ok(()) => return,
            Err(detail) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {detail}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Waits until each of `nodes` says its stream is in `state` (and, when given, from `server`).
pub fn wait_for_stream(lab: &LabGuard, nodes: &[&str], state: &str, server: Option<&str>) {
    wait_until(&format!("{nodes:?} to say the stream is {state} from {server:?}"), Duration::from_secs(30), || {
        let seen: Vec<(String, Option<String>)> = nodes.iter().map(|node| stream_status(lab, node)).collect();
        // A URL's path (`http://host:port/`) is no part of the server.
        let same = |from: &Option<String>, server: &str| {
            from.as_deref().is_some_and(|from| from.trim_end_matches('/') == server.trim_end_matches('/'))
        };
        let good = seen.iter().all(|(s, from)| s == state && server.is_none_or(|server| same(from, server)));
        if good { Ok(()) } else { Err(format!("{seen:?}")) }
    });
}
