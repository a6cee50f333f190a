//! The engine against the oracle: over random event sequences, the incremental desired state
//! equals `compute` on the same objects, and `Changes` names every object that changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use gingham_crds::api::common::{AsNumber, BgpPassword, SecretKeySelector};
use gingham_crds::api::nodenetwork::{EndpointPolicy, tiered_policy_names};
use gingham_crds::api::policy::{Action, EntityRule, PolicyRule, PolicyType, ServiceAccountMatch, ServiceMatch};
use gingham_crds::api::{
    BGPConfiguration, BGPConfigurationSpec, BGPPeer, BGPPeerSpec, FelixConfiguration, FelixConfigurationSpec,
    GlobalNetworkPolicy, GlobalNetworkPolicySpec, NetworkPolicy, NetworkPolicySpec, Port, Protocol,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use proptest::prelude::*;
use serde_json::json;

use super::store::{Event, Kind, Object};
use super::*;
use crate::core::facts::RR_CLUSTER_ID_KEY;
use crate::core::testkit::{
    Meta, PoolExt, block, endpoint_slice, meta, namespace, node, pod, pool, scheduled, service_account, status,
    with_account, with_port,
};
use crate::core::{DesiredState, compute};

const PODS: usize = 6;

fn pod_name(j: usize) -> (String, String) {
    (format!("ns{}", j % 2), format!("pod{j}"))
}

fn rule(b: u8, c: u8) -> PolicyRule {
    let side = match b % 7 {
        5 => EntityRule {
            service_accounts: Some(ServiceAccountMatch {
                names: c.is_multiple_of(2).then(|| vec!["sa0".into()]),
                selector: Some("team == 't0'".into()),
            }),
            ..EntityRule::default()
        },
        6 => EntityRule {
            services: Some(ServiceMatch { name: "svc0".into(), namespace: None }),
            ..EntityRule::default()
        },
        0 => EntityRule { selector: Some("app == 'a0'".into()), ..EntityRule::default() },
        1 => EntityRule { namespace_selector: Some("env == 'e1'".into()), ..EntityRule::default() },
        2 => EntityRule {
            selector: Some("has(app)".into()),
            not_selector: Some("app == 'a2'".into()),
            ..EntityRule::default()
        },
        3 => EntityRule { nets: Some(vec!["10.9.0.0/24".into()]), ..EntityRule::default() },
        _ => EntityRule::default(),
    };
    let destination = match c % 4 {
        3 => EntityRule {
            services: Some(ServiceMatch { name: "svc0".into(), namespace: None }),
            ..EntityRule::default()
        },
        0 => EntityRule { ports: Some(vec![Port::named("http")]), ..EntityRule::default() },
        1 => EntityRule { ports: Some(vec![Port::number(80)]), ..EntityRule::default() },
        _ => EntityRule::default(),
    };
    let action = [Action::Allow, Action::Deny, Action::Log, Action::Pass][usize::from(c / 3 % 4)];
    PolicyRule {
        action,
        protocol: Some(Protocol::named("TCP")),
        source: Some(side),
        destination: Some(destination),
        ..PolicyRule::default()
    }
}

fn selector(b: u8) -> Option<String> {
    [None, Some("app == 'a1'"), Some("has(role)"), Some("app in {'a0', 'a2'}")][usize::from(b % 4)].map(Into::into)
}

fn knp(i: u8, b: u8) -> KubeNetworkPolicy {
    let spec = match b % 5 {
        0 => json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        1 => {
            json!({"podSelector": {"matchLabels": {"app": "a0"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a1"}}}]}]})
        }
        2 => {
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "e0"}}}], "ports": [{"port": "http"}]}]})
        }
        3 => {
            json!({"podSelector": {"matchLabels": {"app": "a2"}}, "egress": [{"to": [{"ipBlock": {"cidr": "10.9.0.0/16", "except": ["10.9.1.0/24"]}}]}]})
        }
        _ => json!({"podSelector": {}, "ingress": [{}], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
    };
    serde_json::from_value(json!({"metadata": {"name": format!("k{}", i % 2), "namespace": format!("ns{}", i % 2), "uid": "u"}, "spec": spec}))
        .unwrap()
}

