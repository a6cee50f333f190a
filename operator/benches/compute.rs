//! The operator core on a synthetic cluster: full compute time, peak memory, incremental pod
//! add/delete time and objects written per pod event, at 500 and 5,000 nodes.
//!
//! `cargo bench -p gingham-operator --bench compute` prints a table (this is a benchmark, not a
//! timed test: it asserts nothing). `GINGHAM_BENCH_NODES=500` runs one size only.
//!
//! The cluster: 30 pods per node in namespaces of 150 pods (15 apps of 10 pods each), 10 policies
//! per namespace (8 gingham NetworkPolicies with same-namespace, named-port and cross-namespace
//! rules, the latter allowing traffic from 3 shared "platform" namespaces, and 2 Kubernetes
//! NetworkPolicies), 2 GlobalNetworkPolicies, one VXLAN pool, BGP through 3 route reflectors (a
//! full mesh of 5,000 nodes is not a real deployment).
//!
//! Full compute is loading the whole snapshot into the engine in one batch (`Engine::load`, as the
//! controller does with a snapshot; `core::compute` does the same on a copy), which consumes the
//! snapshot. Peak RSS is the process's high-water mark, so it includes the bench's own input
//! objects (150k `Pod`s at 5,000 nodes) while they are being taken in.
//!
//! A second table times single changes on the loaded engine: a GlobalNetworkPolicy changed (one
//! picking 10 pods, and `gnp-1`, picking a fifteenth of all pods) and one pod's labels changed (a
//! tenant pod, and a platform pod, which is in sets every node uses). Its rows have 6 cells.
//!
//! Every NodeNetwork carries the sets its policies use, but the operator holds one copy of each
//! set and compiled policy, shared by the nodes that use it. A change to a set that every node
//! uses (a pod in a namespace selected cluster-wide) still rewrites every NodeNetwork: that is the
//! contract (DESIGN.md), in which each node's object is self-contained.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use gingham_crds::api::nodenetwork::{IpamUsage, LocalEndpoint};
use gingham_crds::api::policy::{Action, EntityRule, PolicyRule, PolicyType};
use gingham_crds::api::{
    BGPConfiguration, BGPConfigurationSpec, BGPPeer, BGPPeerSpec, EncapsulationMode, GlobalNetworkPolicy,
    GlobalNetworkPolicySpec, IPPool, IPPoolSpec, NetworkPolicy, NetworkPolicySpec, NodeNetworkStatus, Port, Protocol,
};
use gingham_operator::core::engine::store::{Kind, Object};
use gingham_operator::core::engine::{Engine, Event};
use gingham_operator::core::{ClusterSnapshot, OperatorSettings};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Namespace, Node, Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const PODS_PER_NODE: usize = 30;
const PODS_PER_NAMESPACE: usize = 150;
const APPS: usize = 15;

