//! The lab's network: namespaces and links made with `ip`, all inside namespaces the lab owns.
//!
//! ```text
//!  <p>-ul (underlay): br0 [br1]      <p>-rt (router): eth0 = subnet0 .1, [eth1 = subnet1 .1],
//!    |  vn<i> ── eth0 of <p>-n-<node>                  out0 = 10.233.0.254 ── <p>-out (10.233.0.1)
//!    |  rt<i> ── eth<i> of <p>-rt
//! ```
//! Nothing is created in the host's root namespace.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::cmd::{self, CmdError};
use crate::state::{LabState, NodeRecord};

/// The host address of the router on every subnet (the nodes' default gateway).
pub const ROUTER_HOST: u32 = 1;
/// The first node address on a subnet.
pub const FIRST_NODE_HOST: u32 = 10;
/// The address of the "outside" namespace (a destination outside every pool).
pub const OUTSIDE_ADDRESS: &str = "10.233.0.1";
const OUTSIDE_ROUTER: &str = "10.233.0.254/24";

/// Namespace names of a lab.
pub mod names {
    /// The underlay namespace (bridges).
    pub fn underlay(prefix: &str) -> String {
        format!("{prefix}-ul")
    }
    /// The router namespace.
    pub fn router(prefix: &str) -> String {
        format!("{prefix}-rt")
    }
    /// The "outside" namespace.
    pub fn outside(prefix: &str) -> String {
        format!("{prefix}-out")
    }
    /// A node's namespace.
    pub fn node(prefix: &str, node: &str) -> String {
        format!("{prefix}-n-{node}")
    }
    /// A pod's namespace.
    pub fn pod(prefix: &str, namespace: &str, pod: &str) -> String {
        format!("{prefix}-p-{namespace}-{pod}")
    }
}

/// Building the topology failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// An `ip` or `sysctl` command failed.
    #[error("topology: {0}")]
    Cmd(#[from] CmdError),
    /// The state could not be saved.
    #[error("topology: {0}")]
    State(#[from] crate::state::StateError),
    /// A subnet has no address left.
    #[error("subnet {0} has no free node address left; use a larger subnet")]
    SubnetFull(String),
    /// A node name is unknown.
    #[error("no subnet named {0:?} in this lab")]
    UnknownSubnet(String),
}

/// The `n`th host address of a subnet.
pub fn host(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(n))
}

/// Creates a network namespace, records it in the state (saved at once) and brings `lo` up.
pub fn add_netns(state: &mut LabState, name: &str) -> Result<(), TopologyError> {
    cmd::ip(None, &["netns", "add", name])?;
    state.namespaces.push(name.to_string());
    state.save()?;
    cmd::ip(Some(name), &["link", "set", "lo", "up"])?;
    Ok(())
}

fn sysctl(netns: &str, setting: &str) -> Result<(), CmdError> {
    cmd::run_in(netns, "sysctl", &["-qw", setting]).map(|_| ())
}

/// Creates the underlay (one bridge per subnet), the router and the outside namespace.
pub fn build_underlay(state: &mut LabState, subnets: &[(String, Ipv4Net)]) -> Result<(), TopologyError> {
    let (ul, rt, out) = (names::underlay(&state.prefix), names::router(&state.prefix), names::outside(&state.prefix));
    add_netns(state, &ul)?;
    add_netns(state, &rt)?;
    add_netns(state, &out)?;
    sysctl(&rt, "net.ipv4.ip_forward=1")?;
    for (i, (name, net)) in subnets.iter().enumerate() {
        let bridge = format!("br{i}");
        cmd::ip(Some(&ul), &["link", "add", &bridge, "type", "bridge"])?;
        cmd::ip(Some(&ul), &["link", "set", &bridge, "up"])?;
        let (leg, peer) = (format!("rt{i}"), format!("eth{i}"));
        cmd::ip(Some(&ul), &["link", "add", &leg, "type", "veth", "peer", "name", &peer, "netns", &rt])?;
        cmd::ip(Some(&ul), &["link", "set", &leg, "master", &bridge, "up"])?;
        let gateway = format!("{}/{}", host(*net, ROUTER_HOST), net.prefix_len());
        cmd::ip(Some(&rt), &["addr", "add", &gateway, "dev", &peer])?;
        cmd::ip(Some(&rt), &["link", "set", &peer, "up"])?;
        state.subnets.push((name.clone(), net.to_string()));
    }
    cmd::ip(Some(&rt), &["link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", &out])?;
    cmd::ip(Some(&rt), &["addr", "add", OUTSIDE_ROUTER, "dev", "out0"])?;
    cmd::ip(Some(&rt), &["link", "set", "out0", "up"])?;
    cmd::ip(Some(&out), &["addr", "add", &format!("{OUTSIDE_ADDRESS}/24"), "dev", "eth0"])?;
    cmd::ip(Some(&out), &["link", "set", "eth0", "up"])?;
    cmd::ip(Some(&out), &["route", "add", "default", "via", "10.233.0.254"])?;
    state.save()?;
    Ok(())
}

