//! `gingham ipam show`: per-pool utilisation; `--show-blocks` lists blocks, `--ip` finds who holds
//! an address, `--show-borrowed` lists addresses outside their node's own blocks. Addresses in
//! use are what the agents report (endpoints and tunnel addresses in NodeNetwork status).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::args::IpamShowArgs;
use crate::output::{Report, table};
use crate::source::ClusterView;

/// One address in use, as an agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The address.
    pub address: IpAddr,
    /// `namespace/pod`, or `tunnel` for a node's tunnel address.
    pub owner: String,
    /// The Pod's uid, when known.
    pub uid: Option<String>,
    /// The node whose agent holds it.
    pub node: String,
    /// The block it is in, if any.
    pub block: Option<String>,
    /// The node owning that block (differs from `node` when borrowed).
    pub block_node: Option<String>,
    /// The host-side interface (pods).
    pub interface: Option<String>,
    /// When the pod was created, when the datastore knows.
    pub since: Option<String>,
}

/// One pool's use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUse {
    /// The pool.
    pub name: String,
    /// Its CIDR.
    pub cidr: String,
    /// Addresses in the pool.
    pub size: u128,
    /// Blocks assigned to nodes.
    pub blocks: usize,
    /// Addresses in those blocks.
    pub in_blocks: u128,
    /// Addresses in use.
    pub in_use: usize,
}

/// One block's use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockUse {
    /// The block's CIDR.
    pub cidr: String,
    /// The node owning it.
    pub node: String,
    /// Its pool.
    pub pool: String,
    /// Addresses in it.
    pub size: u128,
    /// Addresses in use.
    pub in_use: usize,
    /// Being released.
    pub releasing: bool,
}

/// What `ipam show` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamReport {
    /// Every pool.
    pub pools: Vec<PoolUse>,
    /// Every block, with `--show-blocks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<BlockUse>>,
    /// The holder of `--ip` (None when nobody holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpLookup>,
    /// Addresses outside their node's blocks, with `--show-borrowed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub borrowed: Option<Vec<Holder>>,
}

/// The answer to `--ip`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpLookup {
    /// The address asked about.
    pub address: IpAddr,
    /// Who holds it (none when free).
    pub holder: Option<Holder>,
    /// The block it falls in, and that block's node, when it is in one.
    pub block: Option<(String, String)>,
}

impl IpamReport {
    /// Problems found: an address asked about that nobody holds.
    pub fn found_problems(&self) -> bool {
        self.ip.as_ref().is_some_and(|lookup| lookup.holder.is_none())
    }
}

fn net(cidr: &str) -> Option<IpNet> {
    cidr.parse().ok()
}

fn size(net: &IpNet) -> u128 {
    1u128 << (net.max_prefix_len() - net.prefix_len()).min(127)
}

/// Every address the agents report, with its block.
pub fn holders(view: &ClusterView) -> Vec<Holder> {
    let block_of = |address: IpAddr| {
        view.snapshot.blocks.iter().find(|b| net(b.spec.cidr.as_str()).is_some_and(|n| n.contains(&address)))
    };
    let since = |name: &str| {
        let (namespace, pod) = name.split_once('/')?;
        let found =
            view.snapshot.pods.iter().find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(pod)
            })?;
        found.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string())
    };
    let mut holders = Vec::new();
    for (node, status) in &view.snapshot.node_statuses {
        let tunnel = status.tunnel_address.iter().map(|a| (a.as_str(), "tunnel".to_string(), None, None));
        let pods = status
            .endpoints
            .iter()
            .map(|e| (e.address.as_str(), e.name.clone(), e.uid.clone(), Some(e.interface.clone())));
        for (address, owner, uid, interface) in pods.chain(tunnel) {
            // Reported when the view was loaded (`source::undecodable_addresses`).
            let Ok(address) = address.split('/').next().unwrap_or_default().parse::<IpAddr>() else { continue };
            let block = block_of(address);
            holders.push(Holder {
                address,
                since: since(&owner),
                owner,
                uid,
                node: node.clone(),
                block: block.map(|b| b.spec.cidr.to_string()),
                block_node: block.map(|b| b.spec.node.clone()),
                interface,
            });
        }
    }
    holders.sort_by_key(|h| h.address);
    holders
}

