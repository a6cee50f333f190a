//! `IPAMBlock`: one block of a pool assigned to one node, with the routing facts every other node
//! needs to reach it. One object per block keeps a node join at O(1) writes.

use std::net::IpAddr;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::value::{Cidr, Mac, Net, Wire};

/// A block assigned to a node. Named after its CIDR (`10-244-0-64-26`).
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gingham.dev",
    version = "v1",
    kind = "IPAMBlock",
    doc = "A block of a pool assigned to one node, with the facts other nodes need to route to it.",
    plural = "ipamblocks",
    singular = "ipamblock",
    shortname = "ipb",
    category = "gingham",
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"NODE","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"POOL","type":"string","jsonPath":".spec.pool"}"#,
    printcolumn = r#"{"name":"TUNNEL","type":"string","jsonPath":".spec.tunnelAddress"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct IPAMBlockSpec {
    /// The block's CIDR. Immutable.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be a CIDR"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cidr is immutable"))]
    pub cidr: Wire<Cidr>,
    /// The node that owns the block.
    pub node: String,
    /// The pool the block was cut from.
    pub pool: String,
    /// The owner's underlay address with prefix length (e.g. `192.168.10.2/24`).
    pub node_address: Wire<Net>,
    /// The owner's tunnel address (VTEP or tunl0), when its pools encapsulate: the address its
    /// agent allocated through IPAM and reported in its NodeNetwork's `status.tunnelAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_address: Option<Wire<IpAddr>>,
    /// The owner's VTEP MAC, when its pools use VXLAN.
    #[serde(default, rename = "vtepMAC", skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<Wire<Mac>>,
    /// The block is being released: no new addresses are handed out from it.
    #[serde(default)]
    pub releasing: bool,
}
