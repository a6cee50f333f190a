//! Facts the core reads off Kubernetes objects: a node's underlay address, AS number and route
//! reflector cluster id, a pod's endpoint labels and named ports, a namespace's labels.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use gingham_crds::api::{AsNumber, IpFamily};
use gingham_crds::selector::Labels;
use gingham_crds::validate::bird::{AS_NUMBERS, check_range};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Namespace, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ObjectProblem;

/// The annotation that gives a node's underlay address with its prefix, e.g. `192.168.10.2/24`.
pub const ADDRESS_ANNOTATION: &str = "gingham.dev/ipv4-address";
/// Calico's annotation for the same, read when gingham's is absent.
pub const CALICO_ADDRESS_ANNOTATION: &str = "projectcalico.org/IPv4Address";
/// The annotation that gives a node's IPv6 underlay address with its prefix, e.g. `fd00:10::2/64`.
pub const ADDRESS6_ANNOTATION: &str = "gingham.dev/ipv6-address";
/// Calico's annotation for the same, read when gingham's is absent.
pub const CALICO_ADDRESS6_ANNOTATION: &str = "projectcalico.org/IPv6Address";
/// The annotation that gives a node its BGP router id (dotted IPv4), Calico's Node
/// `spec.bgp.routerID`: needed on a node without IPv4 only, where it replaces the hashed id.
pub const ROUTER_ID_ANNOTATION: &str = "gingham.dev/bgp-router-id";
/// The annotation that gives a node its own AS number.
pub const AS_ANNOTATION: &str = "gingham.dev/as-number";
/// Calico's annotation for the same, read when gingham's is absent.
pub const CALICO_AS_ANNOTATION: &str = "projectcalico.org/ASNumber";
/// The label (or annotation) that makes a node a route reflector with this cluster id.
pub const RR_CLUSTER_ID_KEY: &str = "gingham.dev/route-reflector-cluster-id";
/// The implicit endpoint label holding the pod's namespace (Calico's name for it).
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";

/// What the core needs to know about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// The underlay IPv4 address with prefix; `None` when the node has none yet.
    pub address: Option<Ipv4Net>,
    /// The underlay IPv6 address with prefix; `None` when the node has none.
    pub address6: Option<Ipv6Net>,
    /// The BGP router id its annotation gives, when it gives one.
    pub router_id: Option<Ipv4Addr>,
    /// The AS number from the node's annotation, when it sets one.
    pub as_number: Option<u32>,
    /// The route reflector cluster id, when the node is a route reflector.
    ///
    /// Read from the **label** `gingham.dev/route-reflector-cluster-id` first, then from an annotation
    /// of the same key. The label is preferred because BGPPeer `peerSelector`s select route
    /// reflectors by label, so one label both marks the node and makes it selectable. Only a dotted
    /// IPv4 cluster id counts, as in Calico; any other value is reported and the node is no
    /// reflector.
    pub rr_cluster_id: Option<Ipv4Addr>,
}

