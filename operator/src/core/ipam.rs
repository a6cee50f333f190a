//! Block assignment, the cluster half of IPAM: which node owns which block of which pool, and the
//! routing facts (underlay address, tunnel address, VTEP MAC) each IPAMBlock carries.
//!
//! The tunnel address itself is allocated by the node's agent, through its IPAM, from the blocks
//! named here (`NodeTunnel::blocks`), so it can never be a pod's address; the agent reports it in
//! its NodeNetwork status, and this module only publishes it in the node's IPAMBlocks.
//!
//! Rules:
//! - An existing block stays with its node while the node exists, whatever happened to its pool
//!   (a deleted, disabled or invalid pool's blocks are marked `releasing`: no new addresses).
//! - A deleted node's blocks are released (they are not in the result).
//! - Each node gets one block from every pool that hands out blocks and selects the node, when it
//!   has none from that pool yet; the lowest free block, so the result is deterministic. Pools of
//!   both families are alike (IPv6 blocks are /122 by default), except that a node without an
//!   underlay address of the pool's family gets no block from it (no other node could route to
//!   it), and that is reported on the Node (`NoAddressForPool`).
//! - Every IPAMBlock carries its owner's facts of the block's family: an IPv6 block its IPv6
//!   underlay address, IPv6 VTEP address and IPv6 VTEP MAC.
//! - A node whose agent reports `ipam.pressure` gets one more block, but only when its reported
//!   `capacity` already covers every block it owns: a report older than the last assignment does
//!   not trigger yet another block.
//! - At most `max_blocks_per_node` blocks per node; no block is ever assigned twice.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gingham_crds::api::ippool::AllowedUse;
use gingham_crds::api::{Cidr, IPAMBlock, IPAMBlockSpec, IpFamily, Mac, Net, NodeNetworkStatus, Wire};
use gingham_crds::naming::{block_object_name, vtep_mac, vtep_mac_v6};
use gingham_crds::selector::Selector;
use ipnet::IpNet;

use super::ObjectProblem;
use super::facts::{ADDRESS_ANNOTATION, ADDRESS6_ANNOTATION, NodeFacts};
use super::pools::CheckedPool;

/// The result of block assignment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assignment {
    /// Every block, by object name.
    pub blocks: BTreeMap<String, IPAMBlockSpec>,
    /// Each node's block CIDRs, sorted.
    pub node_blocks: BTreeMap<String, Vec<Wire<Cidr>>>,
    /// Each node's tunnel facts.
    pub tunnels: BTreeMap<String, NodeTunnel>,
    /// Nodes a pool selects that get no block from it, and why.
    pub problems: Vec<ObjectProblem>,
}

/// A node's tunnel endpoints, when its pools encapsulate: one per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeTunnel {
    /// The IPv4 endpoint (VTEP or tunl0).
    pub v4: FamilyTunnel,
    /// The IPv6 VTEP.
    pub v6: FamilyTunnel,
}

impl NodeTunnel {
    /// The endpoint of a family.
    pub fn of(&self, family: IpFamily) -> &FamilyTunnel {
        match family {
            IpFamily::IPv4 => &self.v4,
            IpFamily::IPv6 => &self.v6,
        }
    }
}

/// A node's tunnel endpoint of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyTunnel {
    /// The node's blocks of the family its agent may take the tunnel address from: blocks of valid
    /// encapsulating pools that allow the `Tunnel` use (for IPv6: VXLAN pools, IPIP being IPv4
    /// only), in address order. Empty: no tunnel address.
    pub blocks: Vec<Wire<Cidr>>,
    /// The tunnel address the node's agent reported, while it lies in one of [`Self::blocks`].
    pub address: Option<Wire<IpAddr>>,
    /// The VTEP MAC, when the node has a block of a VXLAN pool of the family.
    pub vtep_mac: Option<Wire<Mac>>,
}

/// Block ranges already taken, as `(start, end)` integer ranges per address family.
#[derive(Default)]
struct Taken(BTreeMap<(bool, u128), u128>);

impl Taken {
    fn range(net: &IpNet) -> (bool, u128, u128) {
        match net {
            IpNet::V4(n) => (false, u128::from(u32::from(n.network())), u128::from(u32::from(n.broadcast()))),
            IpNet::V6(n) => (true, u128::from(n.network()), u128::from(n.broadcast())),
        }
    }

    fn overlaps(&self, net: &IpNet) -> bool {
        let (v6, start, end) = Self::range(net);
        self.0.range((v6, 0)..=(v6, end)).next_back().is_some_and(|(_, taken_end)| *taken_end >= start)
    }

    fn insert(&mut self, net: &IpNet) {
        let (v6, start, end) = Self::range(net);
        self.0.insert((v6, start), end);
    }
}

