//! `NodeNetwork`: one node's desired network state (spec, written by the operator) and what the
//! node's agent applied (status). This is the contract between the two halves.

use std::net::{IpAddr, Ipv4Addr};

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, EncapsulationMode};
use super::felix::ProtoPort;
use super::policy::Action;
use super::tier::{DEFAULT_TIER, TierDefaultAction};
use super::value::{Cidr, IpFamily, IpSetMember, Mac, Net, Wire};

/// Everything one node's agent needs to program its dataplane. Named after the node.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "NodeNetwork",
    doc = "One node's desired network state (spec, from the operator) and what its agent applied (status).",
    plural = "nodenetworks",
    singular = "nodenetwork",
    shortname = "nodenet",
    category = "gingham",
    status = "NodeNetworkStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"BGP","type":"string","jsonPath":".status.bgpSummary"}"#,
    printcolumn = r#"{"name":"ENDPOINTS","type":"integer","jsonPath":".status.endpointCount"}"#,
    printcolumn = r#"{"name":"STREAM","type":"string","jsonPath":".status.stream.state"}"#,
    printcolumn = r#"{"name":"REVISION","type":"integer","jsonPath":".status.stream.revision"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkSpec {
    /// The node's IPv4 underlay address with its prefix length (e.g. `192.168.10.2/24`); the
    /// prefix decides which nodes share its subnet for CrossSubnet of IPv4 pools. Absent on a node
    /// without IPv4 (then `address6` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Wire<Cidr>>,
    /// The node's IPv6 underlay address with its prefix length (e.g. `fd00:10::2/64`), for IPv6
    /// pools as `address` is for IPv4 ones. Absent on a node without IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Wire<Cidr>>,
    /// The CIDRs of the blocks this node owns, of both families (also published as IPAMBlocks).
    #[serde(default)]
    pub blocks: Vec<Wire<Cidr>>,
    /// Every usable pool of both families, for encapsulation decisions and natOutgoing (the
    /// pools of a family are the "inside" for that family's masquerade).
    #[serde(default)]
    pub pools: Vec<PoolRouting>,
    /// Tunnel devices and their MTU.
    #[serde(default)]
    pub tunnel: TunnelSpec,
    /// BGP settings for BIRD; absent when BGP is off for this node. The sessions themselves
    /// depend on the other nodes and come through the stream (`docs/stream.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// The node's own policy settings. The compiled policies, the IP sets and the endpoints'
    /// policy lists are shared with other nodes and come through the stream.
    #[serde(default)]
    pub policy: NodePolicySpec,
    /// Agent settings from the merged FelixConfiguration.
    #[serde(default)]
    pub agent: AgentSettings,
}

/// How one pool is routed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolRouting {
    /// The pool's name.
    pub name: String,
    /// The pool's CIDR.
    pub cidr: Wire<Cidr>,
    /// IP-in-IP mode.
    #[serde(default)]
    pub ipip_mode: EncapsulationMode,
    /// VXLAN mode.
    #[serde(default)]
    pub vxlan_mode: EncapsulationMode,
    /// Masquerade traffic leaving every pool.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// Keep this pool's blocks out of BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
}