impl NodeFacts {
    /// Reads the facts off a Node; problems (unparsable annotations) are returned alongside.
    pub fn from_node(node: &Node) -> (Self, Vec<ObjectProblem>) {
        let meta = &node.metadata;
        let name = meta.name.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let annotations = meta.annotations.clone().unwrap_or_default();
        let mut problems = Vec::new();
        let mut problem = |reason: &str, message: String| {
            problems.push(ObjectProblem {
                kind: "Node".into(),
                namespace: None,
                name: name.clone(),
                reason: reason.into(),
                message,
            });
        };
        let mut underlay = |keys: [&str; 2], family: IpFamily, example: &str| {
            let annotated = keys.iter().find_map(|key| annotations.get(*key).map(|text| (*key, text)));
            match annotated {
                Some((key, text)) => match text.parse::<IpNet>() {
                    Ok(net) if IpFamily::of_net(&net) == family => Some(net),
                    _ => {
                        problem(
                            "InvalidAddress",
                            format!(
                                "annotation {key} {text:?} is not an {family} address with prefix: write e.g. {example}"
                            ),
                        );
                        internal_ip(node, family)
                    }
                },
                None => internal_ip(node, family),
            }
        };
        let address = match underlay([ADDRESS_ANNOTATION, CALICO_ADDRESS_ANNOTATION], IpFamily::IPv4, "192.168.10.2/24")
        {
            Some(IpNet::V4(net)) => Some(net),
            _ => None,
        };
        let address6 =
            match underlay([ADDRESS6_ANNOTATION, CALICO_ADDRESS6_ANNOTATION], IpFamily::IPv6, "fd00:10::2/64") {
                Some(IpNet::V6(net)) => Some(net),
                _ => None,
            };
        let router_id = match annotations.get(ROUTER_ID_ANNOTATION) {
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(id) => Some(id),
                Err(_) => {
                    problem(
                        "InvalidRouterID",
                        format!(
                            "annotation {ROUTER_ID_ANNOTATION} {text:?} is not a dotted IPv4 router id: write e.g. 10.0.0.1"
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let as_number = match [AS_ANNOTATION, CALICO_AS_ANNOTATION].iter().find_map(|key| annotations.get(*key)) {
            Some(text) => match AsNumber::parse(text).and_then(|a| check_range("AS number", a.value(), &AS_NUMBERS)) {
                Ok(value) => Some(value),
                Err(message) => {
                    problem("InvalidASNumber", format!("annotation {AS_ANNOTATION}: {message}"));
                    None
                }
            },
            None => None,
        };
        let cluster_text = labels.get(RR_CLUSTER_ID_KEY).or_else(|| annotations.get(RR_CLUSTER_ID_KEY));
        let rr_cluster_id = match cluster_text.filter(|id| !id.is_empty()) {
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(id) => Some(id),
                Err(_) => {
                    problem(
                        "InvalidRouteReflectorClusterID",
                        format!(
                            "{RR_CLUSTER_ID_KEY} {text:?} is not a dotted IPv4 cluster id, so the node is not a route reflector: write e.g. 244.0.0.1"
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        (Self { name, labels, address, address6, router_id, as_number, rr_cluster_id }, problems)
    }

    /// The bare IPv4 underlay address.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.address.map(|net| net.addr())
    }

    /// The underlay address of a family, with its prefix.
    pub fn address_of(&self, family: IpFamily) -> Option<IpNet> {
        match family {
            IpFamily::IPv4 => self.address.map(IpNet::V4),
            IpFamily::IPv6 => self.address6.map(IpNet::V6),
        }
    }

    /// The bare underlay address of a family.
    pub fn ip_of(&self, family: IpFamily) -> Option<IpAddr> {
        self.address_of(family).map(|net| net.addr())
    }

    /// The BGP router id: the annotation's, else the IPv4 address, else Calico's hashed id of the
    /// node name ([`hashed_router_id`]). Always IPv4-shaped, as BGP's identifier is 32 bits.
    pub fn bgp_router_id(&self) -> Ipv4Addr {
        self.router_id.or_else(|| self.ip()).unwrap_or_else(|| hashed_router_id(&self.name))
    }
}

/// Calico's router id for a node without IPv4 (`CALICO_ROUTER_ID=hash`, confd's `hashToIPv4`):
/// the first four bytes of the SHA-256 of the node name, with a first byte above 223 lowered by
/// 32 (BGP refuses multicast and reserved ids). Stable, and the same id Calico gives the node.
pub fn hashed_router_id(node: &str) -> Ipv4Addr {
    let digest = ring::digest::digest(&ring::digest::SHA256, node.as_bytes());
    let bytes = digest.as_ref();
    let first = bytes.first().copied().unwrap_or(0);
    let first = if first > 223 { first - 32 } else { first };
    let byte = |at: usize| bytes.get(at).copied().unwrap_or(0);
    Ipv4Addr::new(first, byte(1), byte(2), byte(3))
}

/// The node's first InternalIP of a family, as a host prefix (its subnet is unknown).
fn internal_ip(node: &Node, family: IpFamily) -> Option<IpNet> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    addresses
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse::<IpAddr>().ok())
        .find(|ip| IpFamily::of(*ip) == family)
        .map(IpNet::from)
}

/// A named container port of a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// The IP protocol number (TCP when the pod does not say).
    pub protocol: u8,
    /// The port number.
    pub port: u16,
}

/// Labels as a sorted list: far smaller than a map for the few labels a pod has, and there are
/// many pods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelList(Vec<(String, String)>);

impl LabelList {
    /// The labels, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }
}

impl FromIterator<(String, String)> for LabelList {
    /// Collects labels; of repeated keys the first wins.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(labels: I) -> Self {
        let mut list: Vec<(String, String)> = labels.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.dedup_by(|later, earlier| later.0 == earlier.0);
        list.shrink_to_fit();
        Self(list)
    }
}

impl Labels for LabelList {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| self.0[i].1.as_str())
    }
}

/// What policy needs to know about a pod: its labels (with the implicit namespace label), named
/// ports, and the node it is scheduled to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFacts {
    /// The pod's labels plus `projectcalico.org/namespace`.
    pub labels: LabelList,
    /// The pod's named container ports, sorted.
    pub named_ports: Vec<NamedPort>,
    /// The node the pod is scheduled to (`spec.nodeName`), when the pod needs a pod network there:
    /// `None` for host-network pods, finished pods (phase Succeeded or Failed) and unscheduled
    /// ones. The operator compiles such a pod's policy into that node's NodeNetwork before the
    /// kubelet's CNI ADD, so ADD waits only for the agent.
    pub node: Option<String>,
    /// The Pod's `metadata.uid`: a pod re-created under the same name is another Pod, and the
    /// policy compiled for it carries its UID so that the agent never applies it to the other.
    pub uid: Option<String>,
    /// Its `cni.projectcalico.org/ipv4pools` and `ipv6pools` annotations, as written
    /// ([`crate::core::pod_pools`] resolves them).
    pub pool_annotations: [Option<String>; 2],
    /// Its `spec.serviceAccountName` (`None` when empty). The policy index sees it, with the
    /// account's labels, as pseudo-labels ([`PodFacts::with_service_account`]).
    pub service_account: Option<String>,
}