/// Adds a node: its namespace, a veth to its subnet's bridge, its address and default route.
pub fn add_node(state: &mut LabState, name: &str, subnet: &str) -> Result<NodeRecord, TopologyError> {
    let index = state.subnets.iter().position(|(n, _)| n == subnet);
    let net: Ipv4Net = index
        .and_then(|i| state.subnets.get(i))
        .and_then(|(_, cidr)| cidr.parse().ok())
        .ok_or_else(|| TopologyError::UnknownSubnet(subnet.into()))?;
    let bridge = format!("br{}", index.unwrap_or(0));
    let used: Vec<&str> = state.nodes.iter().map(|n| n.address.as_str()).collect();
    let address = (FIRST_NODE_HOST..net.hosts().count().try_into().unwrap_or(u32::MAX))
        .map(|h| format!("{}/{}", host(net, h), net.prefix_len()))
        .find(|a| !used.contains(&a.as_str()))
        .ok_or_else(|| TopologyError::SubnetFull(subnet.into()))?;
    let link_index = (0..).find(|i| !state.nodes.iter().any(|n| n.underlay_link == format!("vn{i}"))).unwrap_or(0);
    let (ul, ns) = (names::underlay(&state.prefix), names::node(&state.prefix, name));
    let record = NodeRecord {
        name: name.into(),
        netns: ns.clone(),
        address: address.clone(),
        subnet: subnet.into(),
        underlay_link: format!("vn{link_index}"),
        dir: state.state_dir.join("nodes").join(name),
    };
    add_netns(state, &ns)?;
    cmd::ip(Some(&ul), &["link", "add", &record.underlay_link, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    cmd::ip(Some(&ul), &["link", "set", &record.underlay_link, "master", &bridge, "up"])?;
    cmd::ip(Some(&ns), &["addr", "add", &address, "dev", "eth0"])?;
    cmd::ip(Some(&ns), &["link", "set", "eth0", "up"])?;
    cmd::ip(Some(&ns), &["route", "add", "default", "via", &host(net, ROUTER_HOST).to_string()])?;
    sysctl(&ns, "net.ipv4.ip_forward=1")?;
    state.nodes.push(record.clone());
    state.save()?;
    Ok(record)
}

/// Removes a node's namespace (its veth goes with it).
pub fn remove_node(state: &mut LabState, name: &str) -> Result<(), TopologyError> {
    let ns = names::node(&state.prefix, name);
    delete_netns(&ns)?;
    state.namespaces.retain(|n| *n != ns);
    state.nodes.retain(|n| n.name != name);
    state.save()?;
    Ok(())
}

/// Deletes a network namespace if it exists.
pub fn delete_netns(name: &str) -> Result<(), CmdError> {
    if list_netns()?.iter().any(|n| n == name) {
        cmd::ip(None, &["netns", "delete", name])?;
    }
    Ok(())
}

/// Every network namespace on the machine.
pub fn list_netns() -> Result<Vec<String>, CmdError> {
    let out = cmd::ip(None, &["netns", "list"])?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect())
}

/// The lab's namespaces on the machine, found by their prefix (for `down` after a crash).
pub fn netns_with_prefix(prefix: &str) -> Result<Vec<String>, CmdError> {
    let start = format!("{prefix}-");
    Ok(list_netns()?.into_iter().filter(|n| n.starts_with(&start)).collect())
}

/// The PIDs of every process inside a network namespace.
pub fn pids_in_netns(name: &str) -> Vec<i32> {
    cmd::ip(None, &["netns", "pids", name])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Adds a host that is not a node (a top-of-rack router, a client) to a subnet: namespace
/// `<prefix>-<name>`, a veth to the subnet's bridge and the subnet's `host`th address.
pub fn add_host(state: &mut LabState, name: &str, subnet: &str, host_index: u32) -> Result<String, TopologyError> {
    let index = state.subnets.iter().position(|(n, _)| n == subnet);
    let net: Ipv4Net = index
        .and_then(|i| state.subnets.get(i))
        .and_then(|(_, cidr)| cidr.parse().ok())
        .ok_or_else(|| TopologyError::UnknownSubnet(subnet.into()))?;
    let (ul, ns) = (names::underlay(&state.prefix), format!("{}-{name}", state.prefix));
    let link = format!("vh{}", state.namespaces.len());
    add_netns(state, &ns)?;
    cmd::ip(Some(&ul), &["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    cmd::ip(Some(&ul), &["link", "set", &link, "master", &format!("br{}", index.unwrap_or(0)), "up"])?;
    let address = host(net, host_index);
    cmd::ip(Some(&ns), &["addr", "add", &format!("{address}/{}", net.prefix_len()), "dev", "eth0"])?;
    cmd::ip(Some(&ns), &["link", "set", "eth0", "up"])?;
    cmd::ip(Some(&ns), &["route", "add", "default", "via", &host(net, ROUTER_HOST).to_string()])?;
    Ok(ns)
}