/// Tunnel devices for the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSpec {
    /// The VXLAN network identifier.
    #[serde(default = "default_vni", rename = "vxlanVNI")]
    pub vxlan_vni: u32,
    /// The VXLAN UDP port.
    #[serde(default = "default_vxlan_port")]
    pub vxlan_port: u16,
    /// The node's IPv4 blocks its tunnel address (VTEP or tunl0) may come from, in order: blocks
    /// of encapsulating IPv4 pools that allow the `Tunnel` use. The agent allocates the address
    /// through its IPAM (so no pod can hold it) and reports it in `status.tunnelAddress`; empty: no
    /// tunnel address, and the agent releases the one it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Wire<Cidr>>,
    /// The same for the IPv6 VTEP (Calico's `vxlan-v6.calico`): blocks of VXLAN IPv6 pools that
    /// allow the `Tunnel` use (IPIP is IPv4 only). The agent reports the address in
    /// `status.tunnelAddress6`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks6: Vec<Wire<Cidr>>,
    /// This node's IPv4 VTEP MAC (Calico's `VXLANTunnelMACAddr`).
    #[serde(default, rename = "vtepMAC", skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<Wire<Mac>>,
    /// This node's IPv6 VTEP MAC (Calico's `VXLANTunnelMACAddrV6`), when it has a block of a VXLAN
    /// IPv6 pool.
    #[serde(default, rename = "vtepMACV6", skip_serializing_if = "Option::is_none")]
    pub vtep_mac_v6: Option<Wire<Mac>>,
    /// IPv4 VXLAN device MTU; unset: the underlay MTU less 50.
    #[serde(default, rename = "vxlanMTU", skip_serializing_if = "Option::is_none")]
    pub vxlan_mtu: Option<u32>,
    /// IPv6 VXLAN device MTU (Calico's `VXLANMTUV6`); unset: the underlay MTU less 70.
    #[serde(default, rename = "vxlanMTUV6", skip_serializing_if = "Option::is_none")]
    pub vxlan_mtu_v6: Option<u32>,
    /// tunl0 MTU; unset: the underlay MTU less 20.
    #[serde(default, rename = "ipipMTU", skip_serializing_if = "Option::is_none")]
    pub ipip_mtu: Option<u32>,
}

impl Default for TunnelSpec {
    fn default() -> Self {
        Self {
            vxlan_vni: default_vni(),
            vxlan_port: default_vxlan_port(),
            blocks: Vec::new(),
            blocks6: Vec::new(),
            vtep_mac: None,
            vtep_mac_v6: None,
            vxlan_mtu: None,
            vxlan_mtu_v6: None,
            ipip_mtu: None,
        }
    }
}

fn default_vni() -> u32 {
    super::felix::DEFAULT_VXLAN_VNI
}

fn default_vxlan_port() -> u16 {
    super::felix::DEFAULT_VXLAN_PORT
}

/// The node's own BGP settings, rendered into BIRD's configuration with the sessions the stream
/// sends ([`BgpPeerSession`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    /// The router id, always IPv4-shaped (BGP's 32-bit identifier). In order: the node's
    /// `gingham.dev/bgp-router-id` annotation (Calico: `spec.bgp.routerID` of its Node), the
    /// node's IPv4 address, or for a node without IPv4 a stable hash of its name (Calico's
    /// `hashed` router id: the first four bytes of the name's SHA-1, see `docs/`).
    #[serde(rename = "routerID")]
    pub router_id: Wire<Ipv4Addr>,
    /// This node's AS number.
    pub as_number: u32,
    /// The port BIRD listens on.
    #[serde(default = "default_bgp_port")]
    pub listen_port: u16,
    /// Set when this node is a route reflector: its cluster id.
    #[serde(default, rename = "routeReflectorClusterID", skip_serializing_if = "Option::is_none")]
    pub route_reflector_cluster_id: Option<Wire<Ipv4Addr>>,
}

fn default_bgp_port() -> u16 {
    179
}

/// Why a BGP session exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum PeerKind {
    /// The node-to-node mesh.
    #[default]
    Mesh,
    /// A route reflector (this node is its client) or a client (this node is the reflector).
    RouteReflector,
    /// A BGPPeer resource naming an external router.
    Explicit,
}

/// One BGP session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSession {
    /// A name unique on this node, safe for BIRD (letters, digits, `_`).
    pub name: String,
    /// Why the session exists.
    #[serde(default)]
    pub kind: PeerKind,
    /// The peer's address.
    pub address: Wire<IpAddr>,
    /// The peer's port.
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    /// The peer's AS number.
    pub as_number: u32,
    /// The AS number presented to this peer instead of the node's.
    #[serde(default, rename = "localASNumber", skip_serializing_if = "Option::is_none")]
    pub local_as_number: Option<u32>,
    /// This node reflects routes to the peer (the peer is its route-reflector client).
    #[serde(default)]
    pub route_reflector_client: bool,
    /// The session password, resolved from its Secret by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Keepalive time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_seconds: Option<u32>,
    /// Graceful-restart time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_seconds: Option<u32>,
    /// Next-hop handling: Auto, Self or Keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<String>,
    /// TTL security hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// How many times the local AS may appear in a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_local_as: Option<u32>,
    /// Send the node's own address as the session source.
    #[serde(default = "default_true")]
    pub use_node_source_address: bool,
}

