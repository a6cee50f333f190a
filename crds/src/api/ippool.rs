//! `IPPool`: a range of pod addresses, how it is cut into per-node blocks, and how its traffic is
//! routed between nodes.

use std::net::IpAddr;

use ipnet::IpNet;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Condition, EncapsulationMode};

/// The default block size of IPv4 pools (64 addresses per block).
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// The default block size of IPv6 pools.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

/// The desired state of an IP pool. Field names and defaults are Calico's `projectcalico.org/v3`.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "IPPool",
    doc = "A range of pod addresses, cut into per-node blocks, with its encapsulation and NAT settings.",
    plural = "ippools",
    singular = "ippool",
    shortname = "ipp",
    category = "gingham",
    status = "IPPoolStatus",
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"BLOCKSIZE","type":"integer","jsonPath":".spec.blockSize"}"#,
    printcolumn = r#"{"name":"IPIP","type":"string","jsonPath":".spec.ipipMode"}"#,
    printcolumn = r#"{"name":"VXLAN","type":"string","jsonPath":".spec.vxlanMode"}"#,
    printcolumn = r#"{"name":"NATOUTGOING","type":"boolean","jsonPath":".spec.natOutgoing"}"#,
    printcolumn = r#"{"name":"DISABLED","type":"boolean","jsonPath":".spec.disabled"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!(has(self.ipipMode) && self.ipipMode != 'Never' && has(self.vxlanMode) && self.vxlanMode != 'Never')"
).message("ipipMode and vxlanMode cannot both be enabled: set one of them to Never"))]
#[x_kube(validation = Rule::new(
    "!(has(self.ipipMode) && self.ipipMode != 'Never' && self.cidr.contains(':'))"
).message("IPIP is not supported on IPv6 pools: set ipipMode to Never (use vxlanMode for IPv6)"))]
#[x_kube(validation = Rule::new(
    "!has(self.blockSize) || (self.cidr.contains(':') ? (self.blockSize >= 116 && self.blockSize <= 128) : (self.blockSize >= 20 && self.blockSize <= 32))"
).message("blockSize must be between 20 and 32 for IPv4 pools and between 116 and 128 for IPv6 pools"))]
#[x_kube(validation = Rule::new(
    "!isCIDR(self.cidr) || cidr(self.cidr).prefixLength() <= (has(self.blockSize) ? self.blockSize : (self.cidr.contains(':') ? 122 : 26))"
).message("the pool is smaller than one block: make the cidr prefix no longer than blockSize (default 26 for IPv4, 122 for IPv6)"))]
#[x_kube(validation = Rule::new("has(self.blockSize) == has(oldSelf.blockSize)")
    .message("blockSize is immutable: create a new pool with the new size"))]