/// One event from four small numbers: the kind, which object, and two knobs.
fn event(op: u8, a: u8, b: u8, c: u8) -> Event {
    let upsert = |o: Object| Event::Upsert(o);
    match op % 17 {
        0 => {
            let address =
                if b.is_multiple_of(5) { String::new() } else { format!("192.168.{}.{}/24", a % 2, a % 4 + 1) };
            let mut n = node(&format!("n{}", a % 4), &address).label("zone", &format!("z{}", b % 2));
            if c.is_multiple_of(3) {
                n = n.label(RR_CLUSTER_ID_KEY, "1.1.1.1").label("rr", "y");
            }
            upsert(Object::Node(n))
        }
        1 => {
            let cidr = ["10.0.0.0/24", "10.0.0.0/25", "10.1.0.0/24", "10.2.0.0/26"][usize::from(b % 4)];
            let mut p = pool(&format!("p{}", a % 3), cidr).created(i64::from(a % 3));
            p = match c % 4 {
                0 => p,
                1 => p.vxlan(),
                2 => p.ipip(),
                _ => p.disabled(),
            };
            upsert(Object::Pool(p.node_selector(["all()", "zone == 'z0'", "has(rr)"][usize::from(c / 4 % 3)])))
        }
        2 => {
            let cidr =
                ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26", "10.1.0.0/26", "10.1.0.64/26"][usize::from(b % 5)];
            let mut blk = block(cidr, &format!("n{}", a % 5), &format!("p{}", c % 3));
            if c.is_multiple_of(2) {
                blk.spec.tunnel_address = Some(cidr.replace(".0/26", ".1/26").replace("/26", "").into());
            }
            upsert(Object::Block(blk))
        }
        3 => {
            let endpoints: Vec<(String, String)> = (0..PODS)
                .filter(|j| b >> j & 1 == 1)
                .map(|j| {
                    let (ns, name) = pod_name(j);
                    (format!("{ns}/{name}"), format!("10.9.{}.{j}", c % 2))
                })
                .collect();
            let refs: Vec<(&str, &str)> = endpoints.iter().map(|(n, a)| (n.as_str(), a.as_str())).collect();
            let mut report = status(&refs);
            report.ipam.allocated = u32::from(c);
            report.ipam.capacity = 64 * u32::from(b % 3);
            report.ipam.pressure = c % 2 == 1;
            // A tunnel address inside one of the blocks above, or outside all of them.
            report.tunnel_address = (!b.is_multiple_of(4)).then(|| format!("10.{}.0.{}", b % 2, c % 128).into());
            upsert(Object::NodeStatus(format!("n{}", a % 5), report))
        }
        4 | 5 => {
            let (ns, name) = pod_name(usize::from(a) % PODS);
            let mut p = pod(&ns, &name).label("app", &format!("a{}", b % 3));
            if b.is_multiple_of(4) {
                p = p.label("role", "x");
            }
            if c % 2 == 1 {
                p = with_port(p, "http", 80 + i32::from(c % 4), "TCP");
            }
            if !c.is_multiple_of(3) {
                p = with_account(p, &format!("sa{}", c % 3 - 1));
            }
            match a / 8 % 4 {
                0 => {}
                1 => p = scheduled(p, "n0", false),
                2 => p = scheduled(p, &format!("n{}", b % 5), false),
                _ => p = scheduled(p, "n1", true),
            }
            upsert(Object::Pod(p))
        }
        6 => match c % 3 {
            0 => upsert(Object::Namespace(namespace(&format!("ns{}", a % 3)).label("env", &format!("e{}", b % 2)))),
            1 => upsert(Object::ServiceAccount(service_account(
                &format!("ns{}", a % 2),
                &format!("sa{}", b % 2),
                &[("team", &format!("t{}", c / 3 % 2))],
            ))),
            _ => {
                let addresses: Vec<String> =
                    (0..3).filter(|j| b >> j & 1 == 1).map(|j| format!("10.9.0.{j}")).collect();
                let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
                let port = 80 + i32::from(c / 3 % 2);
                upsert(Object::EndpointSlice(endpoint_slice(&format!("ns{}", a % 2), "svc0", &refs, &[("TCP", port)])))
            }
        },
        7 => {
            let types = [None, Some(vec![PolicyType::Ingress, PolicyType::Egress]), Some(vec![PolicyType::Egress])]
                [usize::from(c % 3)]
            .clone();
            let spec = NetworkPolicySpec {
                order: [None, Some(1.0), Some(2.0)][usize::from(b % 3)],
                selector: selector(c),
                types,
                ingress: Some(vec![rule(b, c), rule(c, b)]),
                egress: Some(vec![rule(b / 2, c / 2)]),
                ..NetworkPolicySpec::default()
            };
            let name = if a % 7 == 6 { "knp.k0".to_string() } else { format!("np{}", a % 3) };
            upsert(Object::NetworkPolicy(NetworkPolicy { metadata: meta(Some(&format!("ns{}", a % 2)), &name), spec }))
        }
        8 => {
            let spec = GlobalNetworkPolicySpec {
                order: Some(f64::from(b % 3)),
                selector: selector(b),
                namespace_selector: [None, Some("env == 'e0'"), Some("global()"), Some("bad ==")][usize::from(c % 4)]
                    .map(Into::into),
                ingress: Some(vec![rule(c, b)]),
                ..GlobalNetworkPolicySpec::default()
            };
            upsert(Object::GlobalNetworkPolicy(GlobalNetworkPolicy {
                metadata: meta(None, &format!("g{}", a % 2)),
                spec,
            }))
        }
        9 => upsert(Object::KubeNetworkPolicy(knp(a, b))),
        10 => {
            let spec = BGPConfigurationSpec {
                node_to_node_mesh_enabled: Some(b.is_multiple_of(2)),
                as_number: Some(AsNumber::new(64512 + u32::from(c % 2))),
                ..BGPConfigurationSpec::default()
            };
            upsert(Object::BgpConfiguration(BGPConfiguration { metadata: meta(None, "default"), spec }))
        }
        11 => {
            let password = Some(BgpPassword {
                secret_key_ref: Some(SecretKeySelector { name: "bgp".into(), key: "pw".into(), optional: None }),
            });
            let spec = match b % 3 {
                0 => BGPPeerSpec {
                    node_selector: Some("all()".into()),
                    peer_selector: Some("has(rr)".into()),
                    ..BGPPeerSpec::default()
                },
                1 => BGPPeerSpec {
                    peer_ip: Some("192.0.2.1".into()),
                    as_number: Some(AsNumber::new(65000)),
                    password,
                    ..BGPPeerSpec::default()
                },
                _ => BGPPeerSpec {
                    node_selector: Some("zone == 'z1'".into()),
                    peer_ip: Some(format!("192.0.2.{}:1179", c % 3 + 2)),
                    as_number: Some(AsNumber::new(65001)),
                    ..BGPPeerSpec::default()
                },
            };
            upsert(Object::BgpPeer(BGPPeer { metadata: meta(None, &format!("peer{}", a % 3)), spec }))
        }
        12 => {
            let name = if a.is_multiple_of(2) { "default".to_string() } else { "node.n0".to_string() };
            let spec = FelixConfigurationSpec {
                vxlan_vni: Some(4096 + u32::from(b % 3)),
                default_endpoint_to_host_action: ["Drop", "Accept", "Return"]
                    .get(usize::from(c % 4))
                    .map(|s| (*s).to_string()),
                log_severity_screen: (c.is_multiple_of(2)).then(|| "Debug".to_string()),
                route_refresh_interval: (b.is_multiple_of(2)).then(|| "30s".to_string()),
                ..FelixConfigurationSpec::default()
            };
            upsert(Object::FelixConfiguration(FelixConfiguration { metadata: meta(None, &name), spec }.uid("f")))
        }
        13 => {
            let ns = if b.is_multiple_of(3) { "elsewhere" } else { "gingham-system" };
            let data = BTreeMap::from([("pw".to_string(), ByteString(vec![b'a' + c % 3]))]);
            upsert(Object::Secret(Secret { metadata: meta(Some(ns), "bgp"), data: Some(data), ..Secret::default() }))
        }
        14 => {
            // Cluster policies with nodes peers: translated again when nodes change.
            let nodes = json!({"nodes": {"matchLabels": {"zone": format!("z{}", c % 2)}}});
            let all = json!({"namespaces": {}});
            let spec = |extra: serde_json::Value| {
                let mut spec = json!({"subject": {"namespaces": {"matchLabels": {"env": format!("e{}", b % 2)}}},
                    "ingress": [{"action": "Deny", "from": [all]}], "egress": [{"action": "Deny", "to": [nodes, {"networks": ["10.9.0.0/16"]}]}]});
                spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                spec
            };
            let object = |name: String, spec: serde_json::Value| json!({"metadata": {"name": name}, "spec": spec});
            upsert(match a % 3 {
                0 => Object::ClusterNetworkPolicy(
                    serde_json::from_value(object(
                        format!("c{}", c % 2),
                        spec(json!({"tier": (["Admin", "Baseline"][usize::from(b / 2 % 2)]), "priority": b % 4})),
                    ))
                    .unwrap(),
                ),
                1 => Object::AdminNetworkPolicy(
                    serde_json::from_value(object(format!("a{}", c % 2), spec(json!({"priority": b % 4})))).unwrap(),
                ),
                _ => Object::BaselineAdminNetworkPolicy(
                    serde_json::from_value(object(
                        ["default", "other"][usize::from(c.is_multiple_of(5))].into(),
                        spec(json!({})),
                    ))
                    .unwrap(),
                ),
            })
        }
        _ => {
            let kinds = [
                (Kind::ClusterNetworkPolicy, String::new(), format!("c{}", b % 2)),
                (Kind::AdminNetworkPolicy, String::new(), format!("a{}", b % 2)),
                (Kind::BaselineAdminNetworkPolicy, String::new(), "default".to_string()),
                (Kind::Node, String::new(), format!("n{}", b % 4)),
                (Kind::Pool, String::new(), format!("p{}", b % 3)),
                (
                    Kind::Block,
                    String::new(),
                    ["10-0-0-0-26", "10-0-0-64-26", "10-1-0-0-26"][usize::from(b % 3)].to_string(),
                ),
                (Kind::NodeStatus, String::new(), format!("n{}", b % 5)),
                (Kind::Pod, pod_name(usize::from(b) % PODS).0, pod_name(usize::from(b) % PODS).1),
                (Kind::Namespace, String::new(), format!("ns{}", b % 3)),
                (Kind::NetworkPolicy, format!("ns{}", b % 2), format!("np{}", b % 3)),
                (Kind::GlobalNetworkPolicy, String::new(), format!("g{}", b % 2)),
                (Kind::KubeNetworkPolicy, format!("ns{}", b % 2), format!("k{}", b % 2)),
                (Kind::BgpPeer, String::new(), format!("peer{}", b % 3)),
                (Kind::FelixConfiguration, String::new(), "node.n0".to_string()),
                (Kind::Secret, "gingham-system".to_string(), "bgp".to_string()),
                (Kind::ServiceAccount, format!("ns{}", b % 2), format!("sa{}", b / 2 % 2)),
                (Kind::EndpointSlice, format!("ns{}", b % 2), "svc0-slice".to_string()),
            ];
            let (kind, ns, name) = kinds[usize::from(c) % kinds.len()].clone();
            Event::Delete(kind, (ns, name))
        }
    }
}