fn default_true() -> bool {
    true
}

/// The node's own policy settings (from its FelixConfiguration).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePolicySpec {
    /// What happens to traffic from local pods to the node itself.
    #[serde(default)]
    pub default_endpoint_to_host_action: EndpointToHostAction,
    /// Inbound ports on the node that stay open whatever the policy.
    #[serde(default)]
    pub failsafe_inbound: Vec<ProtoPort>,
    /// Outbound ports from the node that stay open whatever the policy.
    #[serde(default)]
    pub failsafe_outbound: Vec<ProtoPort>,
}

/// What happens to traffic from pods to their own node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EndpointToHostAction {
    /// Drop it (except failsafes).
    #[default]
    Drop,
    /// Accept it.
    Accept,
    /// Hand it to host policy (no host endpoints yet: accepted).
    Return,
}

/// The policies that apply to one local endpoint, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPolicy {
    /// `namespace/pod`.
    pub name: String,
    /// The Pod's `metadata.uid` this was compiled for: the agent applies it only to an endpoint of
    /// that Pod (one re-created under the same name waits for its own). Absent when unknown; then
    /// the name alone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The tiers whose policies apply to traffic into the endpoint, in evaluation order (only
    /// tiers with at least one such policy); empty: allow all. A bare policy name, as spans
    /// written before tiers list them, reads as a policy of the `default` tier.
    #[serde(default, deserialize_with = "tiered_or_names")]
    pub ingress: Vec<TierPolicies>,
    /// The same for traffic out of the endpoint.
    #[serde(default, deserialize_with = "tiered_or_names")]
    pub egress: Vec<TierPolicies>,
    /// The IPv4 pools (CIDRs) the pod's IPv4 address must come from, in order, from its
    /// [`IPV4_POOLS_ANNOTATION`] (or its namespace's); empty: any of the node's blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4_pools: Vec<Wire<Cidr>>,
    /// The IPv6 pools (CIDRs) the pod's IPv6 address must come from, in order, from its
    /// [`IPV6_POOLS_ANNOTATION`] (or its namespace's); empty: any of the node's blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_pools: Vec<Wire<Cidr>>,
}

/// The policies of one tier that apply to an endpoint in one direction, and what happens when
/// none of them decides.
///
/// The agent evaluates an endpoint's tiers in order: within a tier, the policies in order; the
/// first Allow allows, the first Deny drops, Log goes on, Pass ends the tier. A tier none of whose
/// policies decides ends with its `defaultAction`: Deny drops, Pass goes on. Past the last tier
/// (every tier passed), the traffic is allowed, as Calico's profiles allow it in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierPolicies {
    /// The tier's name.
    pub tier: String,
    /// What happens when none of the policies decides.
    #[serde(default)]
    pub default_action: TierDefaultAction,
    /// The policies (by compiled name), in evaluation order; never empty.
    pub policies: Vec<String>,
}

impl TierPolicies {
    /// Policies of the `default` tier (default action Deny): the shape every list had before tiers.
    pub fn default_tier(policies: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            tier: DEFAULT_TIER.to_string(),
            default_action: TierDefaultAction::Deny,
            policies: policies.into_iter().map(Into::into).collect(),
        }
    }
}

/// One entry of a tiered list as read: a tier, or a bare policy name of the `default` tier.
#[derive(Deserialize)]
#[serde(untagged)]
enum TierOrName {
    Tier(TierPolicies),
    Name(String),
}