fn meta(namespace: Option<&str>, name: &str, labels: &[(&str, String)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()),
        ..ObjectMeta::default()
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// A pod scheduled to `node`, as every running pod of a real cluster is.
fn pod(namespace: &str, name: &str, app: usize, node: &str) -> Pod {
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

fn cluster(nodes: usize) -> ClusterSnapshot {
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

fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Figures for one kind of pod event.
struct Churn {
    /// Mean time of a pod add (Pod event plus the node's report).
    add: Duration,
    /// Mean time of a pod delete.
    delete: Duration,
    /// Objects written per pod add: median and maximum.
    add_writes: (usize, usize),
    /// Objects written per pod delete: median and maximum.
    delete_writes: (usize, usize),
}

fn median_and_max(mut values: Vec<usize>) -> (usize, usize) {
    values.sort_unstable();
    (values.get(values.len() / 2).copied().unwrap_or(0), values.last().copied().unwrap_or(0))
}

/// Adds then deletes `rounds` pods one at a time in the given namespaces (a Pod event and the
/// node's report each way).
fn pod_churn(
    engine: &mut Engine,
    reports: &BTreeMap<String, NodeNetworkStatus>,
    nodes: usize,
    namespaces: &[usize],
    rounds: usize,
) -> Churn {
    let (mut add, mut delete) = (Duration::ZERO, Duration::ZERO);
    let (mut add_writes, mut delete_writes) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let node = (r * 104_729) % nodes;
        let node_key = node_name(node);
        let ns = format!("ns-{:04}", namespaces[r % namespaces.len()]);
        let name = format!("bench-{r}");
        let before = reports.get(&node_key).cloned().unwrap_or_default();
        let mut after = before.clone();
        let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + u32::try_from(node).unwrap_or(0) * 64;
        let address = std::net::Ipv4Addr::from(base + 60).to_string();
        after.endpoints.push(LocalEndpoint {
            name: format!("{ns}/{name}"),
            uid: None,
            address: address.into(),
            interface: String::new(),
        });
        after.ipam.allocated += 1;
        let new_pod = pod(&ns, &name, r % APPS, &node_key);
        engine.take_changes();
        let start = Instant::now();
        engine.apply(Event::Upsert(Object::Pod(new_pod)));
        engine.apply(Event::Upsert(Object::NodeStatus(node_key.clone(), after)));
        add += start.elapsed();
        add_writes.push(engine.take_changes().object_count());
        let start = Instant::now();
        engine.apply(Event::Upsert(Object::NodeStatus(node_key, before)));
        engine.apply(Event::Delete(Kind::Pod, (ns, name)));
        delete += start.elapsed();
        delete_writes.push(engine.take_changes().object_count());
    }
    let n = u32::try_from(rounds).unwrap_or(1);
    Churn {
        add: add / n,
        delete: delete / n,
        add_writes: median_and_max(add_writes),
        delete_writes: median_and_max(delete_writes),
    }
}

/// Mean time and objects written (median, max) of single changes.
struct Timed {
    mean: Duration,
    writes: (usize, usize),
}

/// Applies `rounds` changes one at a time (each a few events), timing each and counting what it
/// writes.
fn timed(engine: &mut Engine, rounds: usize, mut change: impl FnMut(usize) -> Vec<Event>) -> Timed {
    let (mut total, mut writes) = (Duration::ZERO, Vec::new());
    for r in 0..rounds {
        let events = change(r);
        engine.take_changes();
        let start = Instant::now();
        for event in events {
            engine.apply(event);
        }
        total += start.elapsed();
        writes.push(engine.take_changes().object_count());
    }
    Timed { mean: total / u32::try_from(rounds).unwrap_or(1), writes: median_and_max(writes) }
}

/// A GlobalNetworkPolicy picking one app's 10 pods in one namespace and allowing ingress from one
/// app of another namespace (a set cluster-wide in scope); `version` moves both between two
/// choices, so that every version is a real change.
fn narrow_global_policy(version: usize) -> GlobalNetworkPolicy {
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
fn wide_global_policy(version: usize) -> GlobalNetworkPolicy {
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
fn relabelled_pod(nodes: usize, j: usize, shift: usize) -> Pod {
    let pods = nodes * PODS_PER_NODE;
    let namespaces = pods / PODS_PER_NAMESPACE;
    let node = (j * 7919) % pods / PODS_PER_NODE;
    let app = ((j / namespaces) % APPS + shift) % APPS;
    pod(&format!("ns-{:04}", j % namespaces), &format!("pod-{j}"), app, &node_name(node))
}

/// A change by round number, as the events that make it.
type Change = Box<dyn Fn(usize) -> Vec<Event>>;

/// Times policy and label changes on the loaded engine, as rows of the second table.
fn change_rows(engine: &mut Engine, nodes: usize) -> Vec<String> {
    let pods = nodes * PODS_PER_NODE;
    let namespaces = pods / PODS_PER_NAMESPACE;
    engine.apply(Event::Upsert(Object::GlobalNetworkPolicy(narrow_global_policy(0))));
    // pod-10 lives in a tenant namespace, pod-1 in a platform one (selected cluster-wide).
    let (tenant, platform) = (namespaces * 10 + 10, 1);
    let cases: [(&str, usize, Change); 4] = [
        (
            "GlobalNetworkPolicy changed: selector and rule (10 pods selected)",
            20,
            Box::new(|r| vec![Event::Upsert(Object::GlobalNetworkPolicy(narrow_global_policy(r + 1)))]),
        ),
        (
            "GlobalNetworkPolicy changed: rule of gnp-1 (a fifteenth of all pods selected)",
            4,
            Box::new(|r| vec![Event::Upsert(Object::GlobalNetworkPolicy(wide_global_policy(r)))]),
        ),
        (
            "pod label changed: tenant pod",
            20,
            Box::new(move |r| vec![Event::Upsert(Object::Pod(relabelled_pod(nodes, tenant, (r + 1) % 2)))]),
        ),
        (
            "pod label changed: platform pod (in sets used cluster-wide)",
            4,
            Box::new(move |r| vec![Event::Upsert(Object::Pod(relabelled_pod(nodes, platform, (r + 1) % 2)))]),
        ),
    ];
    cases
        .into_iter()
        .map(|(label, rounds, change)| {
            let t = timed(engine, rounds, change);
            format!(
                "| {nodes} | {pods} | {label} | {rounds} | {:.0} µs | {}, {} |",
                t.mean.as_secs_f64() * 1e6,
                t.writes.0,
                t.writes.1
            )
        })
        .collect()
}

fn main() {
    let sizes: Vec<usize> = match std::env::var("GINGHAM_BENCH_NODES").ok().and_then(|v| v.parse().ok()) {
        Some(n) => vec![n],
        None => vec![500, 5000],
    };
    println!(
        "| nodes | pods | policies | full compute | peak RSS (VmHWM) | namespace of the pod | pod add | pod delete | writes/add (median, max) | writes/delete (median, max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut changes = Vec::new();
    for nodes in sizes {
        let snapshot = cluster(nodes);
        let policies = snapshot.network_policies.len()
            + snapshot.kube_network_policies.len()
            + snapshot.global_network_policies.len();
        let pods = snapshot.pods.len();
        let reports = snapshot.node_statuses.clone();
        let start = Instant::now();
        let mut engine = Engine::load(snapshot, OperatorSettings::default());
        black_box(engine.desired());
        let full = start.elapsed();
        let peak = peak_memory_mib();
        let namespaces = nodes * PODS_PER_NODE / PODS_PER_NAMESPACE;
        let tenants: Vec<usize> = (3..namespaces).collect();
        let platform: Vec<usize> = (0..3).collect();
        for (label, chosen, rounds) in
            [("tenant (typical)", &tenants, 200), ("platform (selected cluster-wide)", &platform, 20)]
        {
            let churn = pod_churn(&mut engine, &reports, nodes, chosen, rounds);
            println!(
                "| {nodes} | {} | {policies} | {:.2} s | {peak:.0} MiB | {label} | {:.0} µs | {:.0} µs | {}, {} | {}, {} |",
                pods,
                full.as_secs_f64(),
                churn.add.as_secs_f64() * 1e6,
                churn.delete.as_secs_f64() * 1e6,
                churn.add_writes.0,
                churn.add_writes.1,
                churn.delete_writes.0,
                churn.delete_writes.1,
            );
        }
        changes.extend(change_rows(&mut engine, nodes));
    }
    println!();
    println!("| nodes | pods | change on the loaded engine | rounds | mean time | writes (median, max) |");
    println!("|---|---|---|---|---|---|");
    changes.iter().for_each(|row| println!("{row}"));
}