/// Everything block assignment reads.
pub struct IpamInput<'a> {
    /// Validated pools by name.
    pub pools: &'a BTreeMap<String, CheckedPool>,
    /// Nodes by name.
    pub nodes: &'a BTreeMap<String, NodeFacts>,
    /// The blocks assigned so far.
    pub existing: &'a [IPAMBlock],
    /// The agents' reports by node name.
    pub statuses: &'a BTreeMap<String, NodeNetworkStatus>,
    /// The per-node cap.
    pub max_blocks_per_node: usize,
}

/// One block while assigning: its network and pool.
struct Owned {
    net: IpNet,
    pool: String,
}

/// Assigns blocks. Pure and deterministic.
pub fn assign(input: &IpamInput<'_>) -> Assignment {
    let mut taken = Taken::default();
    let mut owned: BTreeMap<&str, Vec<Owned>> = BTreeMap::new();
    let mut existing: Vec<&IPAMBlock> = input.existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for block in existing {
        let Some((name, _)) = input.nodes.get_key_value(block.spec.node.as_str()) else { continue };
        let Some(Cidr(net)) = block.spec.cidr.value().copied() else { continue };
        if taken.overlaps(&net) {
            continue;
        }
        taken.insert(&net);
        owned.entry(name.as_str()).or_default().push(Owned { net, pool: block.spec.pool.clone() });
    }
    let handing_out: Vec<(&CheckedPool, Selector)> = input
        .pools
        .values()
        .filter(|p| p.hands_out_blocks())
        .filter_map(|p| Selector::parse(&p.spec.node_selector).ok().map(|s| (p, s)))
        .collect();
    let mut cursors: BTreeMap<&str, u128> = BTreeMap::new();
    let mut assignment = Assignment::default();
    for (name, node) in input.nodes {
        let blocks = owned.entry(name.as_str()).or_default();
        let selecting = handing_out.iter().filter(|(_, selector)| selector.matches(&node.labels)).map(|(p, _)| *p);
        let (matching, unaddressed): (Vec<&CheckedPool>, Vec<&CheckedPool>) = selecting
            .partition(|pool| pool.network.is_some_and(|net| node.address_of(IpFamily::of_net(&net)).is_some()));
        for pool in unaddressed.iter().filter(|pool| !blocks.iter().any(|b| b.pool == pool.name)) {
            assignment.problems.push(no_address(name, pool));
        }
        for pool in &matching {
            if blocks.len() < input.max_blocks_per_node
                && !blocks.iter().any(|b| b.pool == pool.name)
                && let Some(net) = next_free(pool, &mut taken, &mut cursors)
            {
                blocks.push(Owned { net, pool: pool.name.clone() });
            }
        }
        if wants_another(input.statuses.get(name), blocks) && blocks.len() < input.max_blocks_per_node {
            for pool in &matching {
                if let Some(net) = next_free(pool, &mut taken, &mut cursors) {
                    blocks.push(Owned { net, pool: pool.name.clone() });
                    break;
                }
            }
        }
    }
    for (name, mut blocks) in owned {
        let Some(node) = input.nodes.get(name) else { continue };
        blocks.sort_by_key(|b| b.net);
        let status = input.statuses.get(name);
        let reported = |address: Option<&Wire<IpAddr>>| address.and_then(|a| a.value().copied());
        let tunnel = NodeTunnel {
            v4: tunnel_for(
                input.pools,
                &blocks,
                reported(status.and_then(|s| s.tunnel_address.as_ref())),
                IpFamily::IPv4,
                || vtep_mac(name),
            ),
            v6: tunnel_for(
                input.pools,
                &blocks,
                reported(status.and_then(|s| s.tunnel_address6.as_ref())),
                IpFamily::IPv6,
                || vtep_mac_v6(name),
            ),
        };
        for block in &blocks {
            let usable = input.pools.get(&block.pool).is_some_and(|p| p.is_valid() && !p.spec.disabled);
            let family = IpFamily::of_net(&block.net);
            let facts = tunnel.of(family);
            let spec = IPAMBlockSpec {
                cidr: Cidr(block.net).into(),
                node: name.to_string(),
                pool: block.pool.clone(),
                node_address: node.address_of(family).map(|a| Wire::from(Net(a))).unwrap_or_default(),
                tunnel_address: facts.address.clone(),
                vtep_mac: facts.vtep_mac.clone(),
                releasing: !usable,
            };
            assignment.blocks.insert(block_object_name(spec.cidr.as_str()), spec);
        }
        assignment.node_blocks.insert(name.to_string(), blocks.iter().map(|b| Cidr(b.net).into()).collect());
        assignment.tunnels.insert(name.to_string(), tunnel);
    }
    assignment
}

