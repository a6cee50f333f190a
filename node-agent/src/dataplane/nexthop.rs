//! Remote blocks through kernel nexthop objects (pure): one [`NexthopSpec`] per remote node and
//! address family, which every route to that node's blocks names by id. Moving a node's tunnel
//! or path then changes one nexthop, not every route.
//!
//! Ids are derived from what the plan holds, so a restarted agent finds its nexthops where it
//! left them: a stable hash of the node's name and the family picks an id in [`ID_RANGE`];
//! an id another owner's nexthop holds, or another node got first (nodes in name order), is
//! skipped to the next free one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;

use gingham_crds::api::IpFamily;

use super::model::{NexthopSpec, RouteSpec, RouteTarget};
use super::nft::model::stable_hash;

/// The ids gingham gives its nexthops: clear of the small ids people and other daemons pick.
pub const ID_RANGE: Range<u32> = 0x1000_0000..0x8000_0000;

/// A route to a remote block, with the node that owns the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    /// The node's name.
    pub node: String,
    /// The route, as a plain route (`via`, with or without a device).
    pub route: RouteSpec,
}

/// The devices holding the node's underlay addresses, by family: where a deviceless route (the
/// direct path of CrossSubnet) leaves, and so its nexthop's device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Underlay<'a> {
    /// The device holding the node's IPv4 address.
    pub v4: Option<&'a str>,
    /// The device holding the node's IPv6 address.
    pub v6: Option<&'a str>,
}

impl<'a> Underlay<'a> {
    /// The underlay device of a family.
    pub fn of(&self, family: IpFamily) -> Option<&'a str> {
        match family {
            IpFamily::IPv4 => self.v4,
            IpFamily::IPv6 => self.v6,
        }
    }
}

/// The id a node's nexthop of this family is given when nothing else holds it.
pub fn preferred_id(node: &str, family: IpFamily) -> u32 {
    let suffix = match family {
        IpFamily::IPv4 => "4",
        IpFamily::IPv6 => "6",
    };
    let span = u64::from(ID_RANGE.end - ID_RANGE.start);
    let offset = stable_hash(&format!("{node}/{suffix}")) % span;
    ID_RANGE.start + u32::try_from(offset).unwrap_or(0)
}

/// The id after `id`, wrapping in [`ID_RANGE`].
pub fn next_id(id: u32) -> u32 {
    if id + 1 >= ID_RANGE.end { ID_RANGE.start } else { id + 1 }
}

/// An id for every key, in key order: the preferred one, else the next free one (wrapping in
/// [`ID_RANGE`]). `taken` are the ids of nexthops gingham does not own.
pub fn assign_ids<'a>(
    keys: impl IntoIterator<Item = (&'a str, IpFamily)>,
    taken: &BTreeSet<u32>,
) -> BTreeMap<(&'a str, IpFamily), u32> {
    let mut used = taken.clone();
    let mut ids = BTreeMap::new();
    for key in keys {
        let mut id = preferred_id(key.0, key.1);
        while used.contains(&id) {
            id = next_id(id);
        }
        used.insert(id);
        ids.insert(key, id);
    }
    ids
}

/// Where a plain remote route sends packets, as a nexthop would: the gateway and the device. A
/// deviceless route (the direct path of CrossSubnet) goes out of its family's underlay device.
fn hop<'a>(route: &'a RouteSpec, underlay: Underlay<'a>) -> Option<(IpAddr, &'a str)> {
    match &route.target {
        RouteTarget::Via { gateway, device } => {
            Some((*gateway, device.as_deref().or_else(|| underlay.of(IpFamily::of(*gateway)))?))
        }
        RouteTarget::Device(_) | RouteTarget::Blackhole | RouteTarget::Nexthop(_) => None,
    }
}

/// The remote routes through nexthops, and those nexthops. Each node and family (the family of
/// the block, and so of its gateway) gets one nexthop, the hop of its first block's route; a
/// block of the same node that goes elsewhere (a pool with another encapsulation) keeps a plain
/// route, as does a deviceless route while its family's underlay device is not known.
pub fn through_nexthops(
    remote: &[RemoteRoute],
    underlay: Underlay<'_>,
    taken: &BTreeSet<u32>,
) -> (BTreeSet<RouteSpec>, BTreeSet<NexthopSpec>) {
    let mut by_node: BTreeMap<(&str, IpFamily), Vec<&RouteSpec>> = BTreeMap::new();
    for r in remote {
        let family = IpFamily::of_net(&r.route.destination);
        by_node.entry((r.node.as_str(), family)).or_default().push(&r.route);
    }
    for routes in by_node.values_mut() {
        routes.sort();
    }
    let keyed: Vec<_> =
        by_node.iter().filter_map(|(key, routes)| Some((*key, hop(routes.first()?, underlay)?))).collect();
    let ids = assign_ids(keyed.iter().map(|(key, _)| *key), taken);
    let mut nexthops = BTreeSet::new();
    let mut chosen = BTreeMap::new();
    for (key, (gateway, device)) in keyed {
        let Some(id) = ids.get(&key).copied() else { continue };
        nexthops.insert(NexthopSpec { id, gateway, device: device.to_string() });
        chosen.insert(key, (id, gateway, device));
    }
    let mut routes = BTreeSet::new();
    for (key, node_routes) in by_node {
        for route in node_routes {
            let through =
                chosen.get(&key).filter(|(_, gateway, device)| hop(route, underlay) == Some((*gateway, device)));
            let target = through.map_or_else(|| route.target.clone(), |(id, _, _)| RouteTarget::Nexthop(*id));
            routes.insert(RouteSpec { destination: route.destination, target });
        }
    }
    (routes, nexthops)
}

#[cfg(test)]
#[path = "nexthop_tests.rs"]
mod tests;
