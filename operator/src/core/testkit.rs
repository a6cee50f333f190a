//! Fixture builders for the core's tests: `pool("p", "10.0.0.0/16").vxlan()`,
//! `node("n1", "192.168.0.1/24").label("rr", "1")`, `pod("ns", "web").label("app", "web")`.

use std::collections::BTreeMap;

use gingham_crds::api::nodenetwork::{IpamUsage, LocalEndpoint};
use gingham_crds::api::{EncapsulationMode, IPAMBlock, IPAMBlockSpec, IPPool, IPPoolSpec, NodeNetworkStatus};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Namespace, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;

use super::facts::{ADDRESS_ANNOTATION, ADDRESS6_ANNOTATION};

/// Metadata helpers for every Kubernetes object.
pub trait Meta: Resource + Sized {
    /// Adds a label.
    fn label(mut self, key: &str, value: &str) -> Self {
        self.meta_mut().labels.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    /// Adds an annotation.
    fn annotate(mut self, key: &str, value: &str) -> Self {
        self.meta_mut().annotations.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    /// Sets the creation time, in seconds since the epoch.
    fn created(mut self, seconds: i64) -> Self {
        let timestamp = k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default();
        self.meta_mut().creation_timestamp = Some(Time(timestamp));
        self
    }

    /// Sets the uid.
    fn uid(mut self, uid: &str) -> Self {
        self.meta_mut().uid = Some(uid.into());
        self
    }
}

impl<T: Resource + Sized> Meta for T {}

/// Metadata with a name (and namespace).
pub fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), ..ObjectMeta::default() }
}

/// An IPv4 pool with defaults.
pub fn pool(name: &str, cidr: &str) -> IPPool {
    IPPool { metadata: meta(None, name), spec: IPPoolSpec { cidr: cidr.into(), ..IPPoolSpec::default() }, status: None }
}

/// Pool modifiers.
pub trait PoolExt {
    /// VXLAN Always.
    fn vxlan(self) -> Self;
    /// IPIP Always.
    fn ipip(self) -> Self;
    /// Disabled.
    fn disabled(self) -> Self;
    /// With this node selector.
    fn node_selector(self, selector: &str) -> Self;
}

impl PoolExt for IPPool {
    fn vxlan(mut self) -> Self {
        self.spec.vxlan_mode = EncapsulationMode::Always;
        self
    }
    fn ipip(mut self) -> Self {
        self.spec.ipip_mode = EncapsulationMode::Always;
        self
    }
    fn disabled(mut self) -> Self {
        self.spec.disabled = true;
        self
    }
    fn node_selector(mut self, selector: &str) -> Self {
        self.spec.node_selector = selector.into();
        self
    }
}

/// A node with its underlay addresses in gingham's annotations: an IPv4 one, an IPv6 one, or
/// both separated by a comma (`"10.0.0.1/24,fd00::1/64"`; `""`: no address).
pub fn node(name: &str, addresses: &str) -> Node {
    let mut node = Node { metadata: meta(None, name), ..Node::default() };
    for address in addresses.split(',').filter(|a| !a.is_empty()) {
        let key = if address.contains(':') { ADDRESS6_ANNOTATION } else { ADDRESS_ANNOTATION };
        node = node.annotate(key, address);
    }
    node
}

/// A pod with no labels.
pub fn pod(namespace: &str, name: &str) -> Pod {
    Pod { metadata: meta(Some(namespace), name), ..Pod::default() }
}

/// Schedules a pod to a node (`spec.nodeName`); `host_network` makes it a host-network pod.
pub fn scheduled(mut pod: Pod, node: &str, host_network: bool) -> Pod {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.node_name = Some(node.into());
    spec.host_network = host_network.then_some(true);
    pod
}

/// Adds a named TCP container port to a pod.
pub fn with_port(mut pod: Pod, name: &str, port: i32, protocol: &str) -> Pod {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    if spec.containers.is_empty() {
        spec.containers.push(Container { name: "main".into(), ..Container::default() });
    }
    if let Some(container) = spec.containers.first_mut() {
        container.ports.get_or_insert_with(Vec::new).push(ContainerPort {
            name: Some(name.into()),
            container_port: port,
            protocol: Some(protocol.into()),
            ..ContainerPort::default()
        });
    }
    pod
}

/// A namespace.
pub fn namespace(name: &str) -> Namespace {
    Namespace { metadata: meta(None, name), ..Namespace::default() }
}

/// A node status listing endpoints `(namespace/pod, address)`; a dual-stack pod's addresses are
/// separated by a comma (`"10.0.0.1,fd00::1"`).
pub fn status(endpoints: &[(&str, &str)]) -> NodeNetworkStatus {
    NodeNetworkStatus {
        endpoints: endpoints
            .iter()
            .map(|(name, address)| LocalEndpoint {
                name: (*name).into(),
                uid: None,
                address: address.split(',').next().unwrap_or_default().into(),
                addresses: if address.contains(',') {
                    address.split(',').map(Into::into).collect()
                } else {
                    Vec::new()
                },
                interface: String::new(),
            })
            .collect(),
        ..NodeNetworkStatus::default()
    }
}

/// A node status reporting IPAM use.
pub fn ipam_status(allocated: u32, capacity: u32, pressure: bool) -> NodeNetworkStatus {
    NodeNetworkStatus { ipam: IpamUsage { allocated, capacity, pressure }, ..NodeNetworkStatus::default() }
}

/// An assigned block as it was written earlier.
pub fn block(cidr: &str, node: &str, pool: &str) -> IPAMBlock {
    IPAMBlock {
        metadata: meta(None, &gingham_crds::naming::block_object_name(cidr)),
        spec: IPAMBlockSpec { cidr: cidr.into(), node: node.into(), pool: pool.into(), ..IPAMBlockSpec::default() },
    }
}

/// Runs a pod as a service account (`spec.serviceAccountName`).
pub fn with_account(mut pod: Pod, account: &str) -> Pod {
    pod.spec.get_or_insert_with(PodSpec::default).service_account_name = Some(account.into());
    pod
}

/// A ServiceAccount with labels.
pub fn service_account(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> k8s_openapi::api::core::v1::ServiceAccount {
    let account =
        k8s_openapi::api::core::v1::ServiceAccount { metadata: meta(Some(namespace), name), ..Default::default() };
    labels.iter().fold(account, |a, (k, v)| a.label(k, v))
}

/// An EndpointSlice of service `service` (named after it), with these addresses and
/// `(protocol, port)`s.
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    addresses: &[&str],
    ports: &[(&str, i32)],
) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
    EndpointSlice {
        metadata: meta(Some(namespace), &format!("{service}-slice")),
        address_type: "IPv4".into(),
        endpoints: addresses
            .iter()
            .map(|a| Endpoint { addresses: vec![(*a).to_string()], ..Endpoint::default() })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|(protocol, port)| EndpointPort {
                    protocol: Some((*protocol).into()),
                    port: Some(*port),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
    }
    .label(crate::core::compile::services::SERVICE_NAME_LABEL, service)
}
