//! Live changes checked the way users meet them (issue 12): the IPPool's encapsulation switched on
//! a running lab with several pods per node, on two underlay subnets, the full pod-to-pod matrix
//! checked after every switch, and a pod added after every switch checked as well.
//!
//! One sequence of switches ([`VXLAN_SWITCHES`], [`IPIP_SWITCHES`]) drives [`run_switches`]; the
//! lab tests, the VM lab and bench group 9 share the scenario, the tables and the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::cmd::{self, CmdError};
use crate::datastore::{self, DatastoreError};
use crate::family::family_of;
use crate::lab::{self, LabError};
use crate::pods::{self, PodError};
use crate::probe::{self, Probe, Reach};
use crate::report;
use crate::scenario::PodSpec;
use crate::state::LabState;
use crate::topology::names;
use gingham_crds::api::IpFamily;

/// A live-change run failed to act (not a failed check: those are reported in [`Step`]).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Applying a change or waiting for it failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// The datastore could not be written.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// A pod could not be added.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// A route could not be set on the lab's router.
    #[error(transparent)]
    Cmd(#[from] CmdError),
}

/// The IPPool's encapsulation: its `ipipMode` and `vxlanMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    /// `ipipMode`: Never, Always or CrossSubnet.
    pub ipip: &'static str,
    /// `vxlanMode`: Never, Always or CrossSubnet.
    pub vxlan: &'static str,
}

impl Encap {
    /// No encapsulation (BGP routes only).
    pub const NONE: Self = Self { ipip: "Never", vxlan: "Never" };

    /// VXLAN in `mode`, IPIP off.
    pub const fn vxlan(mode: &'static str) -> Self {
        Self { ipip: "Never", vxlan: mode }
    }

    /// IPIP in `mode`, VXLAN off.
    pub const fn ipip(mode: &'static str) -> Self {
        Self { ipip: mode, vxlan: "Never" }
    }

    /// How a reader names it: `VXLAN Always`, `IPIP CrossSubnet`, `Never`.
    pub fn label(self) -> String {
        match (self.ipip, self.vxlan) {
            ("Never", "Never") => "Never".into(),
            ("Never", vxlan) => format!("VXLAN {vxlan}"),
            (ipip, _) => format!("IPIP {ipip}"),
        }
    }
}

/// Every VXLAN transition each way, from [`Encap::NONE`]: Never→Always→CrossSubnet→Never→
/// CrossSubnet→Always→Never.
pub const VXLAN_SWITCHES: &[Encap] = &[
    Encap::vxlan("Always"),
    Encap::vxlan("CrossSubnet"),
    Encap::NONE,
    Encap::vxlan("CrossSubnet"),
    Encap::vxlan("Always"),
    Encap::NONE,
];

/// Every IPIP transition each way, and IPIP ↔ VXLAN each way in both Always and CrossSubnet,
/// from [`Encap::NONE`] (for the VM lab, whose kernel has both).
pub const IPIP_SWITCHES: &[Encap] = &[
    Encap::ipip("Always"),
    Encap::ipip("CrossSubnet"),
    Encap::NONE,
    Encap::ipip("CrossSubnet"),
    Encap::vxlan("CrossSubnet"),
    Encap::ipip("CrossSubnet"),
    Encap::ipip("Always"),
    Encap::vxlan("Always"),
    Encap::ipip("Always"),
    Encap::NONE,
];

/// The IPPool `name` on the lab's pool range (10.232.0.0/16, /26 blocks, natOutgoing) with `encap`;
/// the live scenario's is `pool`, the default scenario's `default-pool`.
pub fn pool(name: &str, encap: Encap) -> Value {
    json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": name},
        "spec": {"cidr": "10.232.0.0/16", "blockSize": 26, "ipipMode": encap.ipip, "vxlanMode": encap.vxlan,
            "natOutgoing": true}})
}

