//! An in-memory [`Netlink`]: the kernel as sets, changed by [`Op`]s, recording every change and
//! announcing it as the kernel would ([`Notice`]s), and counting dumps.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::nodenetwork::NodeCapabilities;

use super::diff::Op;
use super::model::{AddressSpec, FdbSpec, LinkState, NeighbourSpec, NexthopSpec, RouteSpec, RouteTarget, TunnelSpec};
use super::netlink::{Netlink, NetlinkError, Nexthops, describe};
use super::observed::Notice;

/// A fake kernel for unit tests.
#[derive(Clone, Debug, Default)]
pub struct FakeNetlink {
    /// Links.
    pub links: Vec<LinkState>,
    /// Addresses.
    pub addresses: BTreeSet<AddressSpec>,
    /// Routes carrying our protocol.
    pub routes: BTreeSet<RouteSpec>,
    /// Permanent neighbours.
    pub neighbours: BTreeSet<NeighbourSpec>,
    /// Permanent FDB entries.
    pub fdb: BTreeSet<FdbSpec>,
    /// Nexthop objects carrying our protocol.
    pub nexthops: BTreeSet<NexthopSpec>,
    /// The ids of other owners' nexthop objects.
    pub foreign_nexthops: BTreeSet<u32>,
    /// Notifications not yet taken by [`Netlink::notices`].
    pub pending: Vec<Notice>,
    /// Dumps of each kind so far (links, addresses, routes, ...).
    pub dumps: usize,
    /// Sysctl values by path.
    pub sysctls: BTreeMap<String, String>,
    /// What the fake kernel supports.
    pub capabilities: NodeCapabilities,
    /// Every change applied, in order.
    pub applied: Vec<Op>,
    /// Operations whose description contains this text fail.
    pub fail_matching: Option<String>,
}

impl FakeNetlink {
    /// A fake host with `eth0` (MTU 1500, up) and nexthop objects.
    pub fn host() -> Self {
        let eth0 = LinkState { index: 2, name: "eth0".into(), tunnel: None, mtu: 1500, mac: None, up: true };
        let capabilities = NodeCapabilities { nexthops: true, ..NodeCapabilities::default() };
        Self { links: vec![eth0], capabilities, ..Self::default() }
    }

    /// Deletes a route behind the agent's back, as `ip route del` would (announced).
    pub fn delete_route_by_hand(&mut self, route: &RouteSpec) {
        self.routes.remove(route);
        self.pending.push(Notice::RouteGone(route.clone()));
    }

    /// Adds a link (an endpoint veth the CNI plugin would create).
    pub fn add_link(&mut self, name: &str, up: bool) {
        let index = self.links.iter().map(|l| l.index).max().unwrap_or(1) + 1;
        self.links.push(LinkState { index, name: name.into(), tunnel: None, mtu: 1500, mac: None, up });
    }

    /// The link with this name.
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }

    fn has_link(&self, name: &str) -> bool {
        self.link(name).is_some()
    }

    fn change(&mut self, op: &Op) -> Result<(), NetlinkError> {
        let missing = |link: &str| NetlinkError::MissingLink { op: describe(op), link: link.into() };
        match op {
            Op::CreateTunnel(tunnel) => {
                let index = self.links.iter().map(|l| l.index).max().unwrap_or(1) + 1;
                let link = LinkState {
                    index,
                    name: tunnel.name.clone(),
                    tunnel: Some(tunnel.kind.clone()),
                    mtu: tunnel.mtu,
                    mac: tunnel.mac,
                    up: true,
                };
                self.links.push(link);
            }
            Op::SetLink { name, mtu, mac } => {
                let link = self.links.iter_mut().find(|l| &l.name == name).ok_or_else(|| missing(name))?;
                link.up = true;
                link.mtu = mtu.unwrap_or(link.mtu);
                link.mac = mac.or(link.mac);
            }
            Op::DeleteLink(name) => {
                let gone: BTreeSet<u32> = self.nexthops.iter().filter(|n| &n.device == name).map(|n| n.id).collect();
                self.nexthops.retain(|n| !gone.contains(&n.id));
                self.routes.retain(|r| !matches!(r.target, RouteTarget::Nexthop(id) if gone.contains(&id)));
                self.links.retain(|l| &l.name != name);
                self.addresses.retain(|a| &a.device != name);
                self.neighbours.retain(|n| &n.device != name);
                self.fdb.retain(|f| &f.device != name);
                self.routes.retain(|r| r.device() != Some(name));
            }
            Op::AddAddress(address) => {
                if !self.has_link(&address.device) {
                    return Err(missing(&address.device));
                }
                self.addresses.insert(address.clone());
            }
            Op::DeleteAddress(address) => {
                self.addresses.remove(address);
            }
            Op::ReplaceNeighbour(n) => {
                self.neighbours.retain(|seen| (&seen.device, seen.address) != (&n.device, n.address));
                self.neighbours.insert(n.clone());
            }
            Op::DeleteNeighbour(n) => {
                self.neighbours.remove(n);
            }
            Op::ReplaceFdb(f) => {
                self.fdb.retain(|seen| (&seen.device, seen.mac) != (&f.device, f.mac));
                self.fdb.insert(f.clone());
            }
            Op::DeleteFdb(f) => {
                self.fdb.remove(f);
            }
            Op::ReplaceNexthop(nexthop) => {
                if !self.capabilities.nexthops || self.foreign_nexthops.contains(&nexthop.id) {
                    return Err(NetlinkError::Injected(format!("{}: refused", describe(op))));
                }
                if !self.has_link(&nexthop.device) {
                    return Err(missing(&nexthop.device));
                }
                self.nexthops.retain(|n| n.id != nexthop.id);
                self.nexthops.insert(nexthop.clone());
            }
            Op::DeleteNexthop(nexthop) => {
                self.nexthops.remove(nexthop);
                self.routes.retain(|r| r.target != RouteTarget::Nexthop(nexthop.id));
            }
            Op::ReplaceRoute(route) => {
                if let Some(link) = route.device().filter(|l| !self.has_link(l)) {
                    return Err(missing(link));
                }
                if let RouteTarget::Nexthop(id) = route.target
                    && !self.nexthops.iter().any(|n| n.id == id)
                {
                    return Err(NetlinkError::Injected(format!("{}: nexthop id does not exist", describe(op))));
                }
                self.routes.retain(|r| r.destination != route.destination);
                let mut route = route.clone();
                if let RouteTarget::Via { device: device @ None, .. } = &mut route.target {
                    *device = Some("eth0".into());
                }
                self.routes.insert(route);
            }
            Op::DeleteRoute(route) => {
                self.routes.remove(route);
            }
            Op::WriteSysctl(sysctl) => {
                self.sysctls.insert(sysctl.path.clone(), sysctl.value.clone());
            }
        }
        Ok(())
    }
}

