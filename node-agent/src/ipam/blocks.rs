//! Which addresses the node may hand out: every address of its blocks that no allocation holds
//! (pods' and the tunnel's), skipping blocks that are being released.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use gingham_crds::api::{Cidr, NodeNetworkSpec, Wire};
use ipnet::Ipv4Net;

/// The node's IPv4 blocks, and which of them the tunnel address may come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockSet {
    /// The blocks addresses come from, in the spec's order.
    pub blocks: Vec<Ipv4Net>,
    /// Blocks being released: their addresses count, but no new ones are handed out.
    pub releasing: BTreeSet<Ipv4Net>,
    /// The blocks the tunnel address may come from, in order (`spec.tunnel.blocks`); empty: the
    /// node needs no tunnel address.
    pub tunnel_blocks: Vec<Ipv4Net>,
}

impl BlockSet {
    /// Reads the blocks and the tunnel's blocks from a NodeNetwork spec's decoded values, and
    /// the node's blocks being released. A block that did not decode is left out here and
    /// reported by the dataplane's plan; IPv6 blocks are skipped (pods get IPv4 only for now).
    pub fn from_spec(spec: &NodeNetworkSpec, releasing: &[Ipv4Net]) -> Self {
        let ipv4 = |blocks: &[Wire<Cidr>]| -> Vec<Ipv4Net> {
            blocks.iter().filter_map(|block| block.value()?.v4()).map(|net| net.trunc()).collect()
        };
        Self {
            blocks: ipv4(&spec.blocks),
            releasing: releasing.iter().map(Ipv4Net::trunc).collect(),
            tunnel_blocks: ipv4(&spec.tunnel.blocks),
        }
    }

    /// How many addresses the blocks hold (pods' and the tunnel's).
    pub fn capacity(&self) -> u32 {
        self.blocks
            .iter()
            .map(|b| 1u32.checked_shl(32 - u32::from(b.prefix_len())).unwrap_or(u32::MAX))
            .fold(0u32, u32::saturating_add)
    }

    /// Whether `address` belongs to one of the blocks.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.blocks.iter().any(|b| b.contains(&address))
    }

    /// The first address of the blocks that is not `used` and not in a releasing block.
    pub fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.first_free_in(&self.blocks, used)
    }

    /// The first address of the tunnel's blocks that is not `used` and not in a releasing block.
    pub fn first_free_for_tunnel(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.first_free_in(&self.tunnel_blocks, used)
    }

    /// Whether `address` may be the tunnel address: in a tunnel block that is not being released.
    pub fn tunnel_may_hold(&self, address: Ipv4Addr) -> bool {
        self.tunnel_blocks.iter().any(|b| b.contains(&address) && !self.releasing.contains(b))
    }

    fn first_free_in(&self, blocks: &[Ipv4Net], used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        blocks
            .iter()
            .filter(|b| !self.releasing.contains(*b))
            .flat_map(|b| {
                let first = u32::from(b.network());
                let last = u32::from(b.broadcast());
                (first..=last).map(Ipv4Addr::from)
            })
            .find(|a| !used.contains(a))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(blocks: &[&str], tunnel_blocks: &[&str]) -> BlockSet {
        BlockSet {
            blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
            releasing: BTreeSet::new(),
            tunnel_blocks: tunnel_blocks.iter().map(|b| b.parse().unwrap()).collect(),
        }
    }

    fn used(addresses: &[&str]) -> BTreeSet<Ipv4Addr> {
        addresses.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn the_first_address_no_allocation_holds_is_handed_out() {
        let cases = [
            (set(&["10.0.0.0/30"], &[]), used(&[]), 4, Some("10.0.0.0")),
            (set(&["10.0.0.0/30"], &[]), used(&["10.0.0.0", "10.0.0.1"]), 4, Some("10.0.0.2")),
            (set(&["10.0.0.0/26", "10.0.1.0/26"], &[]), used(&["10.0.0.0"]), 128, Some("10.0.0.1")),
            (set(&["10.0.0.0/31"], &[]), used(&["10.0.0.0", "10.0.0.1"]), 2, None),
            (set(&[], &[]), used(&[]), 0, None),
        ];
        for (blocks, used, capacity, first) in cases {
            assert_eq!(blocks.capacity(), capacity, "{blocks:?}");
            assert_eq!(blocks.first_free(&used), first.map(|f| f.parse().unwrap()), "{blocks:?} {used:?}");
        }
    }

    #[test]
    fn the_tunnel_address_comes_only_from_the_tunnel_blocks() {
        let blocks = set(&["10.0.0.0/30", "10.0.1.0/30"], &["10.0.1.0/30"]);
        assert_eq!(blocks.first_free_for_tunnel(&used(&["10.0.1.0"])), Some("10.0.1.1".parse().unwrap()));
        assert!(blocks.tunnel_may_hold("10.0.1.3".parse().unwrap()));
        assert!(!blocks.tunnel_may_hold("10.0.0.1".parse().unwrap()));
        assert_eq!(set(&["10.0.0.0/30"], &[]).first_free_for_tunnel(&used(&[])), None);
    }

    #[test]
    fn releasing_blocks_hand_out_nothing() {
        let mut blocks = set(&["10.0.0.0/31", "10.0.1.0/31"], &["10.0.0.0/31"]);
        blocks.releasing.insert("10.0.0.0/31".parse().unwrap());
        assert_eq!(blocks.first_free(&BTreeSet::new()), Some("10.0.1.0".parse().unwrap()));
        assert_eq!(blocks.first_free_for_tunnel(&BTreeSet::new()), None);
        assert!(!blocks.tunnel_may_hold("10.0.0.0".parse().unwrap()));
    }
}