/// The IPv6 IPPool `name` on the lab's IPv6 pool range (fd00:232::/48, /122 blocks, natOutgoing)
/// with `encap`'s VXLAN mode (IPIP is IPv4 only); the live scenario's is `pool6`.
pub fn pool6(name: &str, encap: Encap) -> Value {
    json!({"apiVersion": "gingham.dev/v1", "kind": "IPPool", "metadata": {"name": name},
        "spec": {"cidr": "fd00:232::/48", "blockSize": 122, "vxlanMode": encap.vxlan, "natOutgoing": true}})
}

/// The pools of a lab of `families`: [`pool`] `pool_name` for IPv4, [`pool6`] `<pool_name>6` for
/// IPv6.
pub fn pools(pool_name: &str, encap: Encap, families: &[IpFamily]) -> Vec<Value> {
    families
        .iter()
        .map(|family| match family {
            IpFamily::IPv4 => pool(pool_name, encap),
            IpFamily::IPv6 => pool6(&format!("{pool_name}6"), encap),
        })
        .collect()
}

/// The nodes of the live scenario and their subnets: n1 and n2 share subnet a, n3 is on b, across
/// the router, so that CrossSubnet encapsulates some pairs and not others.
pub const NODES: [(&str, &str); 3] = [("n1", "a"), ("n2", "a"), ("n3", "b")];

/// Scenario text: [`NODES`] on subnets a (10.231.1.0/24) and b (10.231.2.0/24), `pods_per_node`
/// pods `default/p-<node>-<i>` on each, and [`pool`] `pool` with `encap`.
pub fn scenario(prefix: &str, pods_per_node: usize, encap: Encap) -> String {
    scenario_in(prefix, pods_per_node, encap, &[IpFamily::IPv4])
}

/// [`scenario`] in `families`: subnets a and b also (or only) fd00:231:1::/64 and fd00:231:2::/64,
/// and the [`pools`] of those families.
pub fn scenario_in(prefix: &str, pods_per_node: usize, encap: Encap, families: &[IpFamily]) -> String {
    let subnet = |name: &str, n: u8| {
        let mut cidrs = Vec::new();
        if families.contains(&IpFamily::IPv4) {
            cidrs.push(format!("cidr: 10.231.{n}.0/24"));
        }
        if families.contains(&IpFamily::IPv6) {
            cidrs.push(format!("cidr6: \"fd00:231:{n}::/64\""));
        }
        format!("  - {{name: {name}, {}}}\n", cidrs.join(", "))
    };
    let mut text = format!("lab: {{prefix: {prefix}}}\nsubnets:\n{}{}nodes:\n", subnet("a", 1), subnet("b", 2));
    for (node, subnet) in NODES {
        let _ = writeln!(text, "  - {{name: {node}, subnet: {subnet}}}");
    }
    text.push_str("pods:\n");
    for i in 1..=pods_per_node {
        for (node, _) in NODES {
            let _ = writeln!(text, "  - {{name: p-{node}-{i}, node: {node}, labels: {{app: p}}}}");
        }
    }
    text.push_str("objects:\n");
    for pool in pools("pool", encap, families) {
        let _ = writeln!(text, "  - {pool}");
    }
    text
}

/// Writes objects into the lab's datastore and waits until every node applied its new spec;
/// returns how long that took.
pub fn apply(state: &LabState, objects: &[Value]) -> Result<Duration, LiveError> {
    let start = Instant::now();
    for object in objects {
        datastore::put(&state.datastore(), object)?;
    }
    // The operator polls the directory: give it a moment to write new generations.
    std::thread::sleep(Duration::from_millis(1500));
    lab::wait_converged(state, Duration::from_secs(120))?;
    Ok(start.elapsed())
}

