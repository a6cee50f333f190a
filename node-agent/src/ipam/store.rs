//! The allocation table on disk. Every operation takes an exclusive `flock` on a lock file, reads
//! the table, changes it and replaces it atomically, so concurrent processes and a process killed
//! mid-way never hand out an address twice.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::IpamUsage;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::lock::{Gate, Held};
use super::{
    Allocation, AllocationRequest, Attachment, BlockSet, IpamError, TunnelAddresses, TunnelAllocation, list,
    tunnel_handle, unix_now,
};
use crate::private_files::{self, PRIVATE_FILE};
use gingham_datastore::atomic::write_atomic;

/// Pressure is reported when more than this share of the node's addresses are in use.
pub const PRESSURE_PERCENT: u64 = 80;

const STATE_VERSION: u32 = 1;

/// The persisted allocation table under `<state dir>/ipam/`.
#[derive(Clone, Debug)]
pub struct IpamStore {
    dir: PathBuf,
    /// Shared by the store's clones: this process's callers take the lock in turn.
    gate: Arc<Gate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Table {
    version: u32,
    allocations: Vec<Allocation>,
    /// The node's IPv4 tunnel address, in the same table as the pods' so neither can take the
    /// other's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnel: Option<TunnelAllocation>,
    /// The node's IPv6 tunnel (VTEP) address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnel6: Option<TunnelAllocation>,
}

impl Table {
    /// Every address an allocation holds: the pods' and the tunnels', of both families.
    fn used(&self) -> BTreeSet<IpAddr> {
        self.pods().into_iter().chain([&self.tunnel, &self.tunnel6].into_iter().flatten().map(|t| t.address)).collect()
    }

    /// Every address a pod holds.
    fn pods(&self) -> BTreeSet<IpAddr> {
        self.allocations.iter().flat_map(Allocation::addresses).collect()
    }

    fn tunnel_of(&mut self, family: IpFamily) -> &mut Option<TunnelAllocation> {
        match family {
            IpFamily::IPv4 => &mut self.tunnel,
            IpFamily::IPv6 => &mut self.tunnel6,
        }
    }

    fn exhausted(&self, family: IpFamily, blocks: &[IpNet]) -> IpamError {
        let tunnels = usize::from(self.tunnel.is_some()) + usize::from(self.tunnel6.is_some());
        IpamError::Exhausted {
            family,
            blocks: list(blocks),
            allocated: self.allocations.iter().map(|a| a.addresses().len()).sum::<usize>() + tunnels,
        }
    }
}

impl IpamStore {
    /// Opens (creating if needed) the table under `state_dir/ipam`. Both directories are made
    /// 0700 and the files in `ipam/` 0600, also when they exist with looser modes: whoever can
    /// open the lock can stop every IPAM call.
    pub fn open(state_dir: &Path) -> Result<Self, IpamError> {
        let dir = state_dir.join("ipam");
        for private in [state_dir, &dir] {
            private_files::ensure_private_dir(private)
                .map_err(|source| IpamError::Io { path: private.to_path_buf(), source })?;
        }
        private_files::restrict_files_in(&dir).map_err(|source| IpamError::Io { path: dir.clone(), source })?;
        Ok(Self { dir, gate: Arc::default() })
    }

    /// The allocation for `request`'s container and interface: the existing one, or one new
    /// address of each family `request.families` asks for, from its pools (all or none: when
    /// one family has no free address, nothing is allocated). Another allocation for the same
    /// pod (an old sandbox) is replaced.
    pub fn allocate(&self, blocks: &BlockSet, request: &AllocationRequest) -> Result<Allocation, IpamError> {
        self.update(|table| {
            if let Some(existing) = table.allocations.iter().find(|a| a.matches(&request.container_id, &request.ifname))
            {
                return Ok(existing.clone());
            }
            table.allocations.retain(|a| {
                let stale = a.namespace == request.namespace && a.pod == request.pod;
                if stale {
                    tracing::info!(older = %a.container_id, newer = %request.container_id, addresses = ?a.addresses(), "a newer sandbox of the pod replaces the older sandbox's allocation");
                }
                !stale
            });
            let used = table.used();
            let mut addresses = Vec::with_capacity(request.families.len());
            for wanted in &request.families {
                let address = blocks
                    .first_free(wanted.family, &wanted.pools, &used)
                    .ok_or_else(|| table.exhausted(wanted.family, &blocks.usable(wanted.family, &wanted.pools)))?;
                addresses.push(address);
            }
            let allocation = Allocation::new(request, &addresses);
            table.allocations.push(allocation.clone());
            Ok(allocation)
        })
    }

