//! Kubernetes NetworkPolicy semantics, end to end through translate → compile: each case states
//! in plain code which (source pod, destination pod, protocol, port) it allows, and the reference
//! evaluator checks every combination against the compiled NodeNetworks.

use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use serde_json::{Value, json};

use super::evaluator::{Packet, Side, allowed};
use crate::core::testkit::{Meta, namespace, node, pod, status, with_port};
use crate::core::{ClusterSnapshot, OperatorSettings, compute};

/// (name, namespace, labels, node, address, named ports)
type PodRow = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static [(&'static str, i32, &'static str)],
);

const PODS: &[PodRow] = &[
    ("web", "prod", &[("app", "web"), ("role", "frontend")], "a", "10.0.1.1", &[("http", 8080, "TCP")]),
    ("db", "prod", &[("app", "db")], "b", "10.0.1.2", &[("pg", 5432, "TCP")]),
    ("api", "prod", &[("app", "api")], "a", "10.0.1.3", &[("http", 8080, "TCP")]),
    ("web", "dev", &[("app", "web"), ("role", "frontend")], "b", "10.0.2.1", &[]),
    ("tool", "dev", &[("app", "tool")], "a", "10.0.2.2", &[("dns", 53, "UDP")]),
];

const TCP: u8 = 6;
const UDP: u8 = 17;
const PROBES: &[(u8, u16)] = &[(TCP, 80), (TCP, 5432), (TCP, 8080), (TCP, 8081), (UDP, 53)];

fn world(policies: &[Value]) -> ClusterSnapshot {
    let mut snapshot = ClusterSnapshot {
        nodes: vec![node("a", "192.168.0.1/24"), node("b", "192.168.0.2/24")],
        namespaces: vec![namespace("prod").label("env", "prod"), namespace("dev").label("env", "dev")],
        ..ClusterSnapshot::default()
    };
    for (name, ns, labels, _, _, ports) in PODS {
        let mut built = labels.iter().fold(pod(ns, name), |p, (k, v)| p.label(k, v));
        for (port_name, number, protocol) in ports.iter() {
            built = with_port(built, port_name, *number, protocol);
        }
        snapshot.pods.push(built);
    }
    for node_name in ["a", "b"] {
        let endpoints: Vec<(String, &str)> =
            PODS.iter().filter(|p| p.3 == node_name).map(|p| (format!("{}/{}", p.1, p.0), p.4)).collect();
        let refs: Vec<(&str, &str)> = endpoints.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        snapshot.node_statuses.insert(node_name.into(), status(&refs));
    }
    for (index, policy) in policies.iter().enumerate() {
        let mut spec = policy.clone();
        let ns = spec.as_object_mut().and_then(|o| o.remove("namespace")).unwrap_or_else(|| json!("prod"));
        let knp: KubeNetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": format!("p{index}"), "namespace": ns, "uid": format!("uid-{index}")},
            "spec": spec,
        }))
        .expect("the case's policy is a Kubernetes NetworkPolicy");
        snapshot.kube_network_policies.push(knp);
    }
    snapshot
}

/// A pod as the expectations see it.
#[derive(Clone, Copy)]
struct P {
    ns: &'static str,
    name: &'static str,
}

type Expect = fn(P, P, u8, u16) -> bool;

fn is(p: P, ns: &str, name: &str) -> bool {
    p.ns == ns && p.name == name
}

