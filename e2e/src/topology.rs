//! The lab's network: namespaces and links made with `ip`, all inside namespaces the lab owns.
//!
//! ```text
//!  <p>-ul (underlay): br0 [br1]      <p>-rt (router): eth0 = subnet0 .1, [eth1 = subnet1 .1],
//!    |  vn<i> ── eth0 of <p>-n-<node>                  out0 = 10.233.0.254 ── <p>-out (10.233.0.1)
//!    |  rt<i> ── eth<i> of <p>-rt
//! ```
//! An IPv6 (or dual-stack) lab has the same shape with unique local addresses: `::1` of each
//! subnet on the router, `::a` (10) and up on the nodes, `fd00:233::fe` and `fd00:233::1` to the
//! outside. IPv6 addresses are added without duplicate address detection (`nodad`): the lab owns
//! every address on its bridges. Nothing is created in the host's root namespace.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::cmd::{self, CmdError};
use crate::scenario::SubnetPlan;
use crate::state::{LabState, NodeRecord, SubnetRecord};

/// The host address of the router on every subnet (the nodes' default gateway).
pub const ROUTER_HOST: u32 = 1;
/// The first node address on a subnet.
pub const FIRST_NODE_HOST: u32 = 10;
/// The address of the "outside" namespace (a destination outside every pool).
pub const OUTSIDE_ADDRESS: &str = "10.233.0.1";
const OUTSIDE_ROUTER: &str = "10.233.0.254/24";
/// The IPv6 address of the "outside" namespace.
pub const OUTSIDE_ADDRESS6: &str = "fd00:233::1";
const OUTSIDE_ROUTER6: &str = "fd00:233::fe";

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

/// The `n`th host address of an IPv6 subnet.
pub fn host6(net: Ipv6Net, n: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()).saturating_add(u128::from(n)))
}

/// A subnet's parsed CIDRs, by name, and its bridge index.
fn subnet(state: &LabState, name: &str) -> Result<(usize, Option<Ipv4Net>, Option<Ipv6Net>), TopologyError> {
    let index =
        state.subnets.iter().position(|s| s.name == name).ok_or_else(|| TopologyError::UnknownSubnet(name.into()))?;
    let record = &state.subnets[index];
    let v4 = record.cidr.as_ref().and_then(|cidr| cidr.parse().ok());
    let v6 = record.cidr6.as_ref().and_then(|cidr| cidr.parse().ok());
    Ok((index, v4, v6))
}