/// Routes every block of the pool on the lab's router to its node when `on` (as a routed fabric
/// that peers with the nodes would): without encapsulation, a pod on subnet b is reached from
/// subnet a only through the router. Removes them when not `on`, so that encapsulated modes rely
/// on their tunnels alone.
pub fn fabric_routes(state: &LabState, on: bool) -> Result<(), LiveError> {
    let router = names::router(&state.prefix);
    for (cidr, node) in datastore::ipam_blocks(&state.datastore()) {
        let via = state.node(&node).and_then(|n| n.ip(family_of(&cidr)).map(str::to_string));
        match via {
            Some(via) if on => {
                cmd::ip(Some(&router), &["route", "replace", &cidr, "via", &via])?;
            }
            _ => {
                // Absent already is fine: the route is only wanted gone.
                let _ = cmd::ip(Some(&router), &["route", "del", &cidr]);
            }
        }
    }
    Ok(())
}

/// Switches the IPPool `pool_name` (and on a lab with IPv6 its twin `<pool_name>6`) to `encap` and
/// waits until every node applied it; the router routes the pools' blocks only while there is no
/// encapsulation ([`fabric_routes`]: on before the switch to Never, off after a switch away from
/// it). Returns how long the nodes took.
pub fn switch(state: &LabState, pool_name: &str, encap: Encap) -> Result<Duration, LiveError> {
    if encap == Encap::NONE {
        fabric_routes(state, true)?;
    }
    let took = apply(state, &pools(pool_name, encap, &state.families()))?;
    if encap != Encap::NONE {
        fabric_routes(state, false)?;
    }
    Ok(took)
}

/// The pod matrix, probed again until every pair answers or `settle` has passed (routes learned
/// over BGP may follow the status by a moment); returns the last matrix. In the lab's first family.
pub fn settled_matrix(state: &LabState, settle: Duration) -> probe::Matrix {
    settled_matrices(state, settle).into_iter().next().map(|(_, matrix)| matrix).unwrap_or_default()
}

/// [`settled_matrix`] in every family of the lab.
pub fn settled_matrices(state: &LabState, settle: Duration) -> Vec<(IpFamily, probe::Matrix)> {
    let deadline = Instant::now() + settle;
    loop {
        let matrices = probe::matrices(state, Probe::Icmp, None);
        let all = matrices.iter().all(|(_, m)| m.values().all(|r| *r == Reach::Ok));
        if all || Instant::now() >= deadline {
            return matrices;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every problem the lab shows now: unreachable pod pairs (after up to `settle`), pod addresses on
/// a node's own devices (such as the tunnel device), and tunnel addresses the status does not show.
pub fn check(state: &LabState, settle: Duration) -> Vec<String> {
    let matrices = settled_matrices(state, settle);
    let mut problems = Vec::new();
    let expected = state.pods.len() * state.pods.len().saturating_sub(1);
    for (family, matrix) in &matrices {
        let bad: Vec<String> =
            matrix.iter().filter(|(_, r)| **r != Reach::Ok).map(|((a, b), _)| format!("{a} → {b}")).collect();
        if !bad.is_empty() || matrix.len() != expected {
            problems.push(format!(
                "{family}: {} of {} pod pairs unreachable ({} probed): {}\n{}",
                bad.len(),
                expected,
                matrix.len(),
                bad.join(", "),
                probe::render_families(state, &matrices)
            ));
        }
    }
    problems.extend(pod_addresses_on_nodes(state));
    problems.extend(tunnels_not_in_status(state));
    problems
}

/// `ip -br addr` of a node's namespace: device name → its addresses without prefix length.
pub fn node_addresses(netns: &str) -> Result<BTreeMap<String, Vec<String>>, CmdError> {
    let out = cmd::ip(Some(netns), &["-br", "addr"])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?.split('@').next()?.to_string();
            let addresses = fields.skip(1).filter_map(|a| a.split('/').next()).map(str::to_string).collect();
            Some((device, addresses))
        })
        .collect())
}

