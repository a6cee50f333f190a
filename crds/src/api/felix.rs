//! `FelixConfiguration`: the node agent's knobs. The instance `default` applies to every node and
//! `node.<name>` overrides it for one node. Calico's field names are kept; fields gingham does not
//! act on are accepted so that Calico manifests apply unchanged, and say so in their description.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::protocol::IpProtocol;
use super::value::{Net, Wire};
use crate::validate::FieldError;

/// The VXLAN network identifier used when none is configured.
pub const DEFAULT_VXLAN_VNI: u32 = 4096;
/// The VXLAN UDP port used when none is configured.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// The overhead of a VXLAN header on IPv4, subtracted from the underlay MTU.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The overhead of an IP-in-IP header, subtracted from the underlay MTU.
pub const IPIP_OVERHEAD: u32 = 20;

/// The agent's configuration. Every field is optional; unset fields take the `default` instance's
/// value, then gingham's built-in default.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "FelixConfiguration",
    doc = "Node agent settings: `default` for every node, `node.<name>` overrides for one node.",
    plural = "felixconfigurations",
    singular = "felixconfiguration",
    shortname = "felixconfig",
    category = "gingham",
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("!has(self.spec.nodeSelector) || !(self.metadata.name == 'default' || self.metadata.name.startsWith('node.'))")
        .message("nodeSelector must not be set on the 'default' or a 'node.<name>' FelixConfiguration"),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct FelixConfigurationSpec {
    /// Log level: Trace, Debug, Info, Warning, Error or Fatal (case-insensitive). Default Info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(Trace|Debug|Info|Warning|Error|Fatal)?$"))]
    pub log_severity_screen: Option<String>,
    /// Log level for the log file (accepted for compatibility; the agent logs to stderr only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(Trace|Debug|Info|Warning|Error|Fatal)?$"))]
    pub log_severity_file: Option<String>,
    /// Log file path (accepted for compatibility; the agent logs to stderr only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file_path: Option<String>,
    /// Log prefix (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prefix: Option<String>,

    /// What happens to traffic from pods to their own node: Drop, Accept or Return (to host
    /// policy). Default Drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(Drop|Accept|Return)?$"))]
    pub default_endpoint_to_host_action: Option<String>,
    /// Inbound host ports that are always open, so the node stays reachable whatever the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_inbound_host_ports: Option<Vec<ProtoPort>>,
    /// Outbound host ports that are always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_outbound_host_ports: Option<Vec<ProtoPort>>,
    /// gingham's counterpart of Calico's `KubeControllersConfiguration`
    /// `controllers.node.hostEndpoint.autoCreate`: `Enabled` gives each node (or, in a
    /// `node.<name>` configuration, that node) a host endpoint `<node>-auto-hep` for all its
    /// interfaces (`*`), with the node's labels and addresses and the profile
    /// `projectcalico-default-allow`. Default `Disabled`. The operator computes it; no
    /// HostEndpoint object is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Enabled|Disabled)$"))]
    pub host_endpoint_auto_create: Option<String>,

    /// Enable IP-in-IP (set automatically from the pools; accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_enabled: Option<bool>,
    /// MTU of the IP-in-IP device. Unset or 0: detect from the underlay less 20.
    #[serde(default, rename = "ipipMTU", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub ipip_mtu: Option<u32>,
    /// Enable VXLAN (set automatically from the pools; accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_enabled: Option<bool>,
    /// MTU of the VXLAN device. Unset or 0: detect from the underlay less 50.
    #[serde(default, rename = "vxlanMTU", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub vxlan_mtu: Option<u32>,
    /// MTU of the IPv6 VXLAN device. Unset or 0: detect from the underlay less 70.
    #[serde(default, rename = "vxlanMTUV6", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub vxlan_mtu_v6: Option<u32>,
    /// The VXLAN UDP port. Default 4789.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub vxlan_port: Option<u16>,
    /// The VXLAN network identifier. Default 4096.
    #[serde(default, rename = "vxlanVNI", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777215))]
    pub vxlan_vni: Option<u32>,
    /// A regular expression choosing the interfaces whose MTU is used for auto-detection.
    #[serde(default, rename = "mtuIfacePattern", skip_serializing_if = "Option::is_none")]
    pub mtu_iface_pattern: Option<String>,
    /// Enable IPv6 (accepted; gingham's dataplane is IPv4 for now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_support: Option<bool>,
    /// WireGuard (accepted for compatibility; not implemented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_enabled: Option<bool>,
    /// WireGuard over IPv6 (accepted for compatibility; not implemented).
    #[serde(default, rename = "wireguardEnabledV6", skip_serializing_if = "Option::is_none")]
    pub wireguard_enabled_v6: Option<bool>,
    /// The source address for masqueraded traffic. Unset: the node's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("natOutgoingAddress must be an IPv4 address"))]
    pub nat_outgoing_address: Option<String>,

    /// How often routes are checked against the desired state (e.g. `90s`). Default 90s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub route_refresh_interval: Option<String>,
    /// How often the nftables ruleset is checked against the desired state. Default 90s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub nftables_refresh_interval: Option<String>,
    /// iptables refresh (accepted for compatibility; gingham uses nftables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub iptables_refresh_interval: Option<String>,
    /// ipset refresh (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub ipsets_refresh_interval: Option<String>,
    /// iptables lock probe interval (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub iptables_lock_probe_interval: Option<String>,
    /// iptables post-write check interval (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub iptables_post_write_check_interval: Option<String>,
    /// Netlink call timeout (e.g. `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub netlink_timeout: Option<String>,
    /// How often the agent reports status (`0s` disables periodic reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub reporting_interval: Option<String>,
    /// Status report time-to-live (accepted for compatibility).
    #[serde(default, rename = "reportingTTL", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub reporting_ttl: Option<String>,

    /// Insert or Append Calico's chains (case-insensitive; accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(insert|append)?$"))]
    pub chain_insert_mode: Option<String>,
    /// iptables filter allow action (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(Accept|Return)?$"))]
    pub iptables_filter_allow_action: Option<String>,
    /// iptables mangle allow action (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(?i)(Accept|Return)?$"))]
    pub iptables_mangle_allow_action: Option<String>,
    /// The packet-mark bits the dataplane may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_mark_mask: Option<u32>,
    /// The prefix of host-side pod interface names (accepted; gingham always uses `gh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_prefix: Option<String>,
    /// Maximum ipset size (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ipset_size: Option<i32>,
    /// Metadata server address (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_addr: Option<String>,
    /// Metadata server port (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_port: Option<i32>,
    /// The range of routing table indices the dataplane may use (1-250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table_range: Option<RouteTableRange>,

    /// Serve health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_enabled: Option<bool>,
    /// The health port. Default 9099.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub health_port: Option<u16>,
    /// Serve Prometheus metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_enabled: Option<bool>,
    /// The metrics port. Default 9091.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub prometheus_metrics_port: Option<u16>,
    /// Go runtime metrics (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_go_metrics_enabled: Option<bool>,
    /// Process metrics (accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_process_metrics_enabled: Option<bool>,
    /// Usage reporting (accepted; gingham never reports usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_reporting_enabled: Option<bool>,
    /// Only valid on FelixConfigurations other than `default` and `node.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
}

