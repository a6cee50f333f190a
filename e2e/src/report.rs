//! What `up` and `status` print: the readiness table and, per node, routes, BGP sessions and the
//! nftables ruleset.

use std::fmt::Write as _;

use crate::cmd;
use crate::datastore;
use crate::family::ip_flag;
use crate::state::LabState;
use gingham_crds::api::IpFamily;

/// The `gingham` CLI's datastore flag for this lab, and the environment variable that sets it.
pub fn cli_hint(state: &LabState) -> String {
    let flag = format!("file:{}", state.datastore().display());
    format!(
        "inspect it with the gingham CLI: gingham --datastore {flag} node status
  (or export GINGHAM_DATASTORE={flag})
"
    )
}

/// One line per node: address, Ready, RoutesProgrammed, PolicyProgrammed, BGP and endpoints.
pub fn readiness_table(state: &LabState) -> String {
    let mut out = format!(
        "{:<14} {:<18} {:<6} {:<7} {:<7} {:<6} {:<9} {}\n",
        "NODE", "ADDRESS", "READY", "ROUTES", "POLICY", "BGP", "ENDPOINTS", "LAST ERROR"
    );
    for node in &state.nodes {
        let status = datastore::node_status(&state.datastore(), &node.name).ok().flatten();
        let cond = |kind: &str| {
            status.as_ref().and_then(|s| datastore::condition(s, kind)).map_or_else(|| "?".to_string(), |c| c.0)
        };
        let field = |name: &str| {
            status
                .as_ref()
                .and_then(|s| s.get(name))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "{:<14} {:<18} {:<6} {:<7} {:<7} {:<6} {:<9} {}",
            node.name,
            node.address,
            cond("Ready"),
            cond("RoutesProgrammed"),
            cond("PolicyProgrammed"),
            field("bgpSummary"),
            field("endpointCount"),
            status.as_ref().and_then(|s| s.get("lastError")).and_then(|v| v.as_str()).unwrap_or("")
        );
    }
    out
}

/// Per node: `ip route`, the BGP sessions from its status and `nft list table inet gingham`.
pub fn status(state: &LabState) -> String {
    let mut out = cli_hint(state) + "\n" + &readiness_table(state);
    for node in &state.nodes {
        let addresses = [Some(&node.address), node.address6.as_ref()].into_iter().flatten();
        let addresses: Vec<&str> =
            addresses.map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let _ = writeln!(out, "\n=== {} ({}, netns {}) ===", node.name, addresses.join(" "), node.netns);
        for family in state.families() {
            let routes = cmd::ip(Some(&node.netns), &[ip_flag(family), "route", "show", "table", "all"])
                .unwrap_or_else(|e| e.to_string());
            // The kernel's own: local and broadcast routes, and IPv6 link-local and multicast ones.
            let main: Vec<&str> = routes
                .lines()
                .filter(|l| !l.contains("table local") && !l.starts_with("local ") && !l.starts_with("multicast "))
                .filter(|l| !l.starts_with("fe80::/64"))
                .collect();
            let _ = writeln!(out, "--- ip {} route\n{}", ip_flag(family), main.join("\n"));
        }
        let status = datastore::node_status(&state.datastore(), &node.name).ok().flatten();
        let field = |name: &str| status.as_ref().and_then(|s| s.get(name)).and_then(|v| v.as_str()).map(str::to_string);
        let tunnel = field("tunnelAddress").unwrap_or_else(|| "none".into());
        let _ = writeln!(out, "--- tunnel address (IPAM handle tunnel-addr-{}): {tunnel}", node.name);
        if state.families().contains(&IpFamily::IPv6) {
            let tunnel6 = field("tunnelAddress6").unwrap_or_else(|| "none".into());
            let _ = writeln!(out, "--- IPv6 tunnel address (IPAM handle tunnel-addr-v6-{}): {tunnel6}", node.name);
        }
        let _ = writeln!(out, "--- BGP sessions (from status)");
        let sessions = status.as_ref().map(datastore::bgp_sessions).unwrap_or_default();
        if sessions.is_empty() {
            let _ = writeln!(out, "(none reported)");
        }
        for [name, peer, bird_state, info] in sessions {
            let _ = writeln!(out, "{name:<24} {peer:<24} {bird_state:<6} {info}");
        }
        let nft = cmd::run_in(&node.netns, "nft", &["list", "table", "inet", "gingham"])
            .unwrap_or_else(|e| format!("(no table: {e})"));
        let _ = writeln!(out, "--- nft list table inet gingham\n{}", nft.trim_end());
    }
    out
}
