//! The allocation table on disk. Every operation takes an exclusive `flock` on a lock file, reads
//! the table, changes it and replaces it atomically, so concurrent processes and a process killed
//! mid-way never hand out an address twice.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gingham_crds::api::nodenetwork::IpamUsage;
use serde::{Deserialize, Serialize};

use super::lock::{Gate, Held};
use super::{Allocation, AllocationRequest, Attachment, BlockSet, IpamError, TunnelAllocation, unix_now};
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
    /// The node's tunnel address, in the same table as the pods' so neither can take the other's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnel: Option<TunnelAllocation>,
}

impl Table {
    /// Every address an allocation holds: the pods' and the tunnel's.
    fn used(&self) -> BTreeSet<Ipv4Addr> {
        self.allocations.iter().map(|a| a.address).chain(self.tunnel.as_ref().map(|t| t.address)).collect()
    }

    fn exhausted(&self, blocks: &[ipnet::Ipv4Net]) -> IpamError {
        IpamError::Exhausted {
            blocks: blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            allocated: self.allocations.len() + usize::from(self.tunnel.is_some()),
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

    /// The allocation for `request`'s container and interface: the existing one, or a new address.
    /// Another allocation for the same pod (an old sandbox) is replaced.
    pub fn allocate(&self, blocks: &BlockSet, request: &AllocationRequest) -> Result<Allocation, IpamError> {
        self.update(|table| {
            if let Some(existing) = table.allocations.iter().find(|a| a.matches(&request.container_id, &request.ifname))
            {
                return Ok(existing.clone());
            }
            table.allocations.retain(|a| {
                let stale = a.namespace == request.namespace && a.pod == request.pod;
                if stale {
                    tracing::info!(older = %a.container_id, newer = %request.container_id, address = %a.address, "a newer sandbox of the pod replaces the older sandbox's allocation");
                }
                !stale
            });
            let address = blocks.first_free(&table.used()).ok_or_else(|| table.exhausted(&blocks.blocks))?;
            let allocation = Allocation::new(request, address);
            table.allocations.push(allocation.clone());
            Ok(allocation)
        })
    }

    /// Makes the table hold the tunnel address `blocks` call for, under `handle`, and returns it.
    /// The address held stays while a tunnel block may hold it and no pod does; otherwise the first
    /// free address of the tunnel blocks is taken (so a tunnel that collided with a pod moves, and
    /// the pod keeps its address). With no tunnel blocks (no pool encapsulates) the address is
    /// released to its block.
    pub fn ensure_tunnel(&self, blocks: &BlockSet, handle: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        self.update(|table| {
            if blocks.tunnel_blocks.is_empty() {
                if let Some(released) = table.tunnel.take() {
                    tracing::info!(address = %released.address, handle = %released.handle, "released the tunnel address: no pool encapsulates");
                }
                return Ok(None);
            }
            let pods: BTreeSet<Ipv4Addr> = table.allocations.iter().map(|a| a.address).collect();
            if let Some(held) = &table.tunnel
                && held.handle == handle
                && blocks.tunnel_may_hold(held.address)
                && !pods.contains(&held.address)
            {
                return Ok(Some(held.address));
            }
            let address = blocks.first_free_for_tunnel(&pods).ok_or_else(|| table.exhausted(&blocks.tunnel_blocks))?;
            let previous = table.tunnel.replace(TunnelAllocation {
                handle: handle.to_string(),
                address,
                allocated_at: unix_now(),
            });
            match previous {
                Some(old) => tracing::info!(from = %old.address, to = %address, handle, "moved the tunnel address"),
                None => tracing::info!(%address, handle, "allocated the tunnel address"),
            }
            Ok(Some(address))
        })
    }

    /// The tunnel address the table holds, if any.
    pub fn tunnel(&self) -> Result<Option<TunnelAllocation>, IpamError> {
        let _lock = self.lock()?;
        Ok(self.read()?.tunnel)
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

    /// Applies `change` under the lock and writes the table back, unless it did not change.
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