/// Copies what `changes` names from `desired` into `mirror`, as a datastore would write it.
fn write(mirror: &mut DesiredState, desired: &DesiredState, changes: &Changes) {
    fn sync<K: Ord + Clone, V: Clone>(
        mirror: &mut BTreeMap<K, V>,
        desired: &BTreeMap<K, V>,
        keys: &std::collections::BTreeSet<K>,
    ) {
        for key in keys {
            match desired.get(key) {
                Some(value) => mirror.insert(key.clone(), value.clone()),
                None => mirror.remove(key),
            };
        }
    }
    sync(&mut mirror.node_networks, &desired.node_networks, &changes.node_networks);
    sync(&mut mirror.spans, &desired.spans, &changes.spans);
    sync(&mut mirror.blocks, &desired.blocks, &changes.blocks);
    sync(&mut mirror.pool_statuses, &desired.pool_statuses, &changes.pool_statuses);
    sync(&mut mirror.translated_policies, &desired.translated_policies, &changes.translated_policies);
    sync(
        &mut mirror.translated_global_policies,
        &desired.translated_global_policies,
        &changes.translated_global_policies,
    );
    if changes.agent_daemon_set {
        mirror.agent_daemon_set.clone_from(&desired.agent_daemon_set);
    }
    if changes.problems {
        mirror.problems.clone_from(&desired.problems);
    }
}