/// Adds an IPv6 address without duplicate address detection.
fn add_address6(netns: &str, address: &str, device: &str) -> Result<(), CmdError> {
    cmd::ip(Some(netns), &["-6", "addr", "add", address, "dev", device, "nodad"]).map(|_| ())
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

/// Turns duplicate address detection off for every interface created in a namespace of the
/// underlay (router, outside, nodes, hosts) from now on: the lab owns every address on its
/// bridges, and a link-local address still tentative after a namespace starts delays its first
/// packets by most of a second. Pods' namespaces keep the kernel's default: the CNI plugin deals
/// with DAD itself.
fn without_dad(netns: &str) -> Result<(), CmdError> {
    sysctl(netns, "net.ipv6.conf.all.accept_dad=0")?;
    sysctl(netns, "net.ipv6.conf.default.accept_dad=0")
}

/// Creates the underlay (one bridge per subnet), the router and the outside namespace, in every
/// family the subnets have.
pub fn build_underlay(state: &mut LabState, subnets: &[SubnetPlan]) -> Result<(), TopologyError> {
    let (ul, rt, out) = (names::underlay(&state.prefix), names::router(&state.prefix), names::outside(&state.prefix));
    add_netns(state, &ul)?;
    add_netns(state, &rt)?;
    add_netns(state, &out)?;
    sysctl(&rt, "net.ipv4.ip_forward=1")?;
    // IPv6 settings only where the lab has IPv6: an IPv4 lab runs on a kernel without it.
    let ipv6 = subnets.iter().any(|s| s.v6.is_some());
    if ipv6 {
        for netns in [&ul, &rt, &out] {
            without_dad(netns)?;
        }
        sysctl(&rt, "net.ipv6.conf.all.forwarding=1")?;
    }
    for (i, subnet) in subnets.iter().enumerate() {
        let bridge = format!("br{i}");
        cmd::ip(Some(&ul), &["link", "add", &bridge, "type", "bridge"])?;
        cmd::ip(Some(&ul), &["link", "set", &bridge, "up"])?;
        let (leg, peer) = (format!("rt{i}"), format!("eth{i}"));
        cmd::ip(Some(&ul), &["link", "add", &leg, "type", "veth", "peer", "name", &peer, "netns", &rt])?;
        cmd::ip(Some(&ul), &["link", "set", &leg, "master", &bridge, "up"])?;
        if let Some(net) = subnet.v4 {
            cmd::ip(
                Some(&rt),
                &["addr", "add", &format!("{}/{}", host(net, ROUTER_HOST), net.prefix_len()), "dev", &peer],
            )?;
        }
        if let Some(net) = subnet.v6 {
            add_address6(&rt, &format!("{}/{}", host6(net, ROUTER_HOST), net.prefix_len()), &peer)?;
        }
        cmd::ip(Some(&rt), &["link", "set", &peer, "up"])?;
        state.subnets.push(SubnetRecord {
            name: subnet.name.clone(),
            cidr: subnet.v4.map(|net| net.to_string()),
            cidr6: subnet.v6.map(|net| net.to_string()),
        });
    }
    cmd::ip(Some(&rt), &["link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", &out])?;
    cmd::ip(Some(&rt), &["addr", "add", OUTSIDE_ROUTER, "dev", "out0"])?;
    cmd::ip(Some(&rt), &["link", "set", "out0", "up"])?;
    cmd::ip(Some(&out), &["addr", "add", &format!("{OUTSIDE_ADDRESS}/24"), "dev", "eth0"])?;
    cmd::ip(Some(&out), &["link", "set", "eth0", "up"])?;
    cmd::ip(Some(&out), &["route", "add", "default", "via", "10.233.0.254"])?;
    if ipv6 {
        add_address6(&rt, &format!("{OUTSIDE_ROUTER6}/64"), "out0")?;
        add_address6(&out, &format!("{OUTSIDE_ADDRESS6}/64"), "eth0")?;
        cmd::ip(Some(&out), &["-6", "route", "add", "default", "via", OUTSIDE_ROUTER6])?;
    }
    state.save()?;
    Ok(())
}

/// Plumbs one underlay interface of a lab namespace: its addresses of each family the subnet has
/// (the `host_index`th), and a default route per family through the router.
fn plumb_underlay(
    netns: &str,
    device: &str,
    (v4, v6): (Option<Ipv4Net>, Option<Ipv6Net>),
    host_index: u32,
) -> Result<(Option<String>, Option<String>), TopologyError> {
    let address = v4.map(|net| format!("{}/{}", host(net, host_index), net.prefix_len()));
    let address6 = v6.map(|net| format!("{}/{}", host6(net, host_index), net.prefix_len()));
    if let Some(address) = &address {
        cmd::ip(Some(netns), &["addr", "add", address, "dev", device])?;
    }
    if let Some(address6) = &address6 {
        add_address6(netns, address6, device)?;
    }
    cmd::ip(Some(netns), &["link", "set", device, "up"])?;
    if let Some(net) = v4 {
        cmd::ip(Some(netns), &["route", "add", "default", "via", &host(net, ROUTER_HOST).to_string()])?;
    }
    if let Some(net) = v6 {
        cmd::ip(Some(netns), &["-6", "route", "add", "default", "via", &host6(net, ROUTER_HOST).to_string()])?;
    }
    Ok((address, address6))
}

/// Adds a node: its namespace, a veth to its subnet's bridge, its addresses and default routes.
pub fn add_node(state: &mut LabState, name: &str, subnet_name: &str) -> Result<NodeRecord, TopologyError> {
    let (index, v4, v6) = subnet(state, subnet_name)?;
    let bridge = format!("br{index}");
    let used: Vec<String> = state
        .nodes
        .iter()
        .map(|n| n.address.clone())
        .chain(state.nodes.iter().filter_map(|n| n.address6.clone()))
        .collect();
    let hosts = match (v4, v6) {
        (Some(net), _) => net.hosts().count().try_into().unwrap_or(u32::MAX),
        (None, Some(_)) => 1 << 16,
        (None, None) => 0,
    };
    let free = |h: u32| {
        let taken = |text: String| used.contains(&text);
        !v4.is_some_and(|net| taken(format!("{}/{}", host(net, h), net.prefix_len())))
            && !v6.is_some_and(|net| taken(format!("{}/{}", host6(net, h), net.prefix_len())))
    };
    let host_index =
        (FIRST_NODE_HOST..hosts).find(|h| free(*h)).ok_or_else(|| TopologyError::SubnetFull(subnet_name.into()))?;
    let link_index = (0..).find(|i| !state.nodes.iter().any(|n| n.underlay_link == format!("vn{i}"))).unwrap_or(0);
    let (ul, ns) = (names::underlay(&state.prefix), names::node(&state.prefix, name));
    let underlay_link = format!("vn{link_index}");
    add_netns(state, &ns)?;
    if v6.is_some() {
        without_dad(&ns)?;
    }
    cmd::ip(Some(&ul), &["link", "add", &underlay_link, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    cmd::ip(Some(&ul), &["link", "set", &underlay_link, "master", &bridge, "up"])?;
    let (address, address6) = plumb_underlay(&ns, "eth0", (v4, v6), host_index)?;
    sysctl(&ns, "net.ipv4.ip_forward=1")?;
    if v6.is_some() {
        sysctl(&ns, "net.ipv6.conf.all.forwarding=1")?;
    }
    let record = NodeRecord {
        name: name.into(),
        netns: ns,
        address: address.or_else(|| address6.clone()).unwrap_or_default(),
        address6,
        subnet: subnet_name.into(),
        underlay_link,
        dir: state.state_dir.join("nodes").join(name),
    };
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
/// `<prefix>-<name>`, a veth to the subnet's bridge and the subnet's `host`th address of each
/// family it has.
pub fn add_host(state: &mut LabState, name: &str, subnet_name: &str, host_index: u32) -> Result<String, TopologyError> {
    let (index, v4, v6) = subnet(state, subnet_name)?;
    let (ul, ns) = (names::underlay(&state.prefix), format!("{}-{name}", state.prefix));
    let link = format!("vh{}", state.namespaces.len());
    add_netns(state, &ns)?;
    if v6.is_some() {
        without_dad(&ns)?;
    }
    cmd::ip(Some(&ul), &["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    cmd::ip(Some(&ul), &["link", "set", &link, "master", &format!("br{index}"), "up"])?;
    plumb_underlay(&ns, "eth0", (v4, v6), host_index)?;
    Ok(ns)
}