    /// Makes the table hold the tunnel addresses of both families `blocks` call for, under the
    /// handles of `node` ([`tunnel_handle`]), and returns them (see [`IpamStore::ensure_tunnel`]).
    /// One lock and at most one write for both.
    pub fn ensure_tunnels(&self, blocks: &BlockSet, node: &str) -> Result<TunnelAddresses, IpamError> {
        self.update(|table| {
            let ipv4 = ensure_tunnel_in(table, blocks, IpFamily::IPv4, &tunnel_handle(IpFamily::IPv4, node))?;
            let ipv6 = ensure_tunnel_in(table, blocks, IpFamily::IPv6, &tunnel_handle(IpFamily::IPv6, node))?;
            Ok(TunnelAddresses {
                ipv4: ipv4.and_then(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                }),
                ipv6: ipv6.and_then(|a| match a {
                    IpAddr::V4(_) => None,
                    IpAddr::V6(a) => Some(a),
                }),
            })
        })
    }

    /// Makes the table hold the tunnel address of `family` that `blocks` call for, under
    /// `handle`, and returns it. The address held stays while a tunnel block may hold it and no
    /// pod does; otherwise the first free address of the family's tunnel blocks is taken (so a
    /// tunnel that collided with a pod moves, and the pod keeps its address). With no tunnel
    /// blocks of the family (no pool of it encapsulates) the address is released to its block.
    pub fn ensure_tunnel(
        &self,
        blocks: &BlockSet,
        family: IpFamily,
        handle: &str,
    ) -> Result<Option<IpAddr>, IpamError> {
        self.update(|table| ensure_tunnel_in(table, blocks, family, handle))
    }

    /// The tunnel address of `family` the table holds, if any.
    pub fn tunnel(&self, family: IpFamily) -> Result<Option<TunnelAllocation>, IpamError> {
        let _lock = self.lock()?;
        Ok(self.read()?.tunnel_of(family).take())
    }

    /// Marks an allocation's interface as created, so the dataplane programs it.
    pub fn mark_ready(&self, container_id: &str, ifname: &str) -> Result<Allocation, IpamError> {
        self.update(|table| {
            let found = table.allocations.iter_mut().find(|a| a.matches(container_id, ifname));
            let allocation = found.ok_or_else(|| IpamError::NotFound { container_id: container_id.to_string() })?;
            allocation.ready = true;
            Ok(allocation.clone())
        })
    }

    /// Releases the container's allocations (one interface, or all when `ifname` is `None`).
    /// Releasing what does not exist succeeds and returns nothing.
    pub fn release(&self, container_id: &str, ifname: Option<&str>) -> Result<Vec<Allocation>, IpamError> {
        self.update(|table| {
            let (gone, kept) = table
                .allocations
                .drain(..)
                .partition(|a| a.container_id == container_id && ifname.is_none_or(|i| a.ifname == i));
            table.allocations = kept;
            Ok(gone)
        })
    }

    /// Releases every allocation whose attachment is not in `valid`; returns the released ones.
    pub fn gc(&self, valid: &[Attachment]) -> Result<Vec<Allocation>, IpamError> {
        self.update(|table| {
            let (kept, gone) =
                table.allocations.drain(..).partition(|a| valid.iter().any(|v| a.matches(&v.container_id, &v.ifname)));
            table.allocations = kept;
            Ok(gone)
        })
    }