impl PodFacts {
    /// Facts of a pod known only by name (no Pod object): just the namespace label.
    pub fn bare(namespace: &str) -> Self {
        Self {
            labels: LabelList(vec![(NAMESPACE_LABEL.to_string(), namespace.to_string())]),
            named_ports: Vec::new(),
            node: None,
            uid: None,
            pool_annotations: [None, None],
            service_account: None,
        }
    }

    /// The facts as policy sees them (Calico's pseudo-labels): the pod's own labels without any
    /// that pretend to be a service account's, plus `projectcalico.org/serviceaccount: <name>`
    /// and the account's labels each under `pcsa.<key>` (`account_labels`: `None` while the
    /// ServiceAccount object is unknown: only the name label then). A pod without a service
    /// account and without such labels is returned as it is (shared, not copied).
    pub fn with_service_account(self: &Arc<Self>, account_labels: Option<&BTreeMap<String, String>>) -> Arc<Self> {
        if self.service_account.is_none() && !self.labels.iter().any(|(k, _)| is_service_account_label(k)) {
            return self.clone();
        }
        let own = self.labels.iter().filter(|(k, _)| !is_service_account_label(k)).cloned();
        let name = self.service_account.iter().map(|account| (SERVICE_ACCOUNT_LABEL.to_string(), account.clone()));
        let inherited = account_labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (format!("{SERVICE_ACCOUNT_LABEL_PREFIX}{k}"), v.clone()));
        Arc::new(Self { labels: own.chain(name).chain(inherited).collect(), ..(**self).clone() })
    }

    /// The pod's pool annotation of `family`, if it has one.
    pub fn pool_annotation(&self, family: IpFamily) -> Option<&str> {
        self.pool_annotations[usize::from(family == IpFamily::IPv6)].as_deref()
    }

    /// Reads the facts off a Pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let implicit = (NAMESPACE_LABEL.to_string(), namespace.to_string());
        let mut facts = Self {
            labels: std::iter::once(implicit)
                .chain(pod.metadata.labels.iter().flatten().map(|(k, v)| (k.clone(), v.clone())))
                .collect(),
            named_ports: Vec::new(),
            node: scheduled_node(pod),
            uid: pod.metadata.uid.clone().filter(|uid| !uid.is_empty()),
            pool_annotations: pool_annotations(&pod.metadata),
            service_account: pod
                .spec
                .as_ref()
                .and_then(|spec| spec.service_account_name.clone())
                .filter(|name| !name.is_empty()),
        };
        let containers = pod.spec.iter().flat_map(|spec| spec.containers.iter());
        for port in containers.flat_map(|c| c.ports.iter().flatten()) {
            let (Some(name), Ok(number)) = (port.name.as_ref(), u16::try_from(port.container_port)) else { continue };
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => 17,
                "SCTP" => 132,
                _ => 6,
            };
            facts.named_ports.push(NamedPort { name: name.clone(), protocol, port: number });
        }
        facts.named_ports.sort();
        facts.named_ports.dedup();
        facts.named_ports.shrink_to_fit();
        facts
    }
}