/// What the kernel announces after a change succeeded.
fn announced(op: &Op, kernel: &FakeNetlink) -> Option<Notice> {
    Some(match op {
        Op::CreateTunnel(TunnelSpec { name, .. }) | Op::SetLink { name, .. } => {
            Notice::Link(kernel.link(name)?.clone())
        }
        Op::DeleteLink(_) => Notice::LinkGone(0),
        Op::AddAddress(a) => Notice::Address(a.clone()),
        Op::DeleteAddress(a) => Notice::AddressGone(a.clone()),
        Op::ReplaceNeighbour(n) => Notice::Neighbour(n.clone()),
        Op::DeleteNeighbour(n) => Notice::NeighbourGone { device: n.device.clone(), address: n.address },
        Op::ReplaceFdb(f) => Notice::Fdb(f.clone()),
        Op::DeleteFdb(f) => Notice::FdbGone { device: f.device.clone(), mac: f.mac },
        Op::ReplaceNexthop(n) => Notice::Nexthop(n.clone()),
        Op::DeleteNexthop(n) => Notice::NexthopGone(n.id),
        Op::ReplaceRoute(r) => {
            let stored = kernel.routes.iter().find(|seen| seen.destination == r.destination);
            Notice::Route(stored.cloned().unwrap_or_else(|| r.clone()))
        }
        Op::DeleteRoute(r) => Notice::RouteGone(r.clone()),
        // Sysctls are read every sync, not announced.
        Op::WriteSysctl(_) => return None,
    })
}

impl Netlink for FakeNetlink {
    async fn links(&mut self) -> Result<Vec<LinkState>, NetlinkError> {
        self.dumps += 1;
        Ok(self.links.clone())
    }

    async fn addresses(&mut self) -> Result<BTreeSet<AddressSpec>, NetlinkError> {
        self.dumps += 1;
        Ok(self.addresses.clone())
    }

    async fn routes(&mut self) -> Result<BTreeSet<RouteSpec>, NetlinkError> {
        self.dumps += 1;
        Ok(self.routes.clone())
    }

    async fn neighbours(&mut self) -> Result<BTreeSet<NeighbourSpec>, NetlinkError> {
        self.dumps += 1;
        Ok(self.neighbours.clone())
    }

    async fn fdb(&mut self) -> Result<BTreeSet<FdbSpec>, NetlinkError> {
        self.dumps += 1;
        Ok(self.fdb.clone())
    }

    async fn nexthops(&mut self) -> Result<Nexthops, NetlinkError> {
        self.dumps += 1;
        if !self.capabilities.nexthops {
            return Err(NetlinkError::Injected("list nexthops: not supported".into()));
        }
        Ok(Nexthops { ours: self.nexthops.clone(), foreign: self.foreign_nexthops.clone() })
    }

    async fn notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.pending)
    }

    fn sysctl(&mut self, path: &str) -> Option<String> {
        self.sysctls.get(path).cloned()
    }

    async fn capabilities(&mut self) -> NodeCapabilities {
        self.capabilities.clone()
    }

    async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), NetlinkError>> {
        ops.iter()
            .map(|op| {
                let text = describe(op);
                if self.fail_matching.as_deref().is_some_and(|needle| text.contains(needle)) {
                    return Err(NetlinkError::Injected(text));
                }
                self.change(op)?;
                if let Some(notice) = announced(op, self) {
                    self.pending.push(notice);
                }
                self.applied.push(op.clone());
                Ok(())
            })
            .collect()
    }
}