fn cases() -> Vec<(&'static str, Vec<Value>, Expect)> {
    vec![
        ("no policy: everything flows", vec![], |_, _, _, _| true),
        ("deny all ingress in prod", vec![json!({"podSelector": {}, "policyTypes": ["Ingress"]})], |_, d, _, _| {
            d.ns != "prod"
        }),
        ("allow all ingress with an empty rule", vec![json!({"podSelector": {}, "ingress": [{}]})], |_, _, _, _| true),
        (
            "podSelector alone means the policy's namespace only",
            vec![
                json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]}]}),
            ],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "prod", "web"),
        ),
        (
            "namespaceSelector alone means every pod there",
            vec![
                json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}]}),
            ],
            |s, d, _, _| !is(d, "prod", "db") || s.ns == "dev",
        ),
        (
            "namespaceSelector and podSelector together: both must hold",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"env": "dev"}}, "podSelector": {"matchLabels": {"role": "frontend"}}}
            ]}]})],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "dev", "web"),
        ),
        (
            "two peers in one rule are ORed",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"env": "dev"}}}, {"podSelector": {"matchLabels": {"app": "api"}}}
            ]}]})],
            |s, d, _, _| !is(d, "prod", "db") || s.ns == "dev" || is(s, "prod", "api"),
        ),
        (
            "ports: protocol defaults to TCP",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"ports": [{"port": 5432}]}]})],
            |_, d, proto, port| !is(d, "prod", "db") || (proto == TCP && port == 5432),
        ),
        (
            "endPort makes a range",
            vec![
                json!({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"ports": [{"port": 8000, "endPort": 8080}]}]}),
            ],
            |_, d, proto, port| !is(d, "prod", "api") || (proto == TCP && (8000..=8080).contains(&port)),
        ),
        (
            "named ports resolve per destination pod",
            vec![json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})],
            |_, d, proto, port| d.ns != "prod" || (d.name != "db" && proto == TCP && port == 8080),
        ),
        (
            "UDP ports",
            vec![json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP", "port": 53}]}]})],
            |_, d, proto, port| d.ns != "prod" || (proto == UDP && port == 53),
        ),
        (
            "a protocol without a port means all its ports",
            vec![
                json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}, {"protocol": "TCP", "port": 80}]}]}),
            ],
            |_, d, proto, port| d.ns != "prod" || proto == UDP || port == 80,
        ),
        (
            "ipBlock with except",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.0/24", "10.0.1.3/32"]}}
            ]}]})],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "prod", "web"),
        ),
        (
            "egress deny all",
            vec![json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]})],
            |s, _, _, _| !is(s, "prod", "web"),
        ),
        (
            "egress to a namespace on one port",
            vec![json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}], "ports": [{"port": 80}]}
            ]})],
            |s, d, proto, port| !is(s, "prod", "web") || (d.ns == "dev" && proto == TCP && port == 80),
        ),
        (
            "egress rules without policyTypes govern both directions",
            vec![
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}),
            ],
            |s, d, _, _| !is(d, "prod", "web") && (!is(s, "prod", "web") || is(d, "prod", "db")),
        ),
        (
            "policyTypes Ingress ignores egress rules",
            vec![
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"], "ingress": [{}], "egress": [{"to": [{"ipBlock": {"cidr": "1.2.3.4/32"}}]}]}),
            ],
            |_, _, _, _| true,
        ),
        (
            "matchExpressions: In and DoesNotExist",
            vec![json!({
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "api"]}]},
                "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "role", "operator": "DoesNotExist"}]}}]}],
            })],
            |s, d, _, _| !(is(d, "prod", "db") || is(d, "prod", "api")) || (s.ns == "prod" && s.name != "web"),
        ),
        (
            "matchExpressions: NotIn and Exists over namespaces",
            vec![json!({
                "podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"from": [{
                    "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
                    "podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web", "tool"]}]},
                }]}],
            })],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "prod", "api"),
        ),
        (
            "policies add up: the union of what each allows",
            vec![
                json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}),
                json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}),
            ],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "prod", "web") || is(s, "prod", "api"),
        ),
        (
            "a policy in another namespace does not touch prod",
            vec![json!({"namespace": "dev", "podSelector": {}, "policyTypes": ["Ingress", "Egress"]})],
            |s, d, _, _| s.ns != "dev" && d.ns != "dev",
        ),
    ]
}

#[test]
fn kubernetes_network_policies_allow_exactly_what_the_spec_says() {
    let mut failures = Vec::new();
    for (case, policies, expect) in cases() {
        let desired = compute(&world(&policies), &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        for src in PODS {
            for dst in PODS.iter().filter(|d| (d.0, d.1) != (src.0, src.1)) {
                for &(protocol, port) in PROBES {
                    let (src_name, dst_name) = (format!("{}/{}", src.1, src.0), format!("{}/{}", dst.1, dst.0));
                    let got = allowed(
                        &desired.node_networks,
                        Side { endpoint: &src_name, address: src.4, node: src.3 },
                        Side { endpoint: &dst_name, address: dst.4, node: dst.3 },
                        Packet { protocol, port },
                    );
                    let want = expect(P { ns: src.1, name: src.0 }, P { ns: dst.1, name: dst.0 }, protocol, port);
                    if got != want {
                        failures.push(format!(
                            "{case}: {src_name} -> {dst_name} {protocol}/{port}: got {got}, want {want}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn translations_are_named_owned_and_ordered() {
    let desired = compute(&world(&[json!({"podSelector": {}, "ingress": [{}]})]), &OperatorSettings::default());
    let policy = &desired.translated_policies[&("prod".to_string(), "knp.p0".to_string())];
    let owner = &policy.metadata.owner_references.as_ref().expect("an owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("NetworkPolicy", "p0", "uid-0"));
    assert_eq!(owner.api_version, "networking.k8s.io/v1");
    assert_eq!(policy.spec.order, Some(1000.0));
    assert_eq!(policy.spec.selector.as_deref(), Some("all()"));
}
