//! An in-memory [`Netlink`]: the kernel as sets, changed by [`Op`]s, recording every change.

use std::collections::{BTreeMap, BTreeSet};

use gingham_crds::api::nodenetwork::NodeCapabilities;

use super::diff::Op;
use super::model::{AddressSpec, FdbSpec, LinkState, NeighbourSpec, RouteSpec, RouteTarget};
use super::netlink::{Netlink, NetlinkError, describe};

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
    /// A fake host with `eth0` (MTU 1500, up).
    pub fn host() -> Self {
        let eth0 = LinkState { index: 2, name: "eth0".into(), tunnel: None, mtu: 1500, mac: None, up: true };
        Self { links: vec![eth0], ..Self::default() }
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
            Op::ReplaceRoute(route) => {
                if let Some(link) = route.device().filter(|l| !self.has_link(l)) {
                    return Err(missing(link));
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

impl Netlink for FakeNetlink {
    async fn links(&mut self) -> Result<Vec<LinkState>, NetlinkError> {
        Ok(self.links.clone())
    }

    async fn addresses(&mut self) -> Result<BTreeSet<AddressSpec>, NetlinkError> {
        Ok(self.addresses.clone())
    }

    async fn routes(&mut self) -> Result<BTreeSet<RouteSpec>, NetlinkError> {
        Ok(self.routes.clone())
    }

    async fn neighbours(&mut self) -> Result<BTreeSet<NeighbourSpec>, NetlinkError> {
        Ok(self.neighbours.clone())
    }

    async fn fdb(&mut self) -> Result<BTreeSet<FdbSpec>, NetlinkError> {
        Ok(self.fdb.clone())
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
                self.applied.push(op.clone());
                Ok(())
            })
            .collect()
    }
}