impl PodFacts {
    /// A Pod carrying exactly these facts (what the engine's store hands back in a snapshot).
    pub fn to_pod(&self, namespace: &str, name: &str) -> Pod {
        let labels: BTreeMap<String, String> =
            self.labels.iter().filter(|(k, _)| *k != NAMESPACE_LABEL).map(|(k, v)| (k.clone(), v.clone())).collect();
        let ports: Vec<ContainerPort> = self
            .named_ports
            .iter()
            .map(|p| ContainerPort {
                name: Some(p.name.clone()),
                container_port: i32::from(p.port),
                protocol: Some(match p.protocol {
                    17 => "UDP".into(),
                    132 => "SCTP".into(),
                    _ => "TCP".into(),
                }),
                ..ContainerPort::default()
            })
            .collect();
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(labels),
                annotations: self.pool_annotations.iter().any(Option::is_some).then(|| {
                    POOL_ANNOTATIONS
                        .iter()
                        .zip(&self.pool_annotations)
                        .filter_map(|(key, value)| Some((key.to_string(), value.clone()?)))
                        .collect()
                }),
                uid: self.uid.clone(),
                ..ObjectMeta::default()
            },
            spec: (!ports.is_empty() || self.node.is_some() || self.service_account.is_some()).then(|| PodSpec {
                containers: vec![Container { name: "main".into(), ports: Some(ports), ..Container::default() }],
                node_name: self.node.clone(),
                service_account_name: self.service_account.clone(),
                ..PodSpec::default()
            }),
            status: None,
        }
    }
}

/// An object's pool annotations (a Pod's or a Namespace's), IPv4 then IPv6.
pub fn pool_annotations(meta: &ObjectMeta) -> [Option<String>; 2] {
    POOL_ANNOTATIONS.map(|key| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned())
}

/// The pool annotations a pod's facts keep, IPv4 then IPv6.
const POOL_ANNOTATIONS: [&str; 2] =
    [gingham_crds::api::nodenetwork::IPV4_POOLS_ANNOTATION, gingham_crds::api::nodenetwork::IPV6_POOLS_ANNOTATION];

/// The node a pod is scheduled to, unless it has no pod network there (host network) or has
/// finished (its sandbox is gone).
fn scheduled_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let finished =
        pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
    if spec.host_network == Some(true) || finished {
        return None;
    }
    spec.node_name.clone().filter(|name| !name.is_empty())
}

/// The pseudo-label naming a pod's service account (Calico's `projectcalico.org/serviceaccount`).
pub const SERVICE_ACCOUNT_LABEL: &str = "projectcalico.org/serviceaccount";

/// The prefix under which a pod carries its service account's labels (Calico's `pcsa.`).
pub const SERVICE_ACCOUNT_LABEL_PREFIX: &str = "pcsa.";