#[x_kube(validation = Rule::new(
    "!has(self.allowedUses) || !('LoadBalancer' in self.allowedUses) || self.allowedUses.all(u, u == 'LoadBalancer')"
).message("allowedUses LoadBalancer cannot be combined with Workload or Tunnel: use separate pools"))]
#[x_kube(validation = Rule::new(
    "!has(self.allowedUses) || !('LoadBalancer' in self.allowedUses) || ((!has(self.ipipMode) || self.ipipMode == 'Never') && (!has(self.vxlanMode) || self.vxlanMode == 'Never'))"
).message("LoadBalancer pools cannot use ipipMode or vxlanMode: set both to Never"))]
#[x_kube(validation = Rule::new(
    "!has(self.allowedUses) || !('LoadBalancer' in self.allowedUses) || !has(self.nodeSelector) || self.nodeSelector == 'all()'"
).message("LoadBalancer pools must have nodeSelector all()"))]
pub struct IPPoolSpec {
    /// The pool's address range, strictly masked (e.g. `10.244.0.0/16`). Immutable.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be a CIDR such as 10.244.0.0/16"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).masked() == cidr(self)")
        .message("cidr must be strictly masked: clear the host bits (e.g. 10.0.0.0/16, not 10.0.0.1/16)"))]
    #[x_kube(validation = Rule::new(
        "!isCIDR(self) || (self.contains(':') ? !(cidr('fe80::/10').containsCIDR(self) || cidr(self).containsCIDR('fe80::/10')) : !(cidr('169.254.0.0/16').containsCIDR(self) || cidr(self).containsCIDR('169.254.0.0/16')))"
    ).message("cidr overlaps the link-local range (169.254.0.0/16 or fe80::/10): choose another range"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cidr is immutable: create a new pool and disable this one"))]
    #[schemars(length(max = 43))]
    pub cidr: String,

    /// The prefix length of the blocks handed to nodes: 20-32 for IPv4 (default 26), 116-128 for
    /// IPv6 (default 122). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 128))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("blockSize is immutable: create a new pool with the new size"))]
    pub block_size: Option<u8>,

    /// When to use IP-in-IP between nodes: Never, Always or CrossSubnet. IPv4 only.
    #[serde(default)]
    pub ipip_mode: EncapsulationMode,

    /// When to use VXLAN between nodes: Never, Always or CrossSubnet.
    #[serde(default)]
    pub vxlan_mode: EncapsulationMode,

    /// Masquerade traffic from this pool to destinations outside every pool.
    #[serde(default)]
    pub nat_outgoing: bool,

    /// A disabled pool hands out no new blocks or addresses; existing ones keep working.
    #[serde(default)]
    pub disabled: bool,

    /// Do not export this pool's blocks over BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,

    /// Which nodes take blocks from this pool, as a selector over node labels.
    #[serde(default = "default_node_selector")]
    pub node_selector: String,

    /// What addresses from this pool may be used for: Workload, Tunnel, LoadBalancer.
    #[serde(default = "default_allowed_uses")]
    pub allowed_uses: Vec<AllowedUse>,

    /// Whether addresses are taken automatically or only when asked for by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
}

impl Default for IPPoolSpec {
    fn default() -> Self {
        Self {
            cidr: String::new(),
            block_size: None,
            ipip_mode: EncapsulationMode::Never,
            vxlan_mode: EncapsulationMode::Never,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: default_node_selector(),
            allowed_uses: default_allowed_uses(),
            assignment_mode: None,
        }
    }
}

fn default_node_selector() -> String {
    "all()".to_string()
}

fn default_allowed_uses() -> Vec<AllowedUse> {
    vec![AllowedUse::Workload, AllowedUse::Tunnel]
}

/// A use an IP pool's addresses may be put to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Tunnel endpoint addresses (VXLAN VTEPs, IPIP tunnel addresses).
    Tunnel,
    /// Service load-balancer addresses.
    LoadBalancer,
}

/// Whether a pool's addresses are handed out automatically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum AssignmentMode {
    /// Addresses are handed out to any pod that matches.
    Automatic,
    /// Addresses are handed out only when a pod asks for this pool.
    Manual,
}

/// What the operator observed about a pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Allocatable`, with a reason such as CIDROverlap, InvalidCIDR or PoolDisabled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// How many blocks of this pool are assigned to nodes.
    #[serde(default)]
    pub blocks_in_use: u32,
    /// How many addresses of this pool the nodes report in use.
    #[serde(default)]
    pub addresses_in_use: u64,
}

/// The condition type that says whether a pool hands out blocks.
pub const CONDITION_ALLOCATABLE: &str = "Allocatable";

impl IPPoolSpec {
    /// The parsed CIDR, or `None` when it is not a CIDR.
    pub fn network(&self) -> Option<IpNet> {
        self.cidr.parse().ok()
    }

    /// The block size in force: the configured one or the family's default.
    pub fn effective_block_size(&self) -> u8 {
        self.block_size.unwrap_or(if self.is_ipv6() { DEFAULT_BLOCK_SIZE_V6 } else { DEFAULT_BLOCK_SIZE_V4 })
    }

    /// Whether this is an IPv6 pool (judged from the text so that it works on invalid CIDRs too).
    pub fn is_ipv6(&self) -> bool {
        self.cidr.contains(':')
    }

    /// Whether the pool contains the address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.network().is_some_and(|net| net.contains(&addr))
    }

    /// Whether pods may take addresses from this pool.
    pub fn allows_workloads(&self) -> bool {
        self.allowed_uses.contains(&AllowedUse::Workload)
    }
}