fn first_difference(a: &DesiredState, b: &DesiredState) -> String {
    for (name, spec) in &a.node_networks {
        if b.node_networks.get(name) != Some(spec) {
            return format!("node {name}:\n{spec:#?}\nvs\n{:#?}", b.node_networks.get(name));
        }
    }
    if a.node_networks.len() != b.node_networks.len() {
        return format!("node sets differ: {:?} vs {:?}", a.node_networks.keys(), b.node_networks.keys());
    }
    for (name, span) in &a.spans {
        if b.spans.get(name) != Some(span) {
            return format!("span of {name}:\n{span:#?}\nvs\n{:#?}", b.spans.get(name));
        }
    }
    if a.spans.len() != b.spans.len() {
        return format!("span sets differ: {:?} vs {:?}", a.spans.keys(), b.spans.keys());
    }
    if a.blocks != b.blocks {
        return format!("blocks:\n{:#?}\nvs\n{:#?}", a.blocks, b.blocks);
    }
    if a.problems != b.problems {
        return format!("problems:\n{:#?}\nvs\n{:#?}", a.problems, b.problems);
    }
    "elsewhere (pool statuses, translations or the DaemonSet)".into()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_full_recompute(events in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()), 1..60)) {
        let settings = OperatorSettings { max_blocks_per_node: 3, ..OperatorSettings::default() };
        let mut engine = Engine::new(settings.clone());
        let mut mirror = engine.desired().clone();
        engine.take_changes();
        for (index, (op, a, b, c)) in events.into_iter().enumerate() {
            engine.apply(event(op, a, b, c));
            let changes = engine.take_changes();
            write(&mut mirror, engine.desired(), &changes);
            if index % 8 == 7 {
                let full = compute(&engine.snapshot(), &settings);
                prop_assert!(engine.desired() == &full, "after event {index}: {}", first_difference(engine.desired(), &full));
            }
        }
        let full = compute(&engine.snapshot(), &settings);
        prop_assert!(engine.desired() == &full, "at the end: {}", first_difference(engine.desired(), &full));
        prop_assert!(&mirror == engine.desired(), "changes missed: {}", first_difference(&mirror, engine.desired()));
    }
}

