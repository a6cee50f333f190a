//! `bird.conf` from the typed [`BirdConfig`] (pure). The layout follows Calico's confd templates.
//! Every value written is typed (see [`super::config`]): no text from a spec or a span is interpolated.
//!
//! - Each family the node routes (it has an address or a block of it) has its own protocols, as
//!   Calico's `bird` and `bird6`: IPv4's `gingham_kernel`, `gingham_blocks`, `gingham_export_blocks`
//!   keep their names, IPv6's end in `6`. The router id is IPv4-shaped for both.
//! - `protocol static gingham_blocks` announces every block of the node as a blackhole; the export
//!   filter keeps out blocks of pools with `disableBGPExport`.
//! - `protocol kernel` writes BGP-learned routes (only those) into the kernel with their own metric
//!   (they show up `proto bird`), and learns the kernel's other routes for next-hop resolution.
//! - `protocol direct` is enabled only for next-hop resolution of iBGP sessions, as in Calico (its
//!   routes are never exported anywhere); pod veths are excluded.
//! - One `protocol bgp` per peer session, with the channel of its peer address's family, with short connect and error timers so that a session
//!   to a joining node comes up within about a second. A route reflector also passes on what it
//!   learned.

use std::fmt::Write;
use std::ops::RangeInclusive;

use gingham_crds::api::nodenetwork::{BgpPeerSession, NodeBgpSpec};
use gingham_crds::api::{IpFamily, NodeNetworkSpec};

use super::BirdError;
use super::config::{BirdConfig, NextHop, Session, channel, suffix};

/// The metric of routes BIRD writes into the kernel.
pub const KERNEL_METRIC: u32 = 512;

/// A rendered config and the lines (1-based, inclusive) each session's protocol occupies, in the
/// order of [`BirdConfig::sessions`], so that an error BIRD reports at a line can be traced to its
/// session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The config text.
    pub text: String,
    /// Each session's lines.
    pub sessions: Vec<RangeInclusive<usize>>,
}

impl Rendered {
    /// The index of the session whose protocol holds `line`.
    pub fn session_at(&self, line: usize) -> Option<usize> {
        self.sessions.iter().position(|lines| lines.contains(&line))
    }
}

/// Renders the configuration for a node with BGP settings and sessions; a session with values BIRD
/// cannot take is an error naming it (the agent leaves such sessions out instead:
/// [`BirdConfig::decode`]).
pub fn render(
    node: &str,
    spec: &NodeNetworkSpec,
    bgp: &NodeBgpSpec,
    peers: &[BgpPeerSession],
) -> Result<String, BirdError> {
    let (config, left_out) = BirdConfig::decode(node, spec, bgp, peers)?;
    match left_out.into_iter().next() {
        Some(first) => Err(BirdError::Render { peer: first.peer, reason: first.reason }),
        None => Ok(render_config(&config).text),
    }
}

/// Renders a typed configuration.
pub fn render_config(config: &BirdConfig) -> Rendered {
    let mut out = String::new();
    let w = &mut out;
    line(w, &format!("# BIRD configuration for node {}, rendered by gingham-node-agent. Do not edit.", config.node));
    line(w, &format!("router id {};", config.router_id));
    line(w, "log stderr { info, remote, warning, error, auth, fatal, bug };");
    line(w, "");
    line(w, "protocol device {\n  scan time 10;\n}");
    line(w, "");
    line(w, "# Interface routes, for next-hop resolution only: never exported.");
    line(w, "protocol direct gingham_direct {");
    for family in &config.families {
        line(w, &format!("  {};", channel(*family)));
    }
    line(w, "  interface -\"gh*\", \"*\";\n}");
    line(w, "");
    line(w, "# BGP-learned routes go into the kernel; other kernel routes are learned for next-hop resolution.");
    line(w, "filter gingham_kernel_export {\n  if source = RTS_BGP then accept;\n  reject;\n}");
    for family in &config.families {
        family_protocols(w, config, *family);
    }
    let mut sessions = Vec::with_capacity(config.sessions.len());
    let mut lines = w.lines().count();
    for session in &config.sessions {
        let mut block = String::from("\n");
        peer_protocol(&mut block, config, session);
        let first = lines + 2;
        lines += block.lines().count();
        sessions.push(first..=lines);
        w.push_str(&block);
    }
    Rendered { text: out, sessions }
}

