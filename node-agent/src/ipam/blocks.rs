//! Which addresses the node may hand out: every address of its blocks except the tunnel address
//! (Calico's rule), skipping blocks that are being released.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use gingham_crds::api::NodeNetworkSpec;
use ipnet::Ipv4Net;

use super::IpamError;

/// The node's IPv4 blocks and the address reserved for its tunnel device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockSet {
    /// The blocks addresses come from, in the spec's order.
    pub blocks: Vec<Ipv4Net>,
    /// Blocks being released: their addresses count, but no new ones are handed out.
    pub releasing: BTreeSet<Ipv4Net>,
    /// The tunnel address (never handed to a pod).
    pub reserved: Option<Ipv4Addr>,
}

impl BlockSet {
    /// Reads the blocks and the tunnel address from a (validated) NodeNetwork spec; IPv6 blocks are
    /// skipped (pods get IPv4 only for now).
    pub fn from_spec(spec: &NodeNetworkSpec, releasing: &[String]) -> Result<Self, IpamError> {
        let parse = |text: &str| {
            text.parse::<ipnet::IpNet>()
                .map_err(|e| IpamError::BadBlock { cidr: text.to_string(), reason: e.to_string() })
        };
        let mut blocks = Vec::new();
        for text in &spec.blocks {
            if let ipnet::IpNet::V4(net) = parse(text)? {
                blocks.push(net.trunc());
            }
        }
        let mut gone = BTreeSet::new();
        for text in releasing {
            if let ipnet::IpNet::V4(net) = parse(text)? {
                gone.insert(net.trunc());
            }
        }
        let reserved = spec.tunnel.address.as_deref().and_then(|a| a.parse().ok());
        Ok(Self { blocks, releasing: gone, reserved })
    }

    /// How many addresses pods can get from all blocks.
    pub fn capacity(&self) -> u32 {
        self.blocks
            .iter()
            .map(|b| {
                let size = 1u32.checked_shl(32 - u32::from(b.prefix_len())).unwrap_or(u32::MAX);
                size - u32::from(self.reserved.is_some_and(|r| b.contains(&r)))
            })
            .fold(0u32, u32::saturating_add)
    }

    /// Whether `address` belongs to one of the blocks.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.blocks.iter().any(|b| b.contains(&address))
    }

    /// The first address that is free, not reserved and not in a releasing block.
    pub fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.blocks
            .iter()
            .filter(|b| !self.releasing.contains(*b))
            .flat_map(|b| {
                let first = u32::from(b.network());
                let last = u32::from(b.broadcast());
                (first..=last).map(Ipv4Addr::from)
            })
            .find(|a| Some(*a) != self.reserved && !used.contains(a))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(blocks: &[&str], reserved: Option<&str>) -> BlockSet {
        BlockSet {
            blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
            releasing: BTreeSet::new(),
            reserved: reserved.map(|r| r.parse().unwrap()),
        }
    }

    #[test]
    fn every_address_but_the_tunnel_address_is_usable() {
        let cases = [
            (set(&["10.0.0.0/30"], None), 4, Some("10.0.0.0")),
            (set(&["10.0.0.0/30"], Some("10.0.0.0")), 3, Some("10.0.0.1")),
            (set(&["10.0.0.0/26", "10.0.1.0/26"], Some("10.0.0.0")), 127, Some("10.0.0.1")),
            (set(&[], None), 0, None),
        ];
        for (blocks, capacity, first) in cases {
            assert_eq!(blocks.capacity(), capacity, "{blocks:?}");
            assert_eq!(blocks.first_free(&BTreeSet::new()), first.map(|f| f.parse().unwrap()), "{blocks:?}");
        }
    }

    #[test]
    fn releasing_blocks_hand_out_nothing() {
        let mut blocks = set(&["10.0.0.0/31", "10.0.1.0/31"], None);
        blocks.releasing.insert("10.0.0.0/31".parse().unwrap());
        assert_eq!(blocks.first_free(&BTreeSet::new()), Some("10.0.1.0".parse().unwrap()));
    }
}