/// Reads a tiered list, taking consecutive bare names as one `default` tier.
fn tiered_or_names<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<TierPolicies>, D::Error> {
    let entries = Vec::<TierOrName>::deserialize(deserializer)?;
    let mut tiers: Vec<TierPolicies> = Vec::new();
    for entry in entries {
        match (entry, tiers.last_mut()) {
            (TierOrName::Tier(tier), _) => tiers.push(tier),
            (TierOrName::Name(name), Some(last)) if last.tier == DEFAULT_TIER => last.policies.push(name),
            (TierOrName::Name(name), _) => tiers.push(TierPolicies::default_tier([name])),
        }
    }
    Ok(tiers)
}

/// Every policy name of a tiered list, in evaluation order.
pub fn tiered_policy_names(tiers: &[TierPolicies]) -> impl Iterator<Item = &String> {
    tiers.iter().flat_map(|tier| &tier.policies)
}

/// Calico's per-pod (and per-namespace) annotation naming the IPv4 pools a pod's address comes
/// from: a JSON list of pool CIDRs or names.
pub const IPV4_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv4pools";
/// Calico's per-pod (and per-namespace) annotation naming the IPv6 pools a pod's address comes
/// from: a JSON list of pool CIDRs or names.
pub const IPV6_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv6pools";

/// Whether a policy compiled for the Pod with UID `compiled` may apply to an endpoint of the Pod
/// with UID `actual`. Endpoints are matched by `namespace/pod` name; when both sides know the UID
/// it must be the same (a pod re-created under the same name is another Pod, maybe with other
/// labels). Without a UID on either side (an older operator or agent, a runtime that passes no
/// `K8S_POD_UID`, a workload that is no Kubernetes Pod) the name alone decides.
pub fn uid_matches(compiled: Option<&str>, actual: Option<&str>) -> bool {
    match (compiled, actual) {
        (Some(compiled), Some(actual)) => compiled == actual,
        _ => true,
    }
}

/// A policy compiled to address sets and port ranges.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompiledPolicy {
    /// A name unique on the node: `<namespace>/<name>` or `global/<name>`.
    pub name: String,
    /// Ingress rules, in order.
    #[serde(default)]
    pub ingress: Vec<CompiledRule>,
    /// Egress rules, in order.
    #[serde(default)]
    pub egress: Vec<CompiledRule>,
}

/// One compiled rule: every listed condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompiledRule {
    /// What to do on a match.
    pub action: CompiledAction,
    /// The family the rule is limited to (Calico's `ipVersion`, written 4 or 6); absent: both.
    /// The rule also matches only the families its nets, sets and ICMP leave possible: a side
    /// whose `nets` are all of one family never matches the other.
    #[serde(default, with = "super::value::ip_version_number", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u8>")]
    pub ip_version: Option<IpFamily>,
    /// IP protocol number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// Not this protocol number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<u8>,
    /// ICMP type and optional code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    /// Not this ICMP type and code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpMatch>,
    /// Source conditions.
    #[serde(default)]
    pub source: CompiledMatch,
    /// Destination conditions.
    #[serde(default)]
    pub destination: CompiledMatch,
}

/// A rule action, as compiled (the same four as [`Action`]).
pub type CompiledAction = Action;

/// ICMP (IPv4) or ICMPv6 type and code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IcmpMatch {
    /// Which ICMP: `ICMP` (IPv4, the default, not written) or `ICMPv6`; it limits the rule to
    /// that family.
    #[serde(default, skip_serializing_if = "IcmpProtocol::is_icmp")]
    pub protocol: IcmpProtocol,
    /// ICMP type.
    #[serde(rename = "type")]
    pub type_: u8,
    /// ICMP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// ICMP for IPv4 or ICMPv6, as Calico names the protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum IcmpProtocol {
    /// ICMP (protocol 1), IPv4.
    #[default]
    ICMP,
    /// ICMPv6 (protocol 58), IPv6.
    ICMPv6,
}

impl IcmpProtocol {
    /// The ICMP of a protocol number: 1 and 58, else none.
    pub fn of_number(number: u8) -> Option<Self> {
        match number {
            1 => Some(Self::ICMP),
            58 => Some(Self::ICMPv6),
            _ => None,
        }
    }

    /// The family it belongs to.
    pub fn family(self) -> IpFamily {
        match self {
            Self::ICMP => IpFamily::IPv4,
            Self::ICMPv6 => IpFamily::IPv6,
        }
    }