/// Whether a label key is one of the service-account pseudo-labels, which a pod's own labels
/// cannot set (as Calico strips them, so that a pod cannot pretend to run as another account).
fn is_service_account_label(key: &str) -> bool {
    key == SERVICE_ACCOUNT_LABEL || key.starts_with(SERVICE_ACCOUNT_LABEL_PREFIX)
}

/// `namespace/name` of a pod, the name endpoints carry.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A namespace's labels, with the implicit `kubernetes.io/metadata.name` (set by the API server,
/// missing in hand-written files) and Calico's `projectcalico.org/name` filled in.
pub fn namespace_labels(namespace: &Namespace) -> BTreeMap<String, String> {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let mut labels = namespace.metadata.labels.clone().unwrap_or_default();
    labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| name.clone());
    labels.entry("projectcalico.org/name".into()).or_insert(name);
    labels
}

/// The labels of a namespace that has no Namespace object (only its implicit name labels).
pub fn implicit_namespace_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/metadata.name".to_string(), name.to_string()),
        ("projectcalico.org/name".to_string(), name.to_string()),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;

    use super::*;
    use crate::core::testkit::{Meta, node, pod, scheduled};

    #[test]
    fn only_a_dotted_ipv4_cluster_id_makes_a_route_reflector() {
        let hostile =
            "1.2.3.4;\n  }\nprotocol static evil { ipv4; route 10.244.1.7/32 via 10.0.0.9; }\nprotocol bgp x {";
        let cases: &[(&str, Option<Ipv4Addr>, &[&str])] = &[
            ("244.0.0.1", Some(Ipv4Addr::new(244, 0, 0, 1)), &[]),
            ("", None, &[]),
            (hostile, None, &["InvalidRouteReflectorClusterID"]),
            ("17", None, &["InvalidRouteReflectorClusterID"]),
            ("1.2.3.4 ", None, &["InvalidRouteReflectorClusterID"]),
            ("1.2.3.4\n", None, &["InvalidRouteReflectorClusterID"]),
        ];
        for (value, expected, reasons) in cases {
            for labelled in [true, false] {
                let base = node("n1", "10.0.0.1/24");
                let node = if labelled {
                    base.label(RR_CLUSTER_ID_KEY, value)
                } else {
                    base.annotate(RR_CLUSTER_ID_KEY, value)
                };
                let (facts, problems) = NodeFacts::from_node(&node);
                assert_eq!(facts.rr_cluster_id, *expected, "{value:?}");
                let got: Vec<&str> = problems.iter().map(|p| p.reason.as_str()).collect();
                assert_eq!(got, *reasons, "{value:?}");
            }
        }
    }

    #[test]
    fn underlay_addresses_come_from_annotations_or_internal_ips_per_family() {
        let internal = |addresses: &[&str]| {
            let mut node = node("n1", "10.0.0.1/24");
            let status = node.status.get_or_insert_default();
            status.addresses = Some(
                addresses
                    .iter()
                    .map(|a| k8s_openapi::api::core::v1::NodeAddress {
                        type_: "InternalIP".into(),
                        address: (*a).into(),
                    })
                    .collect(),
            );
            node.metadata.annotations = None;
            node
        };
        type Case = (&'static str, Node, Option<&'static str>, Option<&'static str>, &'static [&'static str]);
        let cases: Vec<Case> = vec![
            ("IPv4 annotation only", node("n1", "10.0.0.1/24"), Some("10.0.0.1/24"), None, &[]),
            (
                "gingham's IPv6 annotation",
                node("n1", "10.0.0.1/24").annotate(ADDRESS6_ANNOTATION, "fd00:10::2/64"),
                Some("10.0.0.1/24"),
                Some("fd00:10::2/64"),
                &[],
            ),
            (
                "Calico's IPv6 annotation",
                node("n1", "10.0.0.1/24").annotate(CALICO_ADDRESS6_ANNOTATION, "fd00:10::3/64"),
                Some("10.0.0.1/24"),
                Some("fd00:10::3/64"),
                &[],
            ),
            (
                "an IPv4 address in the IPv6 annotation",
                node("n1", "10.0.0.1/24").annotate(ADDRESS6_ANNOTATION, "10.0.0.9/24"),
                Some("10.0.0.1/24"),
                None,
                &["InvalidAddress"],
            ),
            (
                "dual-stack InternalIPs",
                internal(&["10.0.0.5", "fd00::5"]),
                Some("10.0.0.5/32"),
                Some("fd00::5/128"),
                &[],
            ),
            ("IPv6-only InternalIP", internal(&["fd00::6"]), None, Some("fd00::6/128"), &[]),
        ];
        for (case, node, v4, v6, reasons) in cases {
            let (facts, problems) = NodeFacts::from_node(&node);
            assert_eq!(facts.address.map(|a| a.to_string()).as_deref(), v4, "{case}");
            assert_eq!(facts.address6.map(|a| a.to_string()).as_deref(), v6, "{case}");
            let got: Vec<&str> = problems.iter().map(|p| p.reason.as_str()).collect();
            assert_eq!(got, reasons, "{case}");
        }
    }

    #[test]
    fn the_router_id_is_the_annotation_else_ipv4_else_calicos_hash() {
        let (dual, _) = NodeFacts::from_node(&node("n1", "10.0.0.1/24"));
        assert_eq!(dual.bgp_router_id(), Ipv4Addr::new(10, 0, 0, 1));
        let (annotated, problems) =
            NodeFacts::from_node(&node("n1", "10.0.0.1/24").annotate(ROUTER_ID_ANNOTATION, "192.0.2.7"));
        assert_eq!((annotated.bgp_router_id(), problems.len()), (Ipv4Addr::new(192, 0, 2, 7), 0));
        let (_, problems) = NodeFacts::from_node(&node("n1", "10.0.0.1/24").annotate(ROUTER_ID_ANNOTATION, "fd00::1"));
        assert_eq!(problems[0].reason, "InvalidRouterID");
        let ipv6_only = NodeFacts { address: None, ..dual };
        assert_eq!(ipv6_only.bgp_router_id(), hashed_router_id("n1"));
        // SHA-256("n1") = 67 6b 8b b8 ...; SHA-256("t") = e3 b9 8a 4d ... (0xe3 > 223: lowered by 32).
        assert_eq!(hashed_router_id("n1"), Ipv4Addr::new(0x67, 0x6b, 0x8b, 0xb8));
        assert_eq!(hashed_router_id("t"), Ipv4Addr::new(0xe3 - 32, 0xb9, 0x8a, 0x4d));
        assert_ne!(hashed_router_id("node-1"), hashed_router_id("node-2"));
    }

    #[test]
    fn an_as_number_bird_refuses_is_a_problem() {
        for (value, expected) in [("65001", Some(65001)), ("0", None), ("0.0", None), ("x", None)] {
            let (facts, problems) = NodeFacts::from_node(&node("n1", "10.0.0.1/24").annotate(AS_ANNOTATION, value));
            assert_eq!(facts.as_number, expected, "{value}");
            assert_eq!(problems.is_empty(), expected.is_some(), "{value}: {problems:?}");
        }
    }

    #[test]
    fn a_pod_is_placed_on_its_node_only_while_it_needs_a_pod_network_there() {
        let finished = |phase: &str| Pod {
            status: Some(PodStatus { phase: Some(phase.into()), ..PodStatus::default() }),
            ..scheduled(pod("ns", "job"), "n1", false)
        };
        let cases = [
            (pod("ns", "pending"), None),
            (scheduled(pod("ns", "web"), "n1", false), Some("n1")),
            (scheduled(pod("ns", "kube-proxy"), "n1", true), None),
            (scheduled(pod("ns", "blank"), "", false), None),
            (finished("Running"), Some("n1")),
            (finished("Succeeded"), None),
            (finished("Failed"), None),
        ];
        for (pod, expected) in cases {
            let facts = PodFacts::from_pod(&pod);
            assert_eq!(facts.node.as_deref(), expected, "{:?}", pod.metadata.name);
            assert_eq!(PodFacts::from_pod(&facts.to_pod("ns", "x")), facts, "to_pod keeps the facts");
        }
    }
}