/// A NetworkPolicy `name` in ns0 for the pods `selector` picks, allowing ingress from `app == 'a0'`.
fn allow_from_a0(name: &str, selector: &str) -> Event {
    let web = EntityRule { selector: Some("app == 'a0'".into()), ..EntityRule::default() };
    let spec = NetworkPolicySpec {
        selector: Some(selector.into()),
        ingress: Some(vec![PolicyRule { action: Action::Allow, source: Some(web), ..PolicyRule::default() }]),
        ..NetworkPolicySpec::default()
    };
    Event::Upsert(Object::NetworkPolicy(NetworkPolicy { metadata: meta(Some("ns0"), name), spec }))
}

#[test]
fn a_pod_label_change_rewrites_only_the_nodes_it_affects() {
    let mut engine = Engine::new(OperatorSettings::default());
    for n in 0..4 {
        engine.apply(event(0, n, 1, 1));
    }
    engine.apply(Event::Upsert(Object::Pod(pod("ns0", "pod0").label("app", "a0"))));
    engine.apply(Event::Upsert(Object::Pod(pod("ns0", "pod2").label("app", "a1"))));
    engine.apply(Event::Upsert(Object::NodeStatus("n0".into(), status(&[("ns0/pod0", "10.9.0.1")]))));
    engine.apply(Event::Upsert(Object::NodeStatus("n1".into(), status(&[("ns0/pod2", "10.9.0.2")]))));
    engine.take_changes();
    engine.apply(allow_from_a0("allow-a0", "app == 'a1'"));
    let changes = engine.take_changes();
    assert_eq!(changes.spans, ["n1".to_string()].into(), "only n1 hosts a selected pod");
    assert_eq!(changes.object_count(), 0, "a policy change writes no object: it is streamed");
    engine.apply(Event::Upsert(Object::Pod(pod("ns0", "pod0").label("app", "a9"))));
    let changes = engine.take_changes();
    assert_eq!(changes.spans, ["n1".to_string()].into(), "pod0 left the set n1 uses; n0 is untouched");
    assert_eq!(changes.object_count(), 0, "a relabel writes no object: it is streamed");
    let set = &engine.desired().spans["n1"].ip_sets[0];
    assert!(set.members.is_empty(), "{set:?}");
}

