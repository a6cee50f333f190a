//! Local endpoints (pods on this node), as the CNI plugin created them. The IPAM store owns and
//! persists them; the dataplane programs routes and policy for them.

pub use gingham_crds::api::nodenetwork::uid_matches;
use serde::{Deserialize, Serialize};

/// A pod on this node with its address and host-side interface.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocalEndpoint {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The Pod's `metadata.uid` (`K8S_POD_UID`), when the runtime passed it.
    pub uid: Option<String>,
    /// The CNI container id.
    pub container_id: String,
    /// The host-side veth name (`gingham_crds::naming::endpoint_interface_name`).
    pub interface: String,
    /// The pod's IPv4 address.
    pub address: std::net::Ipv4Addr,
}

impl LocalEndpoint {
    /// `namespace/pod`, the name NodeNetwork's policy uses.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }

    /// Every address of the pod, IPv4 first.
    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        vec![self.address.into()]
    }
}
