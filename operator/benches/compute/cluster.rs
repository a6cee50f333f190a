//! The synthetic cluster the bench loads, and the changes it makes on it.
//!
//! 30 pods per node in namespaces of 150 pods (15 apps of 10 pods each), 10 policies per namespace
//! (8 gingham NetworkPolicies with same-namespace, named-port and cross-namespace rules, the latter
//! allowing traffic from 3 shared "platform" namespaces, and 2 Kubernetes NetworkPolicies), 2
//! GlobalNetworkPolicies, one VXLAN pool, BGP through 3 route reflectors (a full mesh of 5,000 nodes
//! is not a real deployment).

use std::collections::BTreeMap;

use gingham_crds::api::nodenetwork::{IpamUsage, LocalEndpoint};
use gingham_crds::api::policy::{Action, EntityRule, PolicyRule, PolicyType};
use gingham_crds::api::{
    BGPConfiguration, BGPConfigurationSpec, BGPPeer, BGPPeerSpec, EncapsulationMode, GlobalNetworkPolicy,
    GlobalNetworkPolicySpec, IPPool, IPPoolSpec, NetworkPolicy, NetworkPolicySpec, NodeNetworkStatus, Port, Protocol,
};
use gingham_operator::core::ClusterSnapshot;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Namespace, Node, Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub(crate) const PODS_PER_NODE: usize = 30;
pub(crate) const PODS_PER_NAMESPACE: usize = 150;
pub(crate) const APPS: usize = 15;

fn meta(namespace: Option<&str>, name: &str, labels: &[(&str, String)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()),
        ..ObjectMeta::default()
    }
}

pub(crate) fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// A pod scheduled to `node`, as every running pod of a real cluster is.
pub(crate) fn pod(namespace: &str, name: &str, app: usize, node: &str) -> Pod {
    let port = ContainerPort { name: Some("http".into()), container_port: 8080, ..ContainerPort::default() };
    Pod {
        metadata: meta(Some(namespace), name, &[("app", format!("a{app}"))]),
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), ports: Some(vec![port]), ..Container::default() }],
            node_name: Some(node.into()),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn rule(action: Action, source: EntityRule, ports: Option<Vec<Port>>) -> PolicyRule {
    PolicyRule {
        action,
        protocol: Some(Protocol::named("TCP")),
        source: Some(source),
        destination: ports.map(|p| EntityRule { ports: Some(p), ..EntityRule::default() }),
        ..PolicyRule::default()
    }
}

fn namespace_policies(ns: &str, index: usize) -> (Vec<NetworkPolicy>, Vec<KubeNetworkPolicy>) {
    let mut policies = Vec::new();
    for k in 0..8 {
        let from_app = EntityRule { selector: Some(format!("app == 'a{}'", (k + 1) % APPS)), ..EntityRule::default() };
        let from_platform = EntityRule {
            namespace_selector: Some("role == 'platform'".into()),
            selector: Some(format!("app == 'a{}'", k % 4)),
            ..EntityRule::default()
        };
        let spec = NetworkPolicySpec {
            order: Some(f64::from(u32::try_from(k).unwrap_or(0))),
            selector: Some(format!("app == 'a{k}'")),
            types: Some(vec![PolicyType::Ingress]),
            ingress: Some(vec![
                rule(Action::Allow, from_app, Some(vec![Port::named("http"), Port::number(80)])),
                rule(Action::Allow, from_platform, None),
                rule(
                    Action::Deny,
                    EntityRule { nets: Some(vec!["192.0.2.0/24".into()]), ..EntityRule::default() },
                    None,
                ),
            ]),
            ..NetworkPolicySpec::default()
        };
        policies.push(NetworkPolicy { metadata: meta(Some(ns), &format!("np-{k}"), &[]), spec });
    }
    let knps = (0..2)
        .map(|k| {
            let app = 8 + (index + k) % (APPS - 8);
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("knp-{k}"), "namespace": ns, "uid": format!("{ns}-{k}")},
                "spec": {
                    "podSelector": {"matchLabels": {"app": format!("a{app}")}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": format!("a{}", (app + 1) % APPS)}}}],
                                 "ports": [{"port": 8080}]}],
                },
            }))
            .unwrap_or_default()
        })
        .collect();
    (policies, knps)
}

