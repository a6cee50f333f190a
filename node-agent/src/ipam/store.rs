//! The allocation table on disk. Every operation takes an exclusive `flock` on a lock file, reads
//! the table, changes it and replaces it atomically, so concurrent processes and a process killed
//! mid-way never hand out an address twice.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use gingham_crds::api::nodenetwork::IpamUsage;
use serde::{Deserialize, Serialize};

use super::{Allocation, AllocationRequest, Attachment, BlockSet, IpamError};
use crate::atomic_file::write_atomic;

/// Pressure is reported when more than this share of the node's addresses are in use.
pub const PRESSURE_PERCENT: u64 = 80;

const STATE_VERSION: u32 = 1;

/// The persisted allocation table under `<state dir>/ipam/`.
#[derive(Clone, Debug)]
pub struct IpamStore {
    dir: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Table {
    version: u32,
    allocations: Vec<Allocation>,
}

impl IpamStore {
    /// Opens (creating if needed) the table under `state_dir/ipam`.
    pub fn open(state_dir: &Path) -> Result<Self, IpamError> {
        let dir = state_dir.join("ipam");
        fs::create_dir_all(&dir).map_err(|source| IpamError::Io { path: dir.clone(), source })?;
        Ok(Self { dir })
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
            let used: BTreeSet<Ipv4Addr> = table.allocations.iter().map(|a| a.address).collect();
            let address = blocks.first_free(&used).ok_or_else(|| IpamError::Exhausted {
                blocks: blocks.blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                allocated: table.allocations.len(),
            })?;
            let allocation = Allocation::new(request, address);
            table.allocations.push(allocation.clone());
            Ok(allocation)
        })
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

    /// Address use in `blocks`, with pressure above [`PRESSURE_PERCENT`] (or with no capacity).
    pub fn usage(&self, blocks: &BlockSet) -> Result<IpamUsage, IpamError> {
        let allocations = self.list()?;
        let allocated = allocations.iter().filter(|a| blocks.contains(a.address)).count();
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
        write_atomic(&self.table_path(), &text)?;
        Ok(result)
    }

    fn lock(&self) -> Result<File, IpamError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| IpamError::Io { path: path.clone(), source })?;
        file.lock().map_err(|source| IpamError::Io { path, source })?;
        Ok(file)
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
