//! `BGPConfiguration` (cluster-wide BGP settings) and `BGPPeer` (who each node peers with).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{AsNumber, BgpPassword};

/// The default AS number of every node, as in Calico.
pub const DEFAULT_AS_NUMBER: u32 = 64512;

/// Cluster-wide BGP settings. The instance named `default` applies to every node.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "BGPConfiguration",
    doc = "Cluster-wide BGP settings; the instance named `default` applies to every node.",
    plural = "bgpconfigurations",
    singular = "bgpconfiguration",
    shortname = "bgpconfig",
    category = "gingham",
    printcolumn = r#"{"name":"AS","type":"string","jsonPath":".spec.asNumber"}"#,
    printcolumn = r#"{"name":"MESH","type":"boolean","jsonPath":".spec.nodeToNodeMeshEnabled"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!(has(self.nodeMeshPassword) && has(self.nodeToNodeMeshEnabled) && !self.nodeToNodeMeshEnabled)"
).message("nodeMeshPassword cannot be set when nodeToNodeMeshEnabled is false: remove it or enable the mesh"))]
#[x_kube(validation = Rule::new(
    "!(has(self.nodeMeshMaxRestartTime) && has(self.nodeToNodeMeshEnabled) && !self.nodeToNodeMeshEnabled)"
).message("nodeMeshMaxRestartTime cannot be set when nodeToNodeMeshEnabled is false"))]
#[x_kube(validation = Rule::new("!has(self.communities) || has(self.prefixAdvertisements)")
    .message("communities are defined but not used: add prefixAdvertisements that name them, or remove them"))]
pub struct BGPConfigurationSpec {
    /// Log level of the BGP daemon: Trace, Debug, Info, Warning, Error, Fatal (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(Trace|Debug|Info|Warning|Error|Fatal)?$"))]
    pub log_severity_screen: Option<String>,

    /// Whether every node peers with every other node. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,

    /// The AS number of nodes that do not set their own. Default 64512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,

    /// Service cluster IP ranges to advertise over BGP.
    #[serde(default, rename = "serviceClusterIPs", skip_serializing_if = "Option::is_none")]
    pub service_cluster_ips: Option<Vec<ServiceCidr>>,

    /// Service external IP ranges to advertise over BGP.
    #[serde(default, rename = "serviceExternalIPs", skip_serializing_if = "Option::is_none")]
    pub service_external_ips: Option<Vec<ServiceCidr>>,

    /// Service load-balancer IP ranges to advertise over BGP.
    #[serde(default, rename = "serviceLoadBalancerIPs", skip_serializing_if = "Option::is_none")]
    pub service_load_balancer_ips: Option<Vec<ServiceCidr>>,

    /// The TCP port BGP listens on. Default 179.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub listen_port: Option<u16>,

    /// Which address BGP binds to: None (all) or NodeIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_mode: Option<BindMode>,

    /// Named BGP communities, referenced by prefixAdvertisements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<Community>>,

    /// Communities attached to advertised prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_advertisements: Option<Vec<PrefixAdvertisement>>,

    /// Password for the node-to-node mesh sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,

    /// How long mesh peers keep routes during a graceful restart (e.g. `120s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) < duration('4096s')")
        .message("nodeMeshMaxRestartTime must be under 4096s: the graceful-restart time has 12 bits"))]
    pub node_mesh_max_restart_time: Option<String>,

    /// Interfaces whose addresses are never used as the node's BGP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_interfaces: Option<Vec<String>>,
}

/// A service address range to advertise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ServiceCidr {
    /// The range, e.g. `10.96.0.0/12`.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be a CIDR such as 10.96.0.0/12"))]
    pub cidr: String,
}

/// Which address BGP binds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BindMode {
    /// Listen on every address.
    None,
    /// Listen on the node's address only.
    NodeIP,
}

/// A named BGP community value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct Community {
    /// The name prefixAdvertisements use.
    pub name: String,
    /// A standard community `aa:nn` (16-bit parts) or a large community `aa:nn:mm` (32-bit parts).
    #[x_kube(validation = Rule::new(
        "self.matches('^[0-9]{1,10}:[0-9]{1,10}(:[0-9]{1,10})?$') && (size(self.split(':')) == 2 ? self.split(':').all(p, int(p) <= 65535) : self.split(':').all(p, int(p) <= 4294967295))"
    ).message("a community is aa:nn with 16-bit parts, or aa:nn:mm with 32-bit parts"))]
    pub value: String,
}