    /// Whether it is ICMP for IPv4 (the default).
    pub fn is_icmp(&self) -> bool {
        *self == Self::ICMP
    }
}

/// Conditions on one side of a compiled rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompiledMatch {
    /// The address is in one of these CIDRs (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<Wire<Net>>,
    /// The address is in none of these CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<Wire<Net>>,
    /// The address is in every one of these sets of its own family. Each selector names its two
    /// sets, the IPv4 and the IPv6 one ([`IpSet::family`]); a packet is checked against the sets
    /// of its family only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<String>,
    /// The address is in none of these sets of its own family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_sets: Vec<String>,
    /// The port is in one of these ranges (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    /// The port is in none of these ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<PortRange>,
    /// The IPv4 address, protocol and port are in this named-port set (ORed with `ports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_port_set: Option<String>,
    /// The same for IPv6 packets: the IPv6 named-port set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_port_set6: Option<String>,
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// A named set of addresses (or address-protocol-port triples for named ports).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpSet {
    /// The set's name, unique on the node (safe for nftables: letters, digits, `_`).
    pub name: String,
    /// The family of every member (absent in older spans: IPv4).
    #[serde(default)]
    pub family: IpFamily,
    /// Addresses or `address,protocol,port` triples.
    #[serde(default)]
    pub kind: IpSetKind,
    /// The members, sorted, each of the set's family.
    #[serde(default)]
    pub members: Vec<Wire<IpSetMember>>,
}

/// What an [`IpSet`] holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IpSetKind {
    /// Addresses or CIDRs.
    #[default]
    Addresses,
    /// `address,protocol,port` triples.
    AddressPorts,
}

/// Agent settings from the merged FelixConfiguration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    /// Route resync interval in seconds: how often the agent dumps its routes, devices,
    /// neighbours, FDB and nexthops in full (between dumps, the kernel's notifications tell it of
    /// changes).
    #[serde(default = "default_refresh")]
    pub route_refresh_seconds: u32,
    /// nftables resync interval in seconds.
    #[serde(default = "default_refresh")]
    pub nftables_refresh_seconds: u32,
    /// Log level.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            route_refresh_seconds: default_refresh(),
            nftables_refresh_seconds: default_refresh(),
            log_level: default_log_level(),
        }
    }
}

fn default_refresh() -> u32 {
    90
}

fn default_log_level() -> String {
    "Info".to_string()
}

/// What the node's agent applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkStatus {
    /// The spec generation last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, RoutesProgrammed, PolicyProgrammed and BGPEstablished.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// `established/total` BGP sessions, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_summary: Option<String>,
    /// Every BGP session as BIRD reports it.
    #[serde(default)]
    pub bgp_sessions: Vec<BgpSessionStatus>,
    /// How many local endpoints exist.
    #[serde(default)]
    pub endpoint_count: u32,
    /// The local endpoints and their addresses (the operator reads these to build address sets).
    #[serde(default)]
    pub endpoints: Vec<LocalEndpoint>,
    /// Address use in the node's blocks.
    #[serde(default)]
    pub ipam: IpamUsage,
    /// The tunnel address (VTEP and tunl0) the agent allocated from `spec.tunnel.blocks` through
    /// its IPAM, under the handle `tunnel-addr-<node>`; absent when no pool encapsulates. The
    /// operator publishes it in the node's IPAMBlocks for the other nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_address: Option<Wire<IpAddr>>,
    /// The IPv6 VTEP address the agent allocated from `spec.tunnel.blocks6`, under the handle
    /// `tunnel-addr-v6-<node>`; published in the node's IPv6 IPAMBlocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_address6: Option<Wire<IpAddr>>,
    /// What this node's kernel can do.
    #[serde(default)]
    pub capabilities: NodeCapabilities,
    /// The last error, if the last apply failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The operator's stream, when the agent follows it (docs/stream.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamStatus>,
}

