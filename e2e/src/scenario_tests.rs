#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn the_default_scenario_is_valid() {
    let scenario = parse(DEFAULT_SCENARIO).unwrap();
    assert_eq!(scenario.prefix, "ghlab");
    assert_eq!(scenario.nodes.len(), 3);
    assert!(scenario.namespaces.iter().any(|n| n.name == "prod" && n.labels.get("env").is_some_and(|v| v == "prod")));
    assert_eq!(scenario.objects.len(), 2);
}

#[test]
fn the_dual_stack_scenario_is_valid_with_both_families_everywhere() {
    let scenario = parse(include_str!("../scenarios/dual-stack.yaml")).unwrap();
    assert!(scenario.subnets.iter().all(|s| s.v4.is_some() && s.v6.is_some()));
    let cidrs: Vec<&str> =
        scenario.objects.iter().filter_map(|o| o.pointer("/spec/cidr").and_then(serde_json::Value::as_str)).collect();
    assert_eq!(cidrs, ["10.232.0.0/16", "fd00:232::/48"]);
}

#[test]
fn an_ipv6_pool_outside_the_lab_range_and_a_tcp_stream_without_ipv4_are_refused() {
    let ipv6_only = "lab: {prefix: t1, operator: {stream: tcp}}\nsubnets:\n  - {name: a, cidr6: \"fd00:231:1::/64\"}\nnodes:\n  - {name: n1, subnet: a}\nobjects:\n  - {apiVersion: gingham.dev/v1, kind: IPPool, metadata: {name: p}, spec: {cidr: \"2001:db8::/48\", blockSize: 122}}\n";
    let errors = parse(ipv6_only).unwrap_err().0;
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"lab.operator.stream") && fields.contains(&"objects[0].spec.cidr"), "{errors:?}");
    let neither = "lab: {prefix: t1}\nsubnets:\n  - {name: a}\nnodes:\n  - {name: n1, subnet: a}\n";
    let errors = parse(neither).unwrap_err().0;
    assert!(errors.iter().any(|e| e.field == "subnets[0].cidr" && e.message.contains("neither")), "{errors:?}");
}

const BASE: &str =
    "lab: {prefix: t1}\nsubnets:\n  - {name: a, cidr: 10.231.1.0/24}\nnodes:\n  - {name: n1, subnet: a}\n";

/// A table of broken scenarios: each must be rejected naming this line and field.
#[test]
fn errors_name_the_line_and_the_field() {
    let cases: &[(&str, &str, u64, &str)] = &[
        ("wrong subnet", "pods:\n  - {name: p, node: n1}\n  - {name: q, node: n9}\n", 8, "pods[1].node"),
        ("node subnet", "  - {name: n2, subnet: z}\n", 6, "nodes[1].subnet"),
        (
            "pool outside range",
            "objects:\n  - apiVersion: gingham.dev/v1\n    kind: IPPool\n    metadata: {name: p}\n    spec: {cidr: 192.168.0.0/16}\n",
            7,
            "objects[0].spec.cidr",
        ),
        ("unknown kind", "objects:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n", 7, "objects[0]"),
        ("node object", "objects:\n  - {apiVersion: v1, kind: Node, metadata: {name: x}}\n", 7, "objects[0].kind"),
        (
            "host endpoint without interface or addresses",
            "objects:\n  - {apiVersion: gingham.dev/v1, kind: HostEndpoint, metadata: {name: h}, spec: {node: n1}}\n",
            7,
            "objects[0].spec.interfaceName",
        ),
    ];
    for (what, extra, line, field) in cases {
        let errors = parse(&format!("{BASE}{extra}")).expect_err(what).0;
        assert!(
            errors.iter().any(|e| e.line == *line && e.field == *field && !e.fix.is_empty()),
            "{what}: expected line {line} field {field}, got {errors:?}"
        );
    }
}

#[test]
fn unknown_keys_and_bad_values_are_located() {
    let errors = parse(&format!("{BASE}pods:\n  - {{name: p, node: n1, colour: red}}\n")).unwrap_err().0;
    assert_eq!(errors[0].line, 7, "{errors:?}");
    assert!(errors[0].message.contains("colour"), "{errors:?}");
    let errors =
        parse("lab: {prefix: BAD_PREFIX}\nsubnets:\n  - {name: a, cidr: 10.0.0.0/8}\nnodes: []\n").unwrap_err().0;
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"lab.prefix") && fields.contains(&"subnets[0].cidr") && fields.contains(&"nodes"),
        "{errors:?}"
    );
    assert_eq!(errors.iter().find(|e| e.field == "lab.prefix").map(|e| e.line), Some(1));
}

