//! Which addresses the node may hand out: every address of its blocks of both families that no
//! allocation holds (pods' and the tunnels'), skipping blocks that are being released.

use std::collections::BTreeSet;
use std::net::IpAddr;

use gingham_crds::api::{Cidr, IpFamily, NodeNetworkSpec, Wire};
use ipnet::IpNet;

/// The node's blocks of both families, and which of them the tunnel addresses may come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockSet {
    /// The blocks addresses come from, in the spec's order (IPv6 blocks are /122 by default).
    pub blocks: Vec<IpNet>,
    /// Blocks being released: their addresses count, but no new ones are handed out.
    pub releasing: BTreeSet<IpNet>,
    /// The blocks the tunnel addresses may come from, in order: `spec.tunnel.blocks` (IPv4: the
    /// VTEP and `tunl0`) then `spec.tunnel.blocks6` (the IPv6 VTEP). A family without any: the
    /// node needs no tunnel address of that family.
    pub tunnel_blocks: Vec<IpNet>,
}

impl BlockSet {
    /// Reads the blocks and the tunnels' blocks from a NodeNetwork spec's decoded values, and the
    /// node's blocks being released. A block that did not decode is left out here and reported by
    /// the dataplane's plan.
    pub fn from_spec(spec: &NodeNetworkSpec, releasing: &[IpNet]) -> Self {
        let decoded = |blocks: &[Wire<Cidr>]| -> Vec<IpNet> {
            blocks.iter().filter_map(|block| block.value()).map(|cidr| cidr.0.trunc()).collect()
        };
        let mut tunnel_blocks = decoded(&spec.tunnel.blocks);
        tunnel_blocks.extend(decoded(&spec.tunnel.blocks6));
        Self { blocks: decoded(&spec.blocks), releasing: releasing.iter().map(IpNet::trunc).collect(), tunnel_blocks }
    }

    /// The families the node can hand out addresses of (it has a block of, not being released),
    /// IPv4 first.
    pub fn families(&self) -> Vec<IpFamily> {
        IpFamily::BOTH.into_iter().filter(|family| !self.usable(*family, &[]).is_empty()).collect()
    }