#[test]
fn a_scheduled_pod_has_its_policy_before_its_agent_reports_it() {
    let mut engine = Engine::new(OperatorSettings::default());
    for n in 0..2 {
        engine.apply(event(0, n, 1, 1));
    }
    engine.apply(allow_from_a0("from-a0", "all()"));
    engine.apply(Event::Upsert(Object::Pod(scheduled(pod("ns0", "host"), "n0", true))));
    engine.take_changes();
    let endpoints = |engine: &Engine, node: &str| -> Vec<(String, Vec<String>)> {
        let names = |e: &EndpointPolicy| tiered_policy_names(&e.ingress).cloned().collect();
        engine.desired().spans[node].endpoints.iter().map(|e| (e.name.clone(), names(e))).collect()
    };
    let members = |engine: &Engine| -> Vec<String> {
        engine.desired().spans["n1"].ip_sets.iter().flat_map(|s| s.members.iter().map(ToString::to_string)).collect()
    };
    assert!(endpoints(&engine, "n0").is_empty(), "a host-network pod is no endpoint");

    engine.apply(Event::Upsert(Object::Pod(scheduled(pod("ns0", "web").label("app", "a0"), "n1", false))));
    assert_eq!(engine.take_changes().spans, ["n1".to_string()].into());
    assert_eq!(endpoints(&engine, "n1"), [("ns0/web".to_string(), vec!["ns0/from-a0".to_string()])]);
    assert!(members(&engine).is_empty(), "no address yet, so in no set");

    engine.apply(Event::Upsert(Object::NodeStatus("n1".into(), status(&[("ns0/web", "10.9.0.7")]))));
    assert_eq!(members(&engine), ["10.9.0.7"]);
    engine.apply(Event::Upsert(Object::NodeStatus("n1".into(), status(&[]))));
    assert_eq!(endpoints(&engine, "n1").len(), 1, "still scheduled here: its policy stays for the next ADD");
    assert!(members(&engine).is_empty(), "its old address left the set");

    engine.apply(Event::Delete(Kind::Pod, ("ns0".into(), "web".into())));
    assert!(endpoints(&engine, "n1").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// The stream's view kept up to date from the engine's changes equals the view of the whole
    /// desired state, and a hub fed its batches serves every node exactly its span's items.
    #[test]
    fn the_stream_view_follows_the_engines_changes(events in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()), 1..60)) {
        use crate::core::span::StreamState;
        use gingham_stream::{Delivery, Hub};
        let settings = OperatorSettings { max_blocks_per_node: 3, ..OperatorSettings::default() };
        let mut engine = Engine::new(settings);
        let mut view = StreamState::of(engine.desired()).unwrap();
        let mut hub = Hub::new(8);
        engine.take_changes();
        for (index, (op, a, b, c)) in events.into_iter().enumerate() {
            engine.apply(event(op, a, b, c));
            let changes = engine.take_changes();
            let batch = view.update(engine.desired(), changes.spans.iter().map(String::as_str)).unwrap();
            hub.publish(u64::try_from(index).unwrap() + 1, batch).unwrap();
            let whole = StreamState::of(engine.desired()).unwrap();
            prop_assert!(view == whole, "after event {index}: {:?}\nvs\n{:?}", view.spans, whole.spans);
        }
        for (node, span) in &view.spans {
            let Delivery::Snapshot { items, .. } = hub.catch_up(node, None) else { panic!("no revision held: a snapshot") };
            prop_assert_eq!(items.keys().collect::<Vec<_>>(), span.iter().collect::<Vec<_>>());
            prop_assert!(items.iter().all(|(key, item)| **item == view.items[key]));
        }
    }
}