/// Communities to attach to one advertised prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct PrefixAdvertisement {
    /// The advertised prefix.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be a CIDR"))]
    pub cidr: String,
    /// Community names (from `communities`) or literal values.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// A BGP peering: which nodes peer (node, nodeSelector or all) with whom (peerIP or peerSelector).
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "BGPPeer",
    doc = "A BGP peering between nodes (node, nodeSelector or all) and a peer (peerIP or peerSelector).",
    plural = "bgppeers",
    singular = "bgppeer",
    shortname = "bgpp",
    category = "gingham",
    printcolumn = r#"{"name":"PEERIP","type":"string","jsonPath":".spec.peerIP"}"#,
    printcolumn = r#"{"name":"PEERSELECTOR","type":"string","jsonPath":".spec.peerSelector"}"#,
    printcolumn = r#"{"name":"AS","type":"string","jsonPath":".spec.asNumber"}"#,
    printcolumn = r#"{"name":"NODE","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"NODESELECTOR","type":"string","jsonPath":".spec.nodeSelector"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.node) && self.node != '' && has(self.nodeSelector) && self.nodeSelector != '')")
    .message("node and nodeSelector cannot both be set: keep one"))]
#[x_kube(validation = Rule::new("!(has(self.peerIP) && self.peerIP != '' && has(self.peerSelector) && self.peerSelector != '')")
    .message("peerIP and peerSelector cannot both be set: keep one"))]
#[x_kube(validation = Rule::new("!(has(self.asNumber) && has(self.peerSelector) && self.peerSelector != '')")
    .message("asNumber must be empty when peerSelector is set: the selected nodes' own AS numbers are used"))]
#[x_kube(validation = Rule::new("!(has(self.keepOriginalNextHop) && self.keepOriginalNextHop && has(self.nextHopMode))")
    .message("keepOriginalNextHop and nextHopMode cannot both be set: use nextHopMode Keep"))]
pub struct BGPPeerSpec {
    /// The one node that peers (empty: see nodeSelector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,

    /// A selector over node labels choosing the nodes that peer. Empty with empty `node`: all nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,

    /// The peer's address, optionally with a port: `192.0.2.1`, `192.0.2.1:179`, `[2001:db8::1]:179`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(
        "isIP(self) || (self.startsWith('[') ? (self.contains(']:') && isIP(self.substring(1, self.lastIndexOf(']')))) : (self.contains(':') && isIP(self.substring(0, self.lastIndexOf(':')))))"
    ).message("peerIP must be an IP address, optionally with a port: 192.0.2.1, 192.0.2.1:179 or [2001:db8::1]:179"))]
    pub peer_ip: Option<String>,

    /// A selector over node labels choosing nodes to peer with (route reflectors, typically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,

    /// The peer's AS number (required with peerIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,

    /// The AS number this node presents to the peer instead of its own.
    #[serde(default, rename = "localASNumber", skip_serializing_if = "Option::is_none")]
    pub local_as_number: Option<AsNumber>,

    /// How many times the local AS may appear in a received AS path.
    #[serde(default, rename = "numAllowedLocalASNumbers", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub num_allowed_local_as_numbers: Option<u32>,

    /// The session password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,

    /// Which source address the session uses: UseNodeIP (default) or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,

    /// BGP keepalive time (e.g. `20s`), 1s to 21845s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) < duration('21846s')")
        .message("keepaliveTime must be from 1s to 21845s: BIRD's hold time (three keepalives) is at most 65535s"))]
    pub keepalive_time: Option<String>,

    /// How long the peer keeps routes during a graceful restart, under 4096s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) < duration('4096s')")
        .message("maxRestartTime must be under 4096s: the graceful-restart time has 12 bits"))]
    pub max_restart_time: Option<String>,

    /// What next hop to advertise: Auto, Self or Keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,

    /// Keep the original next hop (the older form of nextHopMode Keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_original_next_hop: Option<bool>,

    /// Names of BGPFilter resources to apply (accepted for compatibility; not implemented yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<String>>,

    /// Use TTL security with this many hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub ttl_security: Option<u8>,
}

/// The source address of a BGP session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SourceAddress {
    /// Use the node's address.
    UseNodeIP,
    /// Let the kernel choose.
    None,
}

/// Which next hop is advertised to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NextHopMode {
    /// BIRD's default: self for eBGP, kept for iBGP.
    Auto,
    /// Always this node.
    #[serde(rename = "Self")]
    SelfHop,
    /// The original next hop.
    Keep,
}

impl BGPConfigurationSpec {
    /// Whether the node-to-node mesh is on (default true).
    pub fn mesh_enabled(&self) -> bool {
        self.node_to_node_mesh_enabled.unwrap_or(true)
    }

    /// The cluster's default AS number.
    pub fn default_as_number(&self) -> u32 {
        self.as_number.as_ref().map_or(DEFAULT_AS_NUMBER, AsNumber::value)
    }
}
