//! What `up` and `status` print: the readiness table and, per node, routes, BGP sessions and the
//! nftables ruleset.

use std::fmt::Write as _;

use crate::cmd;
use crate::datastore;
use crate::state::LabState;

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
        let _ = writeln!(out, "\n=== {} ({}, netns {}) ===", node.name, node.address, node.netns);
        let routes = cmd::ip(Some(&node.netns), &["-4", "route", "show", "table", "all"])
            .or_else(|_| cmd::ip(Some(&node.netns), &["route"]))
            .unwrap_or_else(|e| e.to_string());
        let main: Vec<&str> =
            routes.lines().filter(|l| !l.contains("table local") && !l.starts_with("local ")).collect();
        let _ = writeln!(out, "--- ip route\n{}", main.join("\n"));
        let status = datastore::node_status(&state.datastore(), &node.name).ok().flatten();
        let tunnel = status.as_ref().and_then(|s| s.get("tunnelAddress")).and_then(|v| v.as_str()).unwrap_or("none");
        let _ = writeln!(out, "--- tunnel address (IPAM handle tunnel-addr-{}): {tunnel}", node.name);
        let _ = writeln!(out, "--- BGP sessions (from status)");
        let sessions = status.as_ref().map(datastore::bgp_sessions).unwrap_or_default();
        if sessions.is_empty() {
            let _ = writeln!(out, "(none reported)");
        }
        for [name, peer, bird_state, info] in sessions {
            let _ = writeln!(out, "{name:<20} {peer:<16} {bird_state:<6} {info}");
        }
        let nft = cmd::run_in(&node.netns, "nft", &["list", "table", "inet", "gingham"])
            .unwrap_or_else(|e| format!("(no table: {e})"));
        let _ = writeln!(out, "--- nft list table inet gingham\n{}", nft.trim_end());
    }
    out
}
