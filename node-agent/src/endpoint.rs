//! Local endpoints (pods on this node), as the CNI plugin created them. The IPAM store owns and
//! persists them; the dataplane programs routes and policy for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use gingham_crds::api::nodenetwork::uid_matches;
use serde::{Deserialize, Serialize};

/// A pod on this node with its addresses (one per family it has) and host-side interface.
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
    /// The pod's IPv4 address; absent for an IPv6-only pod. (Endpoints written before dual-stack
    /// always have it, so they read unchanged.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The pod's IPv6 address; absent for an IPv4-only pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
}

impl LocalEndpoint {
    /// `namespace/pod`, the name NodeNetwork's policy uses.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }

    /// Every address of the pod, IPv4 first (the first is the primary, Kubernetes' `podIP`).
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.address.map(IpAddr::V4).into_iter().chain(self.address6.map(IpAddr::V6)).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_written_before_dual_stack_reads_unchanged_and_addresses_list_ipv4_first() {
        let old = r#"{"namespace":"default","pod":"web","uid":null,"container_id":"c1","interface":"gh1","address":"10.0.0.5"}"#;
        let endpoint: LocalEndpoint = serde_json::from_str(old).unwrap();
        assert_eq!(endpoint.addresses(), vec![IpAddr::from([10, 0, 0, 5])]);
        assert_eq!(serde_json::to_string(&endpoint).unwrap(), old, "an IPv4 endpoint writes as before");
        let dual = LocalEndpoint { address6: Some("fd00::5".parse().unwrap()), ..endpoint.clone() };
        assert_eq!(dual.addresses(), ["10.0.0.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
        let ipv6_only = LocalEndpoint { address: None, ..dual };
        assert_eq!(ipv6_only.addresses(), ["fd00::5".parse::<IpAddr>().unwrap()]);
        let text = serde_json::to_string(&ipv6_only).unwrap();
        assert!(!text.contains("\"address\""), "{text}");
    }
}