/// An agent reporting its IPv6 VTEP address (and nothing else new) gets it into its IPv6
/// IPAMBlock, so that the other nodes route that block over `vxlan6.gingham`.
#[test]
fn an_ipv6_tunnel_address_reported_alone_reaches_the_ipv6_block() {
    let mut engine = Engine::new(OperatorSettings::default());
    engine.apply(Event::Upsert(Object::Node(node("n0", "fd00:10::2/64"))));
    engine.apply(Event::Upsert(Object::Pool(pool("p6", "fd00:232::/48").vxlan())));
    let tunnel = |engine: &Engine| -> Vec<Option<String>> {
        engine.desired().blocks.values().map(|b| b.tunnel_address.as_ref().map(|a| a.as_str().to_string())).collect()
    };
    assert_eq!(tunnel(&engine), [None], "no VTEP address reported yet");
    engine.take_changes();
    let report = NodeNetworkStatus { tunnel_address6: Some("fd00:232::".into()), ..status(&[]) };
    engine.apply(Event::Upsert(Object::NodeStatus("n0".into(), report)));
    assert_eq!(tunnel(&engine), [Some("fd00:232::".to_string())]);
    assert_eq!(engine.take_changes().object_count(), 1, "the block is rewritten");
}

#[test]
fn a_service_account_label_change_moves_only_its_pods_in_the_sets_that_care() {
    let mut engine = Engine::new(OperatorSettings::default());
    for n in 0..3 {
        engine.apply(event(0, n, 1, 1));
    }
    engine.apply(Event::Upsert(Object::Pod(with_account(pod("ns0", "pod0"), "sa0"))));
    engine.apply(Event::Upsert(Object::Pod(with_account(pod("ns0", "pod1"), "sa1"))));
    engine.apply(Event::Upsert(Object::Pod(pod("ns0", "pod2").label("app", "a1"))));
    engine.apply(Event::Upsert(Object::NodeStatus("n0".into(), status(&[("ns0/pod0", "10.9.0.1")]))));
    engine.apply(Event::Upsert(Object::NodeStatus("n1".into(), status(&[("ns0/pod1", "10.9.0.2")]))));
    engine.apply(Event::Upsert(Object::NodeStatus("n2".into(), status(&[("ns0/pod2", "10.9.0.3")]))));
    let from_team = EntityRule {
        service_accounts: Some(ServiceAccountMatch { names: None, selector: Some("team == 't0'".into()) }),
        ..EntityRule::default()
    };
    let spec = NetworkPolicySpec {
        selector: Some("app == 'a1'".into()),
        ingress: Some(vec![PolicyRule { action: Action::Allow, source: Some(from_team), ..PolicyRule::default() }]),
        ..NetworkPolicySpec::default()
    };
    engine.apply(Event::Upsert(Object::NetworkPolicy(NetworkPolicy { metadata: meta(Some("ns0"), "team"), spec })));
    let members = |engine: &Engine| -> Vec<String> {
        engine.desired().spans["n2"].ip_sets.iter().flat_map(|s| s.members.iter().map(ToString::to_string)).collect()
    };
    assert!(members(&engine).is_empty(), "no account carries the label yet");
    engine.take_changes();

    engine.apply(Event::Upsert(Object::ServiceAccount(service_account("ns0", "sa0", &[("team", "t0")]))));
    assert_eq!(members(&engine), ["10.9.0.1"], "pod0 runs as sa0");
    assert_eq!(engine.take_changes().spans, ["n2".to_string()].into(), "only the node using the set");
    engine.apply(Event::Upsert(Object::ServiceAccount(service_account("ns0", "sa1", &[("team", "t1")]))));
    assert!(engine.take_changes().spans.is_empty(), "sa1's label is in no set: nothing changes");
    engine.apply(Event::Upsert(Object::ServiceAccount(service_account("ns1", "sa0", &[("team", "t1")]))));
    assert!(engine.take_changes().spans.is_empty(), "another namespace's sa0 is another account");
    engine.apply(Event::Delete(Kind::ServiceAccount, ("ns0".into(), "sa0".into())));
    assert!(members(&engine).is_empty());
    assert_eq!(compute(&engine.snapshot(), &OperatorSettings::default()).spans, engine.desired().spans);
}