/// How the agent's stream stands: whether it is current, and the revision of the span it
/// enforces (kept, and enforced, while the stream is down).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// `Connecting` (nothing held yet), `Streaming` or `Disconnected`.
    pub state: String,
    /// The revision of the span the agent holds and enforces: the last one that changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The server it streams from, when streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Why the stream is down, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The readiness condition types of a NodeNetwork.
pub mod conditions {
    /// Everything below holds.
    pub const READY: &str = "Ready";
    /// Routes, devices and neighbours match the spec.
    pub const ROUTES_PROGRAMMED: &str = "RoutesProgrammed";
    /// The nftables ruleset matches the spec.
    pub const POLICY_PROGRAMMED: &str = "PolicyProgrammed";
    /// Every BGP session is established.
    pub const BGP_ESTABLISHED: &str = "BGPEstablished";
}

/// One BGP session as BIRD reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpSessionStatus {
    /// The session name.
    pub name: String,
    /// The peer's address.
    #[serde(default)]
    pub peer_address: String,
    /// BIRD's protocol state (up, start, down).
    pub state: String,
    /// The BGP state (Established, Active, Connect, ...).
    #[serde(default)]
    pub info: String,
    /// Since when, as BIRD prints it.
    #[serde(default)]
    pub since: String,
}

/// A local endpoint (pod) as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalEndpoint {
    /// `namespace/pod`.
    pub name: String,
    /// The Pod's `metadata.uid`, when the container runtime passed it (`K8S_POD_UID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The pod's primary address (Kubernetes' `podIP`: its IPv4 address when it has one).
    pub address: Wire<IpAddr>,
    /// Every address of the pod, one per family (Kubernetes' `podIPs`), primary first; absent
    /// when the pod has only `address`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Wire<IpAddr>>,
    /// The host-side interface.
    pub interface: String,
}

impl LocalEndpoint {
    /// Every address of the pod with its field path: `addresses` when given, else `address`.
    pub fn all_addresses(&self) -> Vec<(String, &Wire<IpAddr>)> {
        if self.addresses.is_empty() {
            vec![("address".to_string(), &self.address)]
        } else {
            self.addresses.iter().enumerate().map(|(index, address)| (format!("addresses[{index}]"), address)).collect()
        }
    }
}

/// Address use in the node's blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpamUsage {
    /// Addresses in use.
    #[serde(default)]
    pub allocated: u32,
    /// Addresses available in all blocks.
    #[serde(default)]
    pub capacity: u32,
    /// The blocks are nearly full: the operator should assign another.
    #[serde(default)]
    pub pressure: bool,
}