#[test]
fn pod_namespaces_are_added_and_objects_validated() {
    let text = format!(
        "{BASE}pods:\n  - {{name: p, namespace: team, node: n1}}\nobjects:\n  - apiVersion: gingham.dev/v1\n    kind: IPPool\n    metadata: {{name: p}}\n    spec: {{cidr: 10.232.0.0/16, ipipMode: Always, vxlanMode: Always}}\n"
    );
    let errors = parse(&text).unwrap_err().0;
    assert!(errors.iter().all(|e| e.line == 9), "{errors:?}");
    let ok = parse(&format!("{BASE}pods:\n  - {{name: p, namespace: team, node: n1}}\n")).unwrap();
    assert!(ok.namespaces.iter().any(|n| n.name == "team"));
}

#[test]
fn the_operator_runs_one_replica_on_a_socket_unless_told_otherwise() {
    use crate::stream::{OperatorSpec, Transport};
    assert_eq!(parse(BASE).unwrap().operator, OperatorSpec { replicas: 1, stream: Transport::Unix });
    let two = parse(&BASE.replace("{prefix: t1}", "{prefix: t1, operator: {replicas: 2, stream: tcp}}")).unwrap();
    assert_eq!(two.operator, OperatorSpec { replicas: 2, stream: Transport::Tcp });
    let errors = parse(&BASE.replace("{prefix: t1}", "{prefix: t1, operator: {replicas: 9}}")).unwrap_err().0;
    assert_eq!(errors[0].field, "lab.operator.replicas", "{errors:?}");
    let errors = parse(&BASE.replace("{prefix: t1}", "{prefix: t1, operator: {stream: udp}}")).unwrap_err().0;
    assert!(errors[0].message.contains("udp"), "{errors:?}");
}

#[test]
fn network_sets_are_scenario_objects_and_a_bad_net_is_named() {
    let sets = "objects:\n  - {apiVersion: gingham.dev/v1, kind: GlobalNetworkSet, metadata: {name: partners, labels: {feed: partners}}, spec: {nets: [10.233.0.1/32, \"fd00:233::/64\"]}}\n  - {apiVersion: gingham.dev/v1, kind: NetworkSet, metadata: {name: db, namespace: prod}, spec: {nets: [10.233.0.0/24]}}\n";
    let scenario = parse(&format!("{BASE}{sets}")).unwrap();
    let kinds: Vec<&str> = scenario.objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["GlobalNetworkSet", "NetworkSet"]);
    let bad = "objects:\n  - {apiVersion: gingham.dev/v1, kind: GlobalNetworkSet, metadata: {name: p}, spec: {nets: [10.233.0.300/32]}}\n";
    let errors = parse(&format!("{BASE}{bad}")).unwrap_err().0;
    assert!(errors.iter().any(|e| e.field == "objects[0].spec.nets[0]"), "{errors:?}");
}

#[test]
fn scenarios_accept_the_network_policy_api_kinds() {
    let text = format!(
        "{BASE}objects:\n  - {{apiVersion: policy.networking.k8s.io/v1alpha2, kind: ClusterNetworkPolicy, metadata: {{name: c}}, spec: {{tier: Baseline, priority: 1, subject: {{namespaces: {{}}}}}}}}\n  - {{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {{name: a}}, spec: {{priority: 1, subject: {{namespaces: {{}}}}}}}}\n  - {{apiVersion: policy.networking.k8s.io/v1alpha1, kind: BaselineAdminNetworkPolicy, metadata: {{name: default}}, spec: {{subject: {{namespaces: {{}}}}}}}}\n"
    );
    let scenario = parse(&text).unwrap();
    let kinds: Vec<&str> = scenario.objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"]);
}

#[test]
fn host_endpoints_are_scenario_objects() {
    let text = format!(
        "{BASE}objects:\n  - apiVersion: gingham.dev/v1\n    kind: HostEndpoint\n    metadata: {{name: n1-eth0, labels: {{uplink: eth0}}}}\n    spec: {{node: n1, interfaceName: eth0}}\n"
    );
    let scenario = parse(&text).unwrap();
    assert_eq!(scenario.objects[0]["kind"], "HostEndpoint");
}