#[test]
fn an_endpoint_slice_change_patches_only_the_service_set() {
    let mut engine = Engine::new(OperatorSettings::default());
    for n in 0..2 {
        engine.apply(event(0, n, 1, 1));
    }
    engine.apply(Event::Upsert(Object::Pod(pod("ns0", "pod0").label("app", "a1"))));
    engine.apply(Event::Upsert(Object::NodeStatus("n0".into(), status(&[("ns0/pod0", "10.9.0.1")]))));
    let to_service =
        EntityRule { services: Some(ServiceMatch { name: "svc0".into(), namespace: None }), ..EntityRule::default() };
    let spec = NetworkPolicySpec {
        selector: Some("app == 'a1'".into()),
        types: Some(vec![PolicyType::Egress]),
        egress: Some(vec![PolicyRule {
            action: Action::Allow,
            destination: Some(to_service),
            ..PolicyRule::default()
        }]),
        ..NetworkPolicySpec::default()
    };
    engine.apply(Event::Upsert(Object::NetworkPolicy(NetworkPolicy { metadata: meta(Some("ns0"), "svc"), spec })));
    engine.take_changes();
    let members = |engine: &Engine| -> Vec<String> {
        engine.desired().spans["n0"].ip_sets.iter().flat_map(|s| s.members.iter().map(ToString::to_string)).collect()
    };
    engine.apply(Event::Upsert(Object::EndpointSlice(endpoint_slice("ns0", "svc0", &["10.9.0.7"], &[("UDP", 53)]))));
    assert_eq!(members(&engine), ["10.9.0.7,udp,53"]);
    assert_eq!(engine.take_changes().spans, ["n0".to_string()].into());
    engine.apply(Event::Upsert(Object::EndpointSlice(endpoint_slice("ns1", "svc0", &["10.9.0.8"], &[("UDP", 53)]))));
    assert!(engine.take_changes().spans.is_empty(), "ns1's svc0 is another service");
    engine.apply(Event::Delete(Kind::EndpointSlice, ("ns0".into(), "svc0-slice".into())));
    assert!(members(&engine).is_empty());
    assert_eq!(compute(&engine.snapshot(), &OperatorSettings::default()).spans, engine.desired().spans);
}