/// What the node's kernel supports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapabilities {
    /// IP-in-IP (`tunl0`).
    #[serde(default)]
    pub ipip: bool,
    /// VXLAN.
    #[serde(default)]
    pub vxlan: bool,
    /// Kernel nexthop objects (`RTM_NEWNEXTHOP`): remote blocks route through one nexthop per
    /// remote node; without them, through plain routes.
    #[serde(default)]
    pub nexthops: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_in_rust_match_the_serde_defaults() {
        let from_empty: TunnelSpec = serde_json::from_str("{}").unwrap_or_default();
        assert_eq!(TunnelSpec::default(), from_empty);
        assert_eq!(TunnelSpec::default().vxlan_vni, 4096);
        assert_eq!(TunnelSpec::default().vxlan_port, 4789);
        let settings: AgentSettings = serde_json::from_str("{}").unwrap_or_default();
        assert_eq!(AgentSettings::default(), settings);
    }

    #[test]
    fn a_uid_known_on_both_sides_must_agree_else_the_name_decides() {
        let cases = [
            (Some("u1"), Some("u1"), true),
            (Some("u1"), Some("u2"), false),
            (None, Some("u2"), true),
            (Some("u1"), None, true),
            (None, None, true),
        ];
        for (compiled, actual, want) in cases {
            assert_eq!(uid_matches(compiled, actual), want, "{compiled:?} vs {actual:?}");
        }
    }

    #[test]
    fn an_ipv4_spec_as_written_before_dual_stack_reads_and_writes_unchanged() {
        let old = r#"{"address": "10.0.0.1/24", "blocks": ["10.244.0.0/26"],
            "tunnel": {"blocks": ["10.244.0.0/26"], "vtepMAC": "ee:ee:ee:ee:ee:01"}}"#;
        let spec: NodeNetworkSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.address.as_ref().map(Wire::as_str), Some("10.0.0.1/24"));
        assert_eq!(
            (spec.address6.clone(), spec.tunnel.blocks6.len(), spec.tunnel.vtep_mac_v6.clone()),
            (None, 0, None)
        );
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["address"], "10.0.0.1/24");
        assert!(json.get("address6").is_none(), "address6 is not written when absent");
        assert!(json["tunnel"].get("blocks6").is_none() && json["tunnel"].get("vtepMACV6").is_none());
        let v6: NodeNetworkSpec = serde_json::from_str(
            r#"{"address6": "fd00:10::2/64",
                "tunnel": {"blocks6": ["fd00:100::/122"], "vtepMACV6": "ee:ee:ee:ee:ee:02", "vxlanMTUV6": 1430}}"#,
        )
        .unwrap();
        assert_eq!((v6.address, v6.address6.map(|a| a.to_string())), (None, Some("fd00:10::2/64".into())));
        assert_eq!((v6.tunnel.blocks6.len(), v6.tunnel.vxlan_mtu_v6), (1, Some(1430)));
    }

    #[test]
    fn rules_carry_ip_version_as_a_number_and_icmp_names_its_protocol() {
        let rule = CompiledRule {
            ip_version: Some(IpFamily::IPv6),
            protocol: Some(58),
            icmp: Some(IcmpMatch { protocol: IcmpProtocol::ICMPv6, type_: 128, code: None }),
            ..CompiledRule::default()
        };
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["ipVersion"], 6);
        assert_eq!(json["icmp"]["protocol"], "ICMPv6");
        assert_eq!(serde_json::from_value::<CompiledRule>(json).unwrap(), rule);
        let v4 = serde_json::to_value(IcmpMatch { type_: 8, ..IcmpMatch::default() }).unwrap();
        assert_eq!(v4, serde_json::json!({"type": 8}), "ICMP for IPv4 is written as before");
        assert!(serde_json::from_str::<CompiledRule>(r#"{"action": "Allow", "ipVersion": 5}"#).is_err());
        assert_eq!(IcmpProtocol::of_number(58).map(IcmpProtocol::family), Some(IpFamily::IPv6));
    }

    #[test]
    fn an_endpoint_lists_every_address_or_its_one() {
        let single: LocalEndpoint =
            serde_json::from_str(r#"{"name": "ns/a", "address": "10.0.0.1", "interface": "gh1"}"#).unwrap();
        let paths: Vec<(String, String)> =
            single.all_addresses().into_iter().map(|(path, a)| (path, a.to_string())).collect();
        assert_eq!(paths, [("address".to_string(), "10.0.0.1".to_string())]);
        let dual: LocalEndpoint = serde_json::from_str(
            r#"{"name": "ns/a", "address": "10.0.0.1", "addresses": ["10.0.0.1", "fd00::1"], "interface": "gh1"}"#,
        )
        .unwrap();
        let paths: Vec<String> = dual.all_addresses().into_iter().map(|(path, a)| format!("{path}={a}")).collect();
        assert_eq!(paths, ["addresses[0]=10.0.0.1", "addresses[1]=fd00::1"]);
    }

    #[test]
    fn objects_without_a_uid_still_decode_and_none_is_not_written() {
        let endpoint: EndpointPolicy = serde_json::from_str(r#"{"name": "ns/web"}"#).unwrap_or_default();
        assert_eq!(endpoint, EndpointPolicy { name: "ns/web".into(), ..EndpointPolicy::default() });
        let text = serde_json::to_string(&endpoint).unwrap_or_default();
        assert!(!text.contains("uid"), "{text}");
        let reported: LocalEndpoint =
            serde_json::from_str(r#"{"name": "ns/web", "address": "10.0.0.1", "interface": "gh1"}"#)
                .unwrap_or_default();
        assert_eq!(reported.uid, None);
    }
}
