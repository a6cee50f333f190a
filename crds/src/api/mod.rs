//! The `gingham.dev/v1` resource types. Field names, enum values and defaults follow Calico's
//! `projectcalico.org/v3`, so a Calico manifest applies after changing only its `apiVersion`.

pub mod bgp;
pub mod common;
pub mod felix;
pub mod hostendpoint;
pub mod hostpolicy;
pub mod ipamblock;
pub mod ippool;
pub mod networkset;
pub mod nodenetwork;
pub mod policy;
pub mod protocol;
pub mod shared;
pub mod span;
pub mod tier;
pub mod value;

pub use bgp::{BGPConfiguration, BGPConfigurationSpec, BGPPeer, BGPPeerSpec};
pub use common::{AsNumber, Condition, EncapsulationMode, IntOrString, Port, PortSpec, Protocol};
pub use felix::{FelixConfiguration, FelixConfigurationSpec};
pub use hostendpoint::{HostEndpoint, HostEndpointSpec};
pub use ipamblock::{IPAMBlock, IPAMBlockSpec};
pub use ippool::{IPPool, IPPoolSpec, IPPoolStatus};
pub use networkset::{GlobalNetworkSet, GlobalNetworkSetSpec, NetworkSet, NetworkSetSpec};
pub use nodenetwork::{NodeNetwork, NodeNetworkSpec, NodeNetworkStatus};
pub use policy::{GlobalNetworkPolicy, GlobalNetworkPolicySpec, NetworkPolicy, NetworkPolicySpec, PolicyRule};
pub use protocol::IpProtocol;
pub use shared::Shared;
pub use tier::{Tier, TierSpec};
pub use value::{Cidr, Decode, IpFamily, IpSetMember, Mac, Net, SetMember, Wire};

/// The API group of every gingham resource.
pub const GROUP: &str = "gingham.dev";
/// The API version of every gingham resource.
pub const VERSION: &str = "v1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "gingham.dev/v1";