/// One family's kernel and static protocols and export filters (IPv4's keep the names of before;
/// IPv6's end in `6`, as Calico's `bird6` config is a twin of `bird`'s).
fn family_protocols(w: &mut String, config: &BirdConfig, family: IpFamily) {
    let (channel, suffix) = (channel(family), suffix(family));
    let of_family = |blocks: &[ipnet::IpNet]| -> Vec<ipnet::IpNet> {
        blocks.iter().filter(|block| IpFamily::of_net(block) == family).copied().collect()
    };
    let (blocks, exported) = (of_family(&config.blocks), of_family(&config.exported));
    line(w, "");
    line(
        w,
        &format!(
            "protocol kernel gingham_kernel{suffix} {{\n  learn;\n  persist;\n  scan time 10;\n  merge paths on;\n  graceful restart;"
        ),
    );
    line(w, &format!("  metric {KERNEL_METRIC};"));
    line(w, &format!("  {channel} {{\n    import all;\n    export filter gingham_kernel_export;\n  }};\n}}"));
    line(w, "");
    line(w, &format!("# The node's {family} blocks, announced as blackholes."));
    line(w, &format!("protocol static gingham_blocks{suffix} {{\n  {channel};"));
    for block in &blocks {
        line(w, &format!("  route {block} blackhole;"));
    }
    line(w, "}");
    line(w, "");
    line(w, &format!("# The {family} blocks of pools without disableBGPExport."));
    line(w, &format!("filter gingham_export_blocks{suffix} {{"));
    for block in &exported {
        line(w, &format!("  if net = {block} then accept;"));
    }
    line(w, "  reject;\n}");
    if config.cluster_id.is_some() {
        line(w, "");
        line(w, "# A route reflector passes on what it learned, too.");
        line(w, &format!("filter gingham_export_reflected{suffix} {{"));
        for block in &exported {
            line(w, &format!("  if net = {block} then accept;"));
        }
        line(w, "  if source = RTS_BGP then accept;\n  reject;\n}");
    }
}

fn peer_protocol(w: &mut String, config: &BirdConfig, peer: &Session) {
    line(w, &format!("protocol bgp {} {{", peer.name));
    line(w, &format!("  description \"{:?} peer {}\";", peer.kind, peer.address));
    match peer.source {
        Some(address) => line(w, &format!("  local {address} port {} as {};", config.listen_port, peer.local_as)),
        None => line(w, &format!("  local port {} as {};", config.listen_port, peer.local_as)),
    }
    line(w, &format!("  neighbor {} port {} as {};", peer.address, peer.port, peer.as_number));
    if let Some(password) = &peer.password {
        line(w, &format!("  password {password};"));
    }
    if let Some(keepalive) = peer.keepalive {
        line(w, &format!("  keepalive time {keepalive};\n  hold time {};", keepalive.saturating_mul(3)));
    }
    line(w, "  graceful restart on;");
    // Session timers (as in Calico's templates, connect delay shorter still): the first connect 1 s
    // after the session is configured (BIRD's least; its default is 5 s, which a node joining waits
    // out), retries every 5 s (default 120 s) and 5-30 s after an error (default 60-300 s).
    line(w, "  connect delay time 1;\n  connect retry time 5;\n  error wait time 5, 30;");
    if let Some(seconds) = peer.restart {
        line(w, &format!("  graceful restart time {seconds};"));
    }
    if let Some(hops) = peer.ttl_security {
        line(w, "  ttl security on;");
        line(w, &if hops <= 1 { "  direct;".to_string() } else { format!("  multihop {hops};") });
    }
    if let Some(count) = peer.allowed_local_as {
        line(w, &format!("  allow local as {count};"));
    }
    if let (Some(cluster), true) = (config.cluster_id, peer.rr_client) {
        line(w, &format!("  rr client;\n  rr cluster id {cluster};"));
    }
    // A session carries the routes of its peer address's family.
    let family = IpFamily::of(peer.address);
    let filter = if config.cluster_id.is_some() { "gingham_export_reflected" } else { "gingham_export_blocks" };
    let (channel, suffix) = (channel(family), suffix(family));
    line(w, &format!("  {channel} {{\n    import all;\n    export filter {filter}{suffix};"));
    match peer.next_hop {
        NextHop::SelfHop => line(w, "    next hop self;"),
        NextHop::Keep => line(w, "    next hop keep;"),
        NextHop::Auto => {}
    }
    line(w, "  };\n}");
}

fn line(out: &mut String, text: &str) {
    let _ = writeln!(out, "{text}");
}