fn block_size(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

fn wants_another(status: Option<&NodeNetworkStatus>, blocks: &[Owned]) -> bool {
    let Some(status) = status.filter(|s| s.ipam.pressure) else { return false };
    let owned: u128 = blocks.iter().map(|b| block_size(&b.net)).sum();
    !blocks.is_empty() && u128::from(status.ipam.capacity) >= owned
}

/// The lowest block of the pool that overlaps no taken block, advancing the pool's cursor.
fn next_free<'a>(pool: &'a CheckedPool, taken: &mut Taken, cursors: &mut BTreeMap<&'a str, u128>) -> Option<IpNet> {
    let network = pool.network?;
    let size = pool.spec.effective_block_size();
    let count = 1u128.checked_shl(u32::from(size.checked_sub(network.prefix_len())?)).unwrap_or(u128::MAX);
    let cursor = cursors.entry(pool.name.as_str()).or_insert(0);
    while *cursor < count {
        let index = *cursor;
        *cursor += 1;
        let candidate = nth_block(&network, size, index)?;
        if !taken.overlaps(&candidate) {
            taken.insert(&candidate);
            return Some(candidate);
        }
    }
    None
}

fn nth_block(network: &IpNet, size: u8, index: u128) -> Option<IpNet> {
    match network {
        IpNet::V4(n) => {
            let step = 1u32.checked_shl(u32::from(32 - size)).unwrap_or(0);
            let offset = u32::try_from(index).ok()?.checked_mul(step)?;
            let start = u32::from(n.network()).checked_add(offset)?;
            IpNet::new(IpAddr::V4(start.into()), size).ok()
        }
        IpNet::V6(n) => {
            let step = 1u128.checked_shl(u32::from(128 - size)).unwrap_or(0);
            let start = u128::from(n.network()).checked_add(index.checked_mul(step)?)?;
            IpNet::new(IpAddr::V6(start.into()), size).ok()
        }
    }
}

/// The problem of a node a pool selects that has no underlay address of the pool's family.
fn no_address(node: &str, pool: &CheckedPool) -> ObjectProblem {
    let family = pool.network.map_or(IpFamily::IPv4, |net| IpFamily::of_net(&net));
    let annotation = match family {
        IpFamily::IPv4 => ADDRESS_ANNOTATION,
        IpFamily::IPv6 => ADDRESS6_ANNOTATION,
    };
    ObjectProblem {
        kind: "Node".into(),
        namespace: None,
        name: node.to_string(),
        reason: "NoAddressForPool".into(),
        message: format!(
            "pool {:?} ({}) selects the node, but the node has no {family} address, so it gets no block from it: set annotation {annotation} or an {family} InternalIP",
            pool.name, pool.spec.cidr
        ),
    }
}

/// The node's tunnel blocks of `family` (for IPv4, blocks of IPIP and VXLAN pools; for IPv6, of
/// VXLAN pools, as IPIP is IPv4 only) and the address its agent reported for the family, while
/// that address lies in one of them. `mac` gives the family's VTEP MAC.
fn tunnel_for(
    pools: &BTreeMap<String, CheckedPool>,
    blocks: &[Owned],
    reported: Option<IpAddr>,
    family: IpFamily,
    mac: impl FnOnce() -> Mac,
) -> FamilyTunnel {
    let of_family: Vec<&Owned> = blocks.iter().filter(|b| IpFamily::of_net(&b.net) == family).collect();
    let pool_of = |block: &Owned| pools.get(&block.pool).filter(|p| p.is_valid());
    let encapsulating: Vec<&&Owned> = of_family
        .iter()
        .filter(|b| {
            pool_of(b).is_some_and(|p| {
                let encapsulates = match family {
                    IpFamily::IPv4 => p.encapsulates(),
                    IpFamily::IPv6 => p.spec.vxlan_mode.is_enabled(),
                };
                encapsulates && p.spec.allowed_uses.contains(&AllowedUse::Tunnel)
            })
        })
        .collect();
    let address = reported.filter(|addr| encapsulating.iter().any(|b| b.net.contains(addr))).map(Wire::from);
    let blocks_for_tunnel = encapsulating.iter().map(|b| Cidr(b.net).into()).collect();
    let vxlan = of_family.iter().any(|b| pool_of(b).is_some_and(|p| p.spec.vxlan_mode.is_enabled()));
    FamilyTunnel { blocks: blocks_for_tunnel, address, vtep_mac: vxlan.then(|| mac().into()) }
}

/// Blocks per pool, for pool status.
pub fn blocks_per_pool(blocks: &BTreeMap<String, IPAMBlockSpec>) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for block in blocks.values() {
        *counts.entry(block.pool.clone()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
#[path = "ipam_tests.rs"]
mod tests;
