//! What `services` matches resolve to: a Kubernetes Service's endpoints, read from its
//! EndpointSlices (`discovery.k8s.io/v1`, labelled `kubernetes.io/service-name`), as Calico's
//! Felix resolves them. Every address of every endpoint counts, ready or not (Felix does not look
//! at the conditions either), and the ports are the slices' ports: the pods' target ports.

use std::collections::BTreeSet;
use std::net::IpAddr;

use gingham_crds::api::{IpProtocol, IpSetMember, Net, SetMember};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label an EndpointSlice carries naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's endpoints: the union of its EndpointSlices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    /// Every endpoint address.
    pub addresses: BTreeSet<IpAddr>,
    /// Every port (protocol, number) the slices list.
    pub ports: BTreeSet<(IpProtocol, u16)>,
}

/// `(namespace, service name)` of the Service an EndpointSlice belongs to, when it says.
pub fn service_of(slice: &EndpointSlice) -> Option<(String, String)> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let namespace = slice.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    Some((namespace, name.clone()))
}

impl ServiceEndpoints {
    /// The union of these slices' endpoints. An address that does not parse (an FQDN slice) and a
    /// port without a number or with a protocol that has no ports are left out, with a log line.
    pub fn from_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        let mut service = Self::default();
        for slice in slices {
            let name = slice.metadata.name.as_deref().unwrap_or_default();
            for address in slice.endpoints.iter().flat_map(|e| e.addresses.iter()) {
                match address.parse::<IpAddr>() {
                    Ok(address) => {
                        service.addresses.insert(address);
                    }
                    Err(_) => tracing::debug!(slice = name, address, "not an IP address: left out of services matches"),
                }
            }
            for port in slice.ports.iter().flatten() {
                let protocol = IpProtocol::parse(port.protocol.as_deref().unwrap_or("TCP"));
                let number = port.port.and_then(|p| u16::try_from(p).ok());
                match (protocol.filter(|p| p.supports_ports()), number) {
                    (Some(protocol), Some(number)) => {
                        service.ports.insert((protocol, number));
                    }
                    _ => tracing::debug!(slice = name, ?port, "a port without number or protocol: left out"),
                }
            }
        }
        service
    }

    /// The members of a set of this service: its addresses, or with `ports` each address with
    /// each port (`address,protocol,port`).
    pub fn members(&self, ports: bool) -> Vec<IpSetMember> {
        if !ports {
            return self.addresses.iter().map(|a| IpSetMember::Address(Net::from(*a))).collect();
        }
        self.addresses
            .iter()
            .flat_map(|&addr| {
                self.ports.iter().map(move |&(proto, port)| IpSetMember::Port(SetMember { addr, proto, port }))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn slice(name: &str, service: &str, addresses: &[&str], ports: &[(&str, i32)]) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": addresses.iter().map(|a| serde_json::json!({"addresses": [a]})).collect::<Vec<_>>(),
            "ports": ports.iter().map(|(p, n)| serde_json::json!({"protocol": p, "port": n})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn slices_of_a_service_add_up_to_address_and_port_members() {
        let a = slice("web-a", "web", &["10.0.0.1", "not-an-ip"], &[("TCP", 8080)]);
        let b = slice("web-b", "web", &["10.0.0.2"], &[("UDP", 53), ("ICMP", 1)]);
        assert_eq!(service_of(&a), Some(("shop".into(), "web".into())));
        let service = ServiceEndpoints::from_slices([&a, &b]);
        let text = |ports| service.members(ports).iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(text(false), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            text(true),
            ["10.0.0.1,tcp,8080", "10.0.0.1,udp,53", "10.0.0.2,tcp,8080", "10.0.0.2,udp,53"],
            "every address with every port of the service (the slices are one service)"
        );
    }
}