    /// Releases allocations whose veth was never reported created (`ready`) after `seconds`: a
    /// plugin that died between allocating and plumbing. Returns the released ones.
    pub fn release_stale_pending(&self, seconds: u64) -> Result<Vec<Allocation>, IpamError> {
        self.update(|table| {
            let (gone, kept) = table.allocations.drain(..).partition(|a| !a.ready && a.age_seconds() >= seconds);
            table.allocations = kept;
            Ok(gone)
        })
    }

    /// Every allocation, in allocation order.
    pub fn list(&self) -> Result<Vec<Allocation>, IpamError> {
        let _lock = self.lock()?;
        Ok(self.read()?.allocations)
    }

    /// Address use in `blocks` (pods' and the tunnel's), with pressure above [`PRESSURE_PERCENT`]
    /// (or with no capacity).
    pub fn usage(&self, blocks: &BlockSet) -> Result<IpamUsage, IpamError> {
        let table = {
            let _lock = self.lock()?;
            self.read()?
        };
        let allocated = table.used().into_iter().filter(|a| blocks.contains(*a)).count();
        let allocated = u32::try_from(allocated).unwrap_or(u32::MAX);
        let capacity = blocks.capacity();
        let pressure = capacity == 0 || u64::from(allocated) * 100 > u64::from(capacity) * PRESSURE_PERCENT;
        Ok(IpamUsage { allocated, capacity, pressure })
    }

    /// Applies `change` under the lock and writes the table back, unless it did not change (nor
    /// when `change` fails: then nothing is written).
    fn update<T>(&self, change: impl FnOnce(&mut Table) -> Result<T, IpamError>) -> Result<T, IpamError> {
        let _lock = self.lock()?;
        let mut table = self.read()?;
        let before = table.clone();
        let result = change(&mut table)?;
        table.version = STATE_VERSION;
        if table == before {
            return Ok(result);
        }
        let text = serde_json::to_vec_pretty(&table)
            .map_err(|e| IpamError::Corrupt { path: self.table_path(), reason: e.to_string() })?;
        write_atomic(&self.table_path(), &text, PRIVATE_FILE)?;
        Ok(result)
    }

    fn lock(&self) -> Result<Held<'_>, IpamError> {
        super::lock::acquire(&self.gate, &self.dir.join("lock"), super::LOCK_TIMEOUT)
    }

    fn read(&self) -> Result<Table, IpamError> {
        let path = self.table_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| IpamError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Table::default()),
            Err(source) => Err(IpamError::Io { path, source }),
        }
    }

    fn table_path(&self) -> PathBuf {
        self.dir.join("allocations.json")
    }
}

/// [`IpamStore::ensure_tunnel`] on the table, under its lock.
fn ensure_tunnel_in(
    table: &mut Table,
    blocks: &BlockSet,
    family: IpFamily,
    handle: &str,
) -> Result<Option<IpAddr>, IpamError> {
    let tunnel_blocks = blocks.tunnel_blocks(family);
    if tunnel_blocks.is_empty() {
        if let Some(released) = table.tunnel_of(family).take() {
            tracing::info!(address = %released.address, handle = %released.handle, %family, "released the tunnel address: no pool of its family encapsulates");
        }
        return Ok(None);
    }
    let pods = table.pods();
    if let Some(held) = table.tunnel_of(family).as_ref()
        && held.handle == handle
        && blocks.tunnel_may_hold(held.address)
        && !pods.contains(&held.address)
    {
        return Ok(Some(held.address));
    }
    let address = blocks.first_free_for_tunnel(family, &pods).ok_or_else(|| table.exhausted(family, &tunnel_blocks))?;
    let previous = table.tunnel_of(family).replace(TunnelAllocation {
        handle: handle.to_string(),
        address,
        allocated_at: unix_now(),
    });
    match previous {
        Some(old) => tracing::info!(from = %old.address, to = %address, handle, "moved the tunnel address"),
        None => tracing::info!(%address, handle, "allocated the tunnel address"),
    }
    Ok(Some(address))
}