pub(crate) fn cluster(nodes: usize) -> ClusterSnapshot {
    let pods = nodes * PODS_PER_NODE;
    let namespaces = pods / PODS_PER_NAMESPACE;
    let mut s = ClusterSnapshot::default();
    s.pools.push(IPPool {
        metadata: meta(None, "default", &[]),
        spec: IPPoolSpec { cidr: "10.0.0.0/8".into(), vxlan_mode: EncapsulationMode::Always, ..IPPoolSpec::default() },
        status: None,
    });
    let mesh_off = BGPConfigurationSpec { node_to_node_mesh_enabled: Some(false), ..BGPConfigurationSpec::default() };
    s.bgp_configurations.push(BGPConfiguration { metadata: meta(None, "default", &[]), spec: mesh_off });
    let to_rr = BGPPeerSpec {
        node_selector: Some("all()".into()),
        peer_selector: Some("has(rr)".into()),
        ..BGPPeerSpec::default()
    };
    s.bgp_peers.push(BGPPeer { metadata: meta(None, "to-rr", &[]), spec: to_rr });
    for i in 0..nodes {
        let mut labels = vec![("zone", format!("z{}", i % 10))];
        if i < 3 {
            labels.push(("rr", "yes".into()));
            labels.push(("gingham.dev/route-reflector-cluster-id", "1.0.0.1".into()));
        }
        let mut node = Node { metadata: meta(None, &node_name(i), &labels), ..Node::default() };
        let address =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(172, 16, 0, 1)) + u32::try_from(i).unwrap_or(0));
        node.metadata.annotations =
            Some(BTreeMap::from([("gingham.dev/ipv4-address".into(), format!("{address}/12"))]));
        s.nodes.push(node);
    }
    for n in 0..namespaces {
        let ns = format!("ns-{n:04}");
        let role = if n < 3 { "platform" } else { "tenant" };
        let labels = [("env", format!("e{}", n % 3)), ("role", role.to_string())];
        s.namespaces.push(Namespace { metadata: meta(None, &ns, &labels), ..Namespace::default() });
        let (policies, knps) = namespace_policies(&ns, n);
        s.network_policies.extend(policies);
        s.kube_network_policies.extend(knps);
    }
    for g in 0..2 {
        let spec = GlobalNetworkPolicySpec {
            order: Some(10.0 + f64::from(g)),
            selector: Some(if g == 0 { "all()".into() } else { "app == 'a14'".into() }),
            types: Some(vec![PolicyType::Ingress]),
            ingress: Some(vec![rule(
                Action::Deny,
                EntityRule { nets: Some(vec!["198.51.100.0/24".into()]), ..EntityRule::default() },
                None,
            )]),
            ..GlobalNetworkPolicySpec::default()
        };
        s.global_network_policies.push(GlobalNetworkPolicy { metadata: meta(None, &format!("gnp-{g}"), &[]), spec });
    }
    let mut statuses: Vec<NodeNetworkStatus> = vec![NodeNetworkStatus::default(); nodes];
    s.pods.reserve_exact(pods);
    for j in 0..pods {
        let ns = format!("ns-{:04}", j % namespaces);
        let name = format!("pod-{j}");
        let node = (j * 7919) % pods / PODS_PER_NODE;
        s.pods.push(pod(&ns, &name, (j / namespaces) % APPS, &node_name(node)));
        let status = &mut statuses[node];
        let slot = u32::try_from(status.endpoints.len()).unwrap_or(0) + 2;
        let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + u32::try_from(node).unwrap_or(0) * 64;
        let address = std::net::Ipv4Addr::from(base + slot).to_string();
        status.endpoints.push(LocalEndpoint {
            name: format!("{ns}/{name}"),
            uid: None,
            address: address.into(),
            addresses: Vec::new(),
            interface: String::new(),
        });
    }
    for (i, mut status) in statuses.into_iter().enumerate() {
        let allocated = u32::try_from(status.endpoints.len()).unwrap_or(0);
        status.endpoint_count = allocated;
        status.ipam = IpamUsage { allocated, capacity: 64, pressure: false };
        s.node_statuses.insert(node_name(i), status);
    }
    s
}

/// A GlobalNetworkPolicy picking one app's 10 pods in one namespace and allowing ingress from one
/// app of another namespace (a set cluster-wide in scope); `version` moves both between two
/// choices, so that every version is a real change.
pub(crate) fn narrow_global_policy(version: usize) -> GlobalNetworkPolicy {
    let source = format!("projectcalico.org/namespace == 'ns-0005' && app == 'a{}'", 1 + version % 2);
    let spec = GlobalNetworkPolicySpec {
        order: Some(20.0),
        selector: Some(format!("projectcalico.org/namespace == 'ns-000{}' && app == 'a3'", 3 + version % 2)),
        types: Some(vec![PolicyType::Ingress]),
        ingress: Some(vec![rule(Action::Allow, EntityRule { selector: Some(source), ..EntityRule::default() }, None)]),
        ..GlobalNetworkPolicySpec::default()
    };
    GlobalNetworkPolicy { metadata: meta(None, "gnp-narrow", &[]), spec }
}

/// `gnp-1` (`app == 'a14'`, a fifteenth of all pods) with its denied network moved between two.
pub(crate) fn wide_global_policy(version: usize) -> GlobalNetworkPolicy {
    let net = if version.is_multiple_of(2) { "203.0.113.0/24" } else { "198.51.100.0/24" };
    let spec = GlobalNetworkPolicySpec {
        order: Some(11.0),
        selector: Some("app == 'a14'".into()),
        types: Some(vec![PolicyType::Ingress]),
        ingress: Some(vec![rule(
            Action::Deny,
            EntityRule { nets: Some(vec![net.into()]), ..EntityRule::default() },
            None,
        )]),
        ..GlobalNetworkPolicySpec::default()
    };
    GlobalNetworkPolicy { metadata: meta(None, "gnp-1", &[]), spec }
}

/// Pod `pod-{j}` of the cluster, with its app label moved on by `shift`.
pub(crate) fn relabelled_pod(nodes: usize, j: usize, shift: usize) -> Pod {
    let pods = nodes * PODS_PER_NODE;
    let namespaces = pods / PODS_PER_NAMESPACE;
    let node = (j * 7919) % pods / PODS_PER_NODE;
    let app = ((j / namespaces) % APPS + shift) % APPS;
    pod(&format!("ns-{:04}", j % namespaces), &format!("pod-{j}"), app, &node_name(node))
}