/// A protocol and port kept open whatever the policy (a failsafe).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtoPort {
    /// TCP or UDP.
    #[schemars(regex(pattern = r"^(TCP|UDP|SCTP)$"))]
    pub protocol: String,
    /// The port.
    pub port: u16,
    /// Only for this remote network (a CIDR); unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
}

/// A failsafe port, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failsafe {
    /// TCP, UDP or SCTP.
    pub protocol: IpProtocol,
    /// The port.
    pub port: u16,
    /// Only for this remote network; `None`: any.
    pub net: Option<Net>,
}

impl ProtoPort {
    /// Decodes the failsafe at `path` (e.g. `spec.failsafeInboundHostPorts[0]`), or every field
    /// that does not decode: the protocol must be written `TCP`, `UDP` or `SCTP`.
    pub fn decode(&self, path: &str) -> Result<Failsafe, Vec<FieldError>> {
        let mut errors = Vec::new();
        let protocol = IpProtocol::parse(&self.protocol)
            .filter(|p| p.supports_ports() && p.name() == Some(self.protocol.as_str()));
        if protocol.is_none() {
            errors.push(FieldError {
                path: format!("{path}.protocol"),
                message: format!("{:?} is not TCP, UDP or SCTP", self.protocol),
                hint: "use TCP, UDP or SCTP".into(),
            });
        }
        let net = match &self.net {
            Some(text) => match Wire::<Net>::new(text.as_str()).decoded(&format!("{path}.net")) {
                Ok(net) => Some(*net),
                Err(error) => {
                    errors.push(error);
                    None
                }
            },
            None => None,
        };
        match protocol {
            Some(protocol) if errors.is_empty() => Ok(Failsafe { protocol, port: self.port, net }),
            _ => Err(errors),
        }
    }
}

/// A range of routing table indices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("routeTableRange min must not exceed max"))]
pub struct RouteTableRange {
    /// The first table index (1-250).
    #[schemars(range(min = 1, max = 250))]
    pub min: u32,
    /// The last table index (1-250).
    #[schemars(range(min = 1, max = 250))]
    pub max: u32,
}

/// The failsafe ports Calico opens when none are configured: SSH, BGP, DHCP, DNS, etcd and the
/// Kubernetes API.
pub fn default_failsafe_inbound() -> Vec<ProtoPort> {
    [
        ("TCP", 22),
        ("UDP", 68),
        ("TCP", 179),
        ("TCP", 2379),
        ("TCP", 2380),
        ("TCP", 5473),
        ("TCP", 6443),
        ("TCP", 6666),
        ("TCP", 6667),
    ]
    .into_iter()
    .map(|(protocol, port)| ProtoPort { protocol: protocol.into(), port, net: None })
    .collect()
}

/// The outbound failsafe ports Calico opens when none are configured.
pub fn default_failsafe_outbound() -> Vec<ProtoPort> {
    [
        ("UDP", 53),
        ("UDP", 67),
        ("TCP", 179),
        ("TCP", 2379),
        ("TCP", 2380),
        ("TCP", 5473),
        ("TCP", 6443),
        ("TCP", 6666),
        ("TCP", 6667),
    ]
    .into_iter()
    .map(|(protocol, port)| ProtoPort { protocol: protocol.into(), port, net: None })
    .collect()
}

impl FelixConfigurationSpec {
    /// This spec with every field unset here taken from `base` (how `node.<name>` overrides
    /// `default`).
    pub fn merged_over(&self, base: &Self) -> Self {
        let ours = serde_json::to_value(self).unwrap_or_default();
        let mut merged = serde_json::to_value(base).unwrap_or_default();
        if let (Some(target), serde_json::Value::Object(fields)) = (merged.as_object_mut(), ours) {
            target.extend(fields);
        }
        serde_json::from_value(merged).unwrap_or_else(|_| self.clone())
    }
}