/// The `ipam show` report.
pub fn show(view: &ClusterView, args: &IpamShowArgs) -> IpamReport {
    let holders = holders(view);
    let in_net = |n: &IpNet| holders.iter().filter(|h| n.contains(&h.address)).count();
    let pools = view
        .snapshot
        .pools
        .iter()
        .filter_map(|pool| {
            let cidr = net(&pool.spec.cidr)?;
            let name = pool.metadata.name.clone().unwrap_or_default();
            let blocks: Vec<IpNet> = view
                .snapshot
                .blocks
                .iter()
                .filter(|b| b.spec.pool == name)
                .filter_map(|b| net(b.spec.cidr.as_str()))
                .collect();
            let in_blocks = blocks.iter().map(size).sum();
            Some(PoolUse {
                name,
                cidr: pool.spec.cidr.clone(),
                size: size(&cidr),
                blocks: blocks.len(),
                in_blocks,
                in_use: in_net(&cidr),
            })
        })
        .collect();
    let blocks = args.show_blocks.then(|| {
        let mut blocks: Vec<BlockUse> = view
            .snapshot
            .blocks
            .iter()
            .filter_map(|b| {
                let cidr = net(b.spec.cidr.as_str())?;
                Some(BlockUse {
                    cidr: b.spec.cidr.to_string(),
                    node: b.spec.node.clone(),
                    pool: b.spec.pool.clone(),
                    size: size(&cidr),
                    in_use: in_net(&cidr),
                    releasing: b.spec.releasing,
                })
            })
            .collect();
        blocks.sort_by_key(|b| net(&b.cidr));
        blocks
    });
    let ip = args.ip.map(|address| {
        let block =
            view.snapshot.blocks.iter().find(|b| net(b.spec.cidr.as_str()).is_some_and(|n| n.contains(&address)));
        IpLookup {
            address,
            holder: holders.iter().find(|h| h.address == address).cloned(),
            block: block.map(|b| (b.spec.cidr.to_string(), b.spec.node.clone())),
        }
    });
    let borrowed = args
        .show_borrowed
        .then(|| holders.iter().filter(|h| h.block_node.as_ref() != Some(&h.node)).cloned().collect());
    IpamReport { pools, blocks, ip, borrowed }
}

fn percent(used: usize, of: u128) -> String {
    if of == 0 { "-".into() } else { format!("{:.1}%", used as f64 * 100.0 / of as f64) }
}

impl Report for IpamReport {
    fn human(&self) -> String {
        let rows: Vec<[String; 6]> = self
            .pools
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    p.cidr.clone(),
                    p.blocks.to_string(),
                    format!("{}/{}", p.in_use, p.in_blocks),
                    percent(p.in_use, p.in_blocks),
                    percent(p.in_use, p.size),
                ]
            })
            .collect();
        // `--ip` answers one question; the pools are in the machine output.
        let pools = table(["POOL", "CIDR", "BLOCKS", "IN USE/IN BLOCKS", "OF BLOCKS", "OF POOL"], &rows);
        let mut out = if self.ip.is_some() { String::new() } else { pools };
        if let Some(blocks) = &self.blocks {
            let rows: Vec<[String; 5]> = blocks
                .iter()
                .map(|b| {
                    let state = if b.releasing { "releasing" } else { "" };
                    [b.cidr.clone(), b.node.clone(), b.pool.clone(), format!("{}/{}", b.in_use, b.size), state.into()]
                })
                .collect();
            out += "\n";
            out += &table(["BLOCK", "NODE", "POOL", "IN USE", "STATE"], &rows);
        }
        if let Some(lookup) = &self.ip {
            out += &lookup_text(lookup);
        }
        if let Some(borrowed) = &self.borrowed {
            let rows: Vec<[String; 4]> = borrowed
                .iter()
                .map(|h| {
                    let block = h.block.clone().unwrap_or_else(|| "(no block)".into());
                    [
                        h.address.to_string(),
                        h.owner.clone(),
                        h.node.clone(),
                        format!("{block} of {}", h.block_node.clone().unwrap_or_default()),
                    ]
                })
                .collect();
            out += &format!("\nBorrowed addresses ({}):\n", borrowed.len());
            out += &table(["ADDRESS", "OWNER", "NODE", "BLOCK"], &rows);
        }
        out
    }
}

fn lookup_text(lookup: &IpLookup) -> String {
    let block = match &lookup.block {
        Some((cidr, node)) => format!("{cidr} (node {node})"),
        None => "none: the address is in no assigned block".into(),
    };
    let Some(holder) = &lookup.holder else {
        return format!("{}: not in use (block {block})\n", lookup.address);
    };
    let mut out = format!("Address:   {}\nHeld by:   {}\n", holder.address, holder.owner);
    if let Some(uid) = &holder.uid {
        out += &format!("Pod uid:   {uid}\n");
    }
    out += &format!("Node:      {}\nBlock:     {block}\n", holder.node);
    if let Some(interface) = &holder.interface {
        out += &format!("Interface: {interface}\n");
    }
    out += &format!("Since:     {}\n", holder.since.as_deref().unwrap_or("unknown (the Pod has no creationTimestamp)"));
    out
}