/// A pod's address held by a device of a node (the tunnel device took it: the pod is cut off).
fn pod_addresses_on_nodes(state: &LabState) -> Vec<String> {
    let pods: BTreeMap<&str, String> = state
        .pods
        .iter()
        .flat_map(|p| state.families().into_iter().filter_map(|family| Some((p.ip(family)?, p.key()))))
        .collect();
    let mut problems = Vec::new();
    for node in &state.nodes {
        match node_addresses(&node.netns) {
            Err(e) => problems.push(format!("{}: {e}", node.name)),
            Ok(devices) => {
                for (device, addresses) in devices {
                    for address in addresses.iter().filter_map(|a| pods.get_key_value(a.as_str())) {
                        problems.push(format!(
                            "{}: device {device} holds {}, the address of pod {}",
                            node.name, address.0, address.1
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The tunnel address of `family` on a node's tunnel device (VXLAN or IPIP for IPv4, `vxlan6.gingham`
/// for IPv6), if it has one in the lab's pool range of that family.
pub fn tunnel_address(netns: &str, family: IpFamily) -> Option<String> {
    let (range, devices): (&str, &[&str]) = match family {
        IpFamily::IPv4 => (crate::scenario::POOL_RANGE, &["vxlan.gingham", "tunl0"]),
        IpFamily::IPv6 => (crate::scenario::POOL_RANGE6, &["vxlan6.gingham"]),
    };
    let pools: IpNet = range.parse().ok()?;
    let held = node_addresses(netns).ok()?;
    devices.iter().filter_map(|d| held.get(*d)).flatten().find_map(|a| {
        let address: IpAddr = a.parse().ok()?;
        pools.contains(&address).then(|| a.clone())
    })
}

/// A node whose tunnel address (on its device) `gingham-lab status` does not show in the node's
/// section, on its `--- tunnel address ...: <address>` line (`--- IPv6 tunnel address` for IPv6).
fn tunnels_not_in_status(state: &LabState) -> Vec<String> {
    let text = report::status(state);
    let mut problems = Vec::new();
    for node in &state.nodes {
        for family in state.families() {
            let Some(tunnel) = tunnel_address(&node.netns, family) else { continue };
            let heading = if family == IpFamily::IPv4 { "--- tunnel address" } else { "--- IPv6 tunnel address" };
            let section = text.split("\n=== ").find(|s| s.starts_with(&format!("{} (", node.name))).unwrap_or("");
            let line = section.lines().find(|l| l.starts_with(heading));
            if line.and_then(|l| l.split_whitespace().last()) != Some(tunnel.as_str()) {
                problems.push(format!(
                    "{}: tunnel address {tunnel} not shown by `gingham-lab status`: {}",
                    node.name,
                    line.unwrap_or("(no tunnel address line)")
                ));
            }
        }
    }
    problems
}

/// Whether each node's pods hold the lowest addresses of the node's block, in each family (so
/// that an address the tunnel takes later can only be a pod's if IPAM lets it): a problem per node
/// and family where they do not.
pub fn pods_hold_low_addresses(state: &LabState) -> Vec<String> {
    let blocks = datastore::ipam_blocks(&state.datastore());
    let mut problems = Vec::new();
    for node in &state.nodes {
        for family in state.families() {
            let held: BTreeSet<IpAddr> =
                state.pods.iter().filter(|p| p.node == node.name).filter_map(|p| p.ip(family)?.parse().ok()).collect();
            let block = blocks.iter().filter(|(_, n)| *n == node.name).find_map(|(cidr, _)| {
                let net: IpNet = cidr.parse().ok()?;
                held.iter().any(|a| net.contains(a)).then_some(net)
            });
            let Some(block) = block else {
                problems
                    .push(format!("{} {family}: no block of the node holds its pods' addresses {held:?}", node.name));
                continue;
            };
            // The first addresses from the block's network address, or from the one after it.
            let first = match block.network() {
                IpAddr::V4(address) => u128::from(u32::from(address)),
                IpAddr::V6(address) => u128::from(address),
            };
            let at = |offset: u128| -> IpAddr {
                match family {
                    IpFamily::IPv4 => IpAddr::V4(u32::try_from(first + offset).unwrap_or(u32::MAX).into()),
                    IpFamily::IPv6 => IpAddr::V6((first + offset).into()),
                }
            };
            let count = held.len() as u128;
            let lowest_from_zero: BTreeSet<IpAddr> = (0..count).map(at).collect();
            let lowest: BTreeSet<IpAddr> = (1..=count).map(at).collect();
            if held != lowest && held != lowest_from_zero {
                problems.push(format!(
                    "{} {family}: pods hold {held:?}, not the lowest addresses of block {block}",
                    node.name
                ));
            }
        }
    }
    problems
}

/// Adds pod `default/<name>` on the `index`th node (round robin); returns its key.
pub fn add_pod(state: &mut LabState, name: &str, index: usize) -> Result<String, LiveError> {
    let node = state.nodes.get(index % state.nodes.len().max(1)).map(|n| n.name.clone()).unwrap_or_default();
    let spec = PodSpec {
        name: name.to_string(),
        namespace: "default".into(),
        node,
        labels: [("app".to_string(), "p".to_string())].into(),
        ports: Vec::new(),
        service_account: None,
    };
    Ok(pods::add(state, &spec)?.key())
}

/// What one switch did and every problem seen after it.
#[derive(Debug, Clone)]
pub struct Step {
    /// `VXLAN Always → VXLAN CrossSubnet`.
    pub label: String,
    /// From the write to every node having applied it.
    pub converged_in: Duration,
    /// Problems with the existing pods after the switch.
    pub after_switch: Vec<String>,
    /// The pod added after the switch.
    pub new_pod: String,
    /// Problems after that pod was added (the matrix includes it).
    pub after_new_pod: Vec<String>,
}

impl Step {
    /// Every problem of the step, each prefixed by its label.
    pub fn problems(&self) -> Vec<String> {
        let after = self.after_switch.iter().map(|p| format!("{}: after the switch: {p}", self.label));
        let new = self.after_new_pod.iter().map(|p| format!("{}: after adding {}: {p}", self.label, self.new_pod));
        after.chain(new).collect()
    }
}

/// Switches the IPPool `pool_name` through `switches`, starting from `from`; after each switch
/// checks the full matrix, adds a pod (on the next node each time), checks again with it and
/// removes it (so that every check probes the same number of pairs). Stops early only when the
/// lab cannot act.
pub fn run_switches(
    state: &mut LabState,
    pool_name: &str,
    from: Encap,
    switches: &[Encap],
    settle: Duration,
) -> Result<Vec<Step>, LiveError> {
    let mut steps = Vec::new();
    let mut previous = from;
    for (index, encap) in switches.iter().enumerate() {
        let label = format!("{} → {}", previous.label(), encap.label());
        let converged_in = switch(state, pool_name, *encap)?;
        let after_switch = check(state, settle);
        let name = format!("new-{index}");
        let new_pod = add_pod(state, &name, index)?;
        let after_new_pod = check(state, settle);
        pods::remove(state, "default", &name)?;
        let step = Step { label, converged_in, after_switch, new_pod, after_new_pod };
        eprintln!(
            "{}: applied in {:.1} s, {} problem(s)",
            step.label,
            step.converged_in.as_secs_f64(),
            step.problems().len()
        );
        steps.push(step);
        previous = *encap;
    }
    Ok(steps)
}

/// Every problem of a lab whose pool `pool_name` has no encapsulation yet, then of each of
/// `switches` ([`run_switches`]): pods not on the low addresses of their blocks, then what
/// [`check`] finds before any switch and after each one. Empty when all is well.
pub fn problems_through(
    state: &mut LabState,
    pool_name: &str,
    switches: &[Encap],
    settle: Duration,
) -> Result<Vec<String>, LiveError> {
    fabric_routes(state, true)?;
    let mut problems = pods_hold_low_addresses(state);
    problems.extend(check(state, settle).into_iter().map(|p| format!("before any switch: {p}")));
    let steps = run_switches(state, pool_name, Encap::NONE, switches, settle)?;
    problems.extend(steps.iter().flat_map(Step::problems));
    Ok(problems)
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