    /// How many addresses the blocks hold (pods' and the tunnels'), saturating.
    pub fn capacity(&self) -> u32 {
        self.blocks
            .iter()
            .map(|b| {
                let size = 1u128.checked_shl(u32::from(b.max_prefix_len() - b.prefix_len())).unwrap_or(u128::MAX);
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .fold(0u32, u32::saturating_add)
    }

    /// Whether `address` belongs to one of the blocks.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(&address))
    }

    /// The blocks of `family` addresses may be handed out from: not being released and, when
    /// `pools` is not empty, inside one of them.
    pub fn usable(&self, family: IpFamily, pools: &[IpNet]) -> Vec<IpNet> {
        self.blocks
            .iter()
            .filter(|b| IpFamily::of_net(b) == family && !self.releasing.contains(*b))
            .filter(|b| pools.is_empty() || pools.iter().any(|pool| pool.contains(*b)))
            .copied()
            .collect()
    }

    /// The first address of [`BlockSet::usable`] blocks that is not `used`.
    pub fn first_free(&self, family: IpFamily, pools: &[IpNet], used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        first_free_in(&self.usable(family, pools), used)
    }

    /// The tunnel blocks of `family`, being released or not.
    pub fn tunnel_blocks(&self, family: IpFamily) -> Vec<IpNet> {
        self.tunnel_blocks.iter().filter(|b| IpFamily::of_net(b) == family).copied().collect()
    }

    /// The first address of `family`'s tunnel blocks that is not `used` and not in a releasing
    /// block.
    pub fn first_free_for_tunnel(&self, family: IpFamily, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        let blocks: Vec<IpNet> =
            self.tunnel_blocks(family).into_iter().filter(|b| !self.releasing.contains(b)).collect();
        first_free_in(&blocks, used)
    }

    /// Whether `address` may be a tunnel address: in a tunnel block that is not being released.
    pub fn tunnel_may_hold(&self, address: IpAddr) -> bool {
        self.tunnel_blocks.iter().any(|b| b.contains(&address) && !self.releasing.contains(b))
    }
}

/// The first address of `blocks`, in order, not in `used` (every address of a block counts, as in
/// Calico: a /32 or /128 to each pod needs no network or broadcast address).
fn first_free_in(blocks: &[IpNet], used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    blocks.iter().flat_map(|b| addresses(*b)).find(|a| !used.contains(a))
}

/// Every address of `block`, lazily (an IPv6 block may be large).
fn addresses(block: IpNet) -> Box<dyn Iterator<Item = IpAddr>> {
    match block {
        IpNet::V4(net) => {
            Box::new((u32::from(net.network())..=u32::from(net.broadcast())).map(|a| IpAddr::from(a.to_be_bytes())))
        }
        IpNet::V6(net) => {
            Box::new((u128::from(net.network())..=u128::from(net.broadcast())).map(|a| IpAddr::from(a.to_be_bytes())))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use IpFamily::{IPv4, IPv6};

    fn set(blocks: &[&str], tunnel_blocks: &[&str]) -> BlockSet {
        BlockSet {
            blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
            releasing: BTreeSet::new(),
            tunnel_blocks: tunnel_blocks.iter().map(|b| b.parse().unwrap()).collect(),
        }
    }

    fn used(addresses: &[&str]) -> BTreeSet<IpAddr> {
        addresses.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn nets(nets: &[&str]) -> Vec<IpNet> {
        nets.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_first_address_of_the_family_no_allocation_holds_is_handed_out() {
        let dual = || set(&["10.0.0.0/30", "fd00:1::/126"], &[]);
        let cases = [
            (set(&["10.0.0.0/30"], &[]), IPv4, used(&[]), 4, Some("10.0.0.0")),
            (set(&["10.0.0.0/30"], &[]), IPv4, used(&["10.0.0.0", "10.0.0.1"]), 4, Some("10.0.0.2")),
            (set(&["10.0.0.0/26", "10.0.1.0/26"], &[]), IPv4, used(&["10.0.0.0"]), 128, Some("10.0.0.1")),
            (set(&["10.0.0.0/31"], &[]), IPv4, used(&["10.0.0.0", "10.0.0.1"]), 2, None),
            (set(&[], &[]), IPv4, used(&[]), 0, None),
            (dual(), IPv6, used(&["10.0.0.0", "fd00:1::"]), 8, Some("fd00:1::1")),
            (dual(), IPv4, used(&["fd00:1::"]), 8, Some("10.0.0.0")),
            (set(&["fd00:1::/122"], &[]), IPv6, used(&[]), 64, Some("fd00:1::")),
            (set(&["fd00:1::/122"], &[]), IPv4, used(&[]), 64, None),
            (set(&["fd00:1::/64"], &[]), IPv6, used(&["fd00:1::"]), u32::MAX, Some("fd00:1::1")),
        ];
        for (blocks, family, used, capacity, first) in cases {
            assert_eq!(blocks.capacity(), capacity, "{blocks:?}");
            let expected = first.map(|f| f.parse().unwrap());
            assert_eq!(blocks.first_free(family, &[], &used), expected, "{blocks:?} {family} {used:?}");
        }
    }

    #[test]
    fn pools_limit_the_blocks_and_families_are_those_with_usable_blocks() {
        let mut blocks = set(&["10.0.0.0/30", "10.1.0.0/30", "fd00:1::/126", "fd00:2::/126"], &[]);
        assert_eq!(blocks.families(), [IPv4, IPv6]);
        let pool = nets(&["10.1.0.0/16"]);
        assert_eq!(blocks.first_free(IPv4, &pool, &used(&[])), Some("10.1.0.0".parse().unwrap()));
        assert_eq!(blocks.usable(IPv6, &nets(&["fd00:2::/64"])), nets(&["fd00:2::/126"]));
        assert_eq!(blocks.usable(IPv6, &nets(&["fd00:3::/64"])), Vec::<IpNet>::new());
        blocks.releasing = nets(&["fd00:1::/126", "fd00:2::/126"]).into_iter().collect();
        assert_eq!(blocks.families(), [IPv4], "a family whose blocks are all being released hands out nothing");
    }

    #[test]
    fn the_tunnel_addresses_come_only_from_the_tunnel_blocks_of_their_family() {
        let blocks = set(&["10.0.0.0/30", "10.0.1.0/30", "fd00:1::/126"], &["10.0.1.0/30", "fd00:1::/126"]);
        assert_eq!(blocks.first_free_for_tunnel(IPv4, &used(&["10.0.1.0"])), Some("10.0.1.1".parse().unwrap()));
        assert_eq!(blocks.first_free_for_tunnel(IPv6, &used(&["fd00:1::"])), Some("fd00:1::1".parse().unwrap()));
        assert!(blocks.tunnel_may_hold("10.0.1.3".parse().unwrap()));
        assert!(blocks.tunnel_may_hold("fd00:1::3".parse().unwrap()));
        assert!(!blocks.tunnel_may_hold("10.0.0.1".parse().unwrap()));
        assert_eq!(set(&["10.0.0.0/30"], &[]).first_free_for_tunnel(IPv4, &used(&[])), None);
        assert_eq!(set(&["10.0.0.0/30"], &["10.0.0.0/30"]).first_free_for_tunnel(IPv6, &used(&[])), None);
    }

    #[test]
    fn releasing_blocks_hand_out_nothing() {
        let mut blocks = set(&["10.0.0.0/31", "10.0.1.0/31"], &["10.0.0.0/31"]);
        blocks.releasing.insert("10.0.0.0/31".parse().unwrap());
        assert_eq!(blocks.first_free(IPv4, &[], &BTreeSet::new()), Some("10.0.1.0".parse().unwrap()));
        assert_eq!(blocks.first_free_for_tunnel(IPv4, &BTreeSet::new()), None);
        assert!(!blocks.tunnel_may_hold("10.0.0.0".parse().unwrap()));
    }

    #[test]
    fn blocks_come_from_the_spec_of_both_families() {
        let spec: NodeNetworkSpec = serde_json::from_value(serde_json::json!({
            "address": "192.168.0.1/24",
            "blocks": ["10.0.0.0/26", "fd00:1::/122", "bad"],
            "tunnel": {"blocks": ["10.0.0.0/26"], "blocks6": ["fd00:1::/122"]},
        }))
        .unwrap();
        let blocks = BlockSet::from_spec(&spec, &nets(&["fd00:1::/122"]));
        assert_eq!(blocks.blocks, nets(&["10.0.0.0/26", "fd00:1::/122"]));
        assert_eq!(blocks.tunnel_blocks, nets(&["10.0.0.0/26", "fd00:1::/122"]));
        assert_eq!(blocks.releasing, nets(&["fd00:1::/122"]).into_iter().collect());
    }
}
