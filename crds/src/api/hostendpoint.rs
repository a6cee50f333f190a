//! `HostEndpoint`: one or all of a node's own interfaces, labelled so that GlobalNetworkPolicies
//! select it (Calico's host endpoints). Policy applies to traffic to and from the host itself on
//! those interfaces; `applyOnForward` policies also to traffic forwarded through them, `preDNAT`
//! policies before DNAT, and `doNotTrack` policies untracked (see `docs/host-endpoints.md`).
//!
//! A host endpoint with no policy and no allowing profile drops everything but the failsafe
//! ports, as in Calico. The profile [`DEFAULT_ALLOW_PROFILE`] allows what no policy decides.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Protocol;

/// `interfaceName` of a host endpoint that stands for all of the node's interfaces (except the
/// pods' and `lo`).
pub const ALL_INTERFACES: &str = "*";

/// The profile that allows all traffic no policy decides (Calico's name, so Calico manifests and
/// automatic host endpoints keep their meaning).
pub const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";

/// The name of a node's automatic host endpoint (Calico's `<node>-auto-hep`).
pub fn auto_host_endpoint_name(node: &str) -> String {
    format!("{node}-auto-hep")
}

/// A host interface (or all of them) that policy can select.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "HostEndpoint",
    doc = "One or all (`*`) of a node's own interfaces, selected by GlobalNetworkPolicies through its labels.",
    plural = "hostendpoints",
    singular = "hostendpoint",
    shortname = "ghep",
    category = "gingham",
    printcolumn = r#"{"name":"NODE","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"INTERFACE","type":"string","jsonPath":".spec.interfaceName"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.interfaceName) && self.interfaceName != '') || (has(self.expectedIPs) && size(self.expectedIPs) > 0)")
    .message("at least one of interfaceName and expectedIPs must be set"))]
pub struct HostEndpointSpec {
    /// The node the interface belongs to.
    #[serde(default)]
    pub node: String,
    /// The interface's name, or `*` for all of the node's interfaces. Absent: the interface that
    /// holds one of `expectedIPs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// The interface's addresses. Rules that select the host endpoint match them.
    #[serde(default, rename = "expectedIPs", skip_serializing_if = "Option::is_none")]
    pub expected_ips: Option<Vec<String>>,
    /// Profiles, applied after the policies: only [`DEFAULT_ALLOW_PROFILE`] has a meaning in
    /// gingham (it allows what no policy decided); any other is reported and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
    /// Named ports on the interface, for rules that name ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<EndpointPort>>,
}

/// A named port of a host endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// The port's name.
    pub name: String,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The port number.
    pub port: u16,
}

impl HostEndpointSpec {
    /// Whether the endpoint stands for all of the node's interfaces.
    pub fn is_all_interfaces(&self) -> bool {
        self.interface_name.as_deref() == Some(ALL_INTERFACES)
    }

    /// Whether its profiles allow what no policy decides.
    pub fn default_allow(&self) -> bool {
        self.profiles.iter().flatten().any(|p| p == DEFAULT_ALLOW_PROFILE)
    }
}
