//! Kubernetes NetworkPolicy semantics, end to end through translate → compile: each case states
//! in plain code which (source pod, destination pod, protocol, port) it allows, and the reference
//! evaluator checks every combination against the compiled NodeNetworks.

use k8s_openapi::api::networking::v1::NetworkPolicy as KubeNetworkPolicy;
use serde_json::{Value, json};

use super::world::{Expect, TCP, UDP, is, mismatches, outside, serves, world};
use crate::core::{ClusterSnapshot, OperatorSettings, compute};

fn world_with(policies: &[Value]) -> ClusterSnapshot {
    let mut snapshot = world();
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
            "ingress from a namespace on a named port: the port resolves on the selected pod",
            vec![json!({"podSelector": {}, "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}], "ports": [{"port": "http"}]
            }]})],
            |s, d, proto, port| d.ns != "prod" || (s.ns == "dev" && serves(d, "http", proto, port)),
        ),
        (
            "egress with only a named port: no peer restriction, the port resolves on the destination pod",
            vec![json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]})],
            |s, d, proto, port| s.ns != "prod" || serves(d, "http", proto, port),
        ),
        (
            "egress with only a named UDP port",
            vec![
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"protocol": "UDP", "port": "dns"}]}]}),
            ],
            |s, d, proto, port| s.ns != "prod" || serves(d, "dns", proto, port),
        ),
        (
            "egress to an ipBlock on a named port: only pods in the block that serve the port",
            vec![json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                "to": [{"ipBlock": {"cidr": "10.0.2.0/24"}}], "ports": [{"port": "http"}]
            }]})],
            |s, d, proto, port| s.ns != "prod" || (d.ns == "dev" && !d.v6 && serves(d, "http", proto, port)),
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
            |s, d, _, _| !is(d, "prod", "db") || (is(s, "prod", "web") && !s.v6),
        ),
        (
            "IPv6 ipBlock with except",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "fd00::/16", "except": ["fd00:2::/64"]}}
            ]}]})],
            |s, d, _, _| !is(d, "prod", "db") || (is(s, "prod", "web") && s.v6),
        ),
        (
            "ipBlocks of both families in one rule",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.2.0/24"}}, {"ipBlock": {"cidr": "fd00:2::/64"}}
            ]}]})],
            |s, d, _, _| !is(d, "prod", "db") || s.ns == "dev" || s.name == "10.0.2.99" || s.name == "fd00:2::99",
        ),
        (
            "IPv6 egress deny except to one IPv6 block: IPv4 is isolated too",
            vec![json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}
            ]})],
            |s, d, _, _| !is(s, "prod", "web") || d.name == "2001:db8::7",
        ),
        (
            "ipBlock outside the pod range admits that address only",
            vec![json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "192.0.2.0/24"}}
            ]}]})],
            |s, d, _, _| !is(d, "prod", "db") || (outside(s) && s.name == "192.0.2.7"),
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
        let desired = compute(&world_with(&policies), &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        failures.extend(mismatches(case, &desired, expect));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn translations_are_named_owned_and_ordered() {
    let desired = compute(&world_with(&[json!({"podSelector": {}, "ingress": [{}]})]), &OperatorSettings::default());
    let policy = &desired.translated_policies[&("prod".to_string(), "knp.p0".to_string())];
    let owner = &policy.metadata.owner_references.as_ref().expect("an owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("NetworkPolicy", "p0", "uid-0"));
    assert_eq!(owner.api_version, "networking.k8s.io/v1");
    assert_eq!(policy.spec.order, Some(1000.0));
    assert_eq!(policy.spec.selector.as_deref(), Some("all()"));
}
