//! `bird.conf` from the NodeNetwork spec (pure). The layout follows Calico's confd templates.
//!
//! - `protocol static gingham_blocks` announces every block of the node as a blackhole; the export
//!   filter keeps out blocks of pools with `disableBGPExport`.
//! - `protocol kernel` writes BGP-learned routes (only those) into the kernel with their own metric
//!   (they show up `proto bird`), and learns the kernel's other routes for next-hop resolution.
//! - `protocol direct` is enabled only for next-hop resolution of iBGP sessions, as in Calico (its
//!   routes are never exported anywhere); pod veths are excluded.
//! - One `protocol bgp` per peer session, with short connect and error timers so that a session
//!   to a joining node comes up within about a second. A route reflector also passes on what it
//!   learned.

use std::fmt::Write;
use std::net::IpAddr;

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec};
use ipnet::{IpNet, Ipv4Net};

use super::BirdError;

/// The metric of routes BIRD writes into the kernel.
pub const KERNEL_METRIC: u32 = 512;

/// Renders the configuration for a node with BGP settings.
pub fn render(node: &str, spec: &NodeNetworkSpec, bgp: &NodeBgpSpec) -> Result<String, BirdError> {
    let blocks = node_blocks(spec);
    let exported: Vec<Ipv4Net> = blocks.iter().filter(|b| !export_disabled(spec, b)).copied().collect();
    let local = spec.address.parse::<IpNet>().map(|n| n.addr()).ok();
    let reflector = bgp.route_reflector_cluster_id.is_some();
    let mut out = String::new();
    let w = &mut out;
    line(w, &format!("# BIRD configuration for node {node}, rendered by gingham-node-agent. Do not edit."));
    line(w, &format!("router id {};", bgp.router_id));
    line(w, "log stderr { info, remote, warning, error, auth, fatal, bug };");
    line(w, "");
    line(w, "protocol device {\n  scan time 10;\n}");
    line(w, "");
    line(w, "# Interface routes, for next-hop resolution only: never exported.");
    line(w, "protocol direct gingham_direct {\n  ipv4;\n  interface -\"gh*\", \"*\";\n}");
    line(w, "");
    line(w, "# BGP-learned routes go into the kernel; other kernel routes are learned for next-hop resolution.");
    line(w, "filter gingham_kernel_export {\n  if source = RTS_BGP then accept;\n  reject;\n}");
    line(w, "");
    line(
        w,
        "protocol kernel gingham_kernel {\n  learn;\n  persist;\n  scan time 10;\n  merge paths on;\n  graceful restart;",
    );
    line(w, &format!("  metric {KERNEL_METRIC};"));
    line(w, "  ipv4 {\n    import all;\n    export filter gingham_kernel_export;\n  };\n}");
    line(w, "");
    line(w, "# The node's blocks, announced as blackholes.");
    line(w, "protocol static gingham_blocks {\n  ipv4;");
    for block in &blocks {
        line(w, &format!("  route {block} blackhole;"));
    }
    line(w, "}");
    line(w, "");
    line(w, "# The blocks of pools without disableBGPExport.");
    line(w, "filter gingham_export_blocks {");
    for block in &exported {
        line(w, &format!("  if net = {block} then accept;"));
    }
    line(w, "  reject;\n}");
    if reflector {
        line(w, "");
        line(w, "# A route reflector passes on what it learned, too.");
        line(w, "filter gingham_export_reflected {");
        for block in &exported {
            line(w, &format!("  if net = {block} then accept;"));
        }
        line(w, "  if source = RTS_BGP then accept;\n  reject;\n}");
    }
    for peer in &bgp.peers {
        line(w, "");
        peer_protocol(w, bgp, peer, local, reflector)?;
    }
    Ok(out)
}

fn peer_protocol(
    w: &mut String,
    bgp: &NodeBgpSpec,
    peer: &BgpPeerSession,
    local: Option<IpAddr>,
    reflector: bool,
) -> Result<(), BirdError> {
    line(w, &format!("protocol bgp {} {{", peer.name));
    line(w, &format!("  description \"{:?} peer {}\";", peer.kind, peer.address));
    let local_as = peer.local_as_number.unwrap_or(bgp.as_number);
    match local.filter(|_| peer.use_node_source_address) {
        Some(address) => line(w, &format!("  local {address} port {} as {local_as};", bgp.listen_port)),
        None => line(w, &format!("  local port {} as {local_as};", bgp.listen_port)),
    }
    line(w, &format!("  neighbor {} port {} as {};", peer.address, peer.port, peer.as_number));
    if let Some(password) = &peer.password {
        if password.chars().any(|c| matches!(c, '"' | '\\' | '\n' | '\r')) {
            return Err(BirdError::Render {
                peer: peer.name.clone(),
                reason: "the password contains a quote, backslash or newline, which BIRD cannot read; choose another password".into(),
            });
        }
        line(w, &format!("  password \"{password}\";"));
    }
    if let Some(keepalive) = peer.keepalive_seconds {
        line(w, &format!("  keepalive time {keepalive};\n  hold time {};", keepalive.saturating_mul(3)));
    }
    line(w, "  graceful restart on;");
    // Session timers (as in Calico's templates, connect delay shorter still): the first connect 1 s
    // after the session is configured (BIRD's least; its default is 5 s, which a node joining waits
    // out), retries every 5 s (default 120 s) and 5-30 s after an error (default 60-300 s).
    line(w, "  connect delay time 1;\n  connect retry time 5;\n  error wait time 5, 30;");
    if let Some(seconds) = peer.max_restart_seconds {
        line(w, &format!("  graceful restart time {seconds};"));
    }
    if let Some(hops) = peer.ttl_security {
        line(w, "  ttl security on;");
        line(w, &if hops <= 1 { "  direct;".to_string() } else { format!("  multihop {hops};") });
    }
    if let Some(count) = peer.allowed_local_as {
        line(w, &format!("  allow local as {count};"));
    }
    if let (Some(cluster), true) = (&bgp.route_reflector_cluster_id, peer.route_reflector_client) {
        line(w, &format!("  rr client;\n  rr cluster id {cluster};"));
    }
    let filter = if reflector { "gingham_export_reflected" } else { "gingham_export_blocks" };
    line(w, &format!("  ipv4 {{\n    import all;\n    export filter {filter};"));
    match peer.next_hop_mode.as_deref() {
        Some("Self") => line(w, "    next hop self;"),
        Some("Keep") => line(w, "    next hop keep;"),
        _ => {}
    }
    line(w, "  };\n}");
    Ok(())
}

/// The node's IPv4 blocks (BIRD's channels here are IPv4).
fn node_blocks(spec: &NodeNetworkSpec) -> Vec<Ipv4Net> {
    spec.blocks
        .iter()
        .filter_map(|b| match b.parse::<IpNet>() {
            Ok(IpNet::V4(net)) => Some(net.trunc()),
            _ => None,
        })
        .collect()
}

fn export_disabled(spec: &NodeNetworkSpec, block: &Ipv4Net) -> bool {
    spec.pools.iter().any(|pool| {
        pool.disable_bgp_export && matches!(pool.cidr.parse::<IpNet>(), Ok(IpNet::V4(net)) if net.contains(block))
    })
}

fn line(out: &mut String, text: &str) {
    let _ = writeln!(out, "{text}");
}
