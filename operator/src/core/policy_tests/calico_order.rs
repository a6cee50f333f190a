//! Calico policy semantics through compile: order, actions (Allow, Deny, Log, Pass), namespace
//! scoping of NetworkPolicy and GlobalNetworkPolicy, notSelector, notPorts, nets on egress, and
//! the two families: `ipVersion`, ICMP and ICMPv6, nets of each family.

use serde_json::json;

use super::world::{Expect, Policy, TCP, add_policies, is, mismatches, outside, serves, world};
use crate::core::{OperatorSettings, compute};

fn cases() -> Vec<(&'static str, Vec<Policy>, Expect)> {
    let deny_all = json!({"selector": "all()", "ingress": [{"action": "Deny"}]});
    vec![
        (
            "lower order first: an allow at 5 beats a deny at 10",
            vec![
                (Some("prod"), "deny", json!({"order": 10, "selector": "all()", "ingress": [{"action": "Deny"}]})),
                (
                    Some("prod"),
                    "allow",
                    json!({"order": 5, "selector": "app == 'db'", "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'frontend'"}}]}),
                ),
            ],
            |s, d, proto, _| d.ns != "prod" || (is(d, "prod", "db") && is(s, "prod", "web") && proto == TCP),
        ),
        (
            "same order: the name decides",
            vec![
                (Some("prod"), "a-deny", json!({"order": 1, "selector": "all()", "ingress": [{"action": "Deny"}]})),
                (Some("prod"), "b-allow", json!({"order": 1, "selector": "all()", "ingress": [{"action": "Allow"}]})),
            ],
            |_, d, _, _| d.ns != "prod",
        ),
        (
            "no order sorts last",
            vec![
                (Some("prod"), "a-deny", json!({"selector": "all()", "ingress": [{"action": "Deny"}]})),
                (Some("prod"), "b-allow", json!({"order": 100, "selector": "all()", "ingress": [{"action": "Allow"}]})),
            ],
            |_, _, _, _| true,
        ),
        (
            "Log goes on, Pass skips the remaining policies",
            vec![
                (
                    Some("prod"),
                    "first",
                    json!({"order": 1, "selector": "all()", "ingress": [{"action": "Log"}, {"action": "Pass", "source": {"selector": "app == 'api'"}}]}),
                ),
                (Some("prod"), "second", json!({"order": 2, "selector": "all()", "ingress": [{"action": "Deny"}]})),
            ],
            |s, d, _, _| d.ns != "prod" || is(s, "prod", "api"),
        ),
        (
            "a NetworkPolicy applies in its own namespace only",
            vec![(Some("dev"), "lock", json!({"selector": "all()", "types": ["Ingress"]}))],
            |_, d, _, _| d.ns != "dev",
        ),
        (
            "a GlobalNetworkPolicy applies where its namespaceSelector says",
            vec![(
                None,
                "dev-web",
                json!({"selector": "app == 'web'", "namespaceSelector": "env == 'dev'", "ingress": [{"action": "Deny"}]}),
            )],
            |_, d, _, _| !is(d, "dev", "web"),
        ),
        (
            "notSelector (scoped to the namespace) and notPorts",
            vec![(
                Some("prod"),
                "not",
                json!({"selector": "all()", "ingress": [{"action": "Allow", "protocol": "TCP",
                    "source": {"notSelector": "app == 'api'"}, "destination": {"notPorts": [80]}}]}),
            )],
            |s, d, proto, port| d.ns != "prod" || (proto == TCP && !is(s, "prod", "api") && port != 80),
        ),
        (
            "global egress to nets",
            vec![(
                None,
                "egress",
                json!({"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow", "destination": {"nets": ["10.0.1.0/24"]}}]}),
            )],
            |s, d, _, _| outside(s) || (d.ns == "prod" && !d.v6),
        ),
        (
            "nets of both families in one rule: each packet meets those of its family",
            vec![(
                None,
                "egress",
                json!({"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow", "destination": {"nets": ["10.0.1.0/24", "fd00:2::/64"]}}]}),
            )],
            |s, d, _, _| outside(s) || (d.ns == "prod" && !d.v6) || (d.ns == "dev" && d.v6) || d.name == "fd00:2::99",
        ),
        (
            "ipVersion 6 limits a rule to IPv6",
            vec![(
                Some("prod"),
                "v6",
                json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "ipVersion": 6}]}),
            )],
            |s, d, _, _| !is(d, "prod", "db") || s.v6,
        ),
        (
            "ipVersion 4 limits a rule to IPv4; a rule without it serves both",
            vec![(
                Some("prod"),
                "v4",
                json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "ipVersion": 4, "protocol": "TCP"}, {"action": "Allow", "protocol": "UDP"}]}),
            )],
            |s, d, proto, _| !is(d, "prod", "db") || (!s.v6 && proto == TCP) || proto == super::world::UDP,
        ),
        (
            "ICMPv6 echo and ICMP echo, each in its family",
            vec![(
                Some("prod"),
                "ping",
                json!({"selector": "app == 'db'", "ingress": [
                    {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "icmp": {"type": 128}},
                    {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}
                ]}),
            )],
            |_, d, proto, _| !is(d, "prod", "db") || proto == super::world::ICMP || proto == super::world::ICMPV6,
        ),
        (
            "notICMP: ICMPv6 but echo",
            vec![(
                Some("prod"),
                "noping",
                json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "protocol": "ICMPv6", "notICMP": {"type": 128}}]}),
            )],
            |_, d, _, _| !is(d, "prod", "db"),
        ),
        (
            "a selector matches a dual-stack pod in both families, an IPv6-only pod in IPv6",
            vec![(
                Some("prod"),
                "from-dev",
                json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "source": {"namespaceSelector": "env == 'dev'"}}]}),
            )],
            |s, d, _, _| !is(d, "prod", "db") || s.ns == "dev",
        ),
        (
            "a named destination port without a selector resolves on any destination pod, in any namespace",
            vec![(
                Some("prod"),
                "named",
                json!({"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}}]}),
            )],
            |s, d, proto, port| s.ns != "prod" || serves(d, "http", proto, port),
        ),
        (
            "a named destination port with a selector stays in the policy's namespace",
            vec![(
                Some("prod"),
                "named",
                json!({"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"selector": "app == 'web'", "ports": ["http"]}}]}),
            )],
            |s, d, proto, port| s.ns != "prod" || (is(d, "prod", "web") && serves(d, "http", proto, port)),
        ),
        (
            "a global deny everywhere (ingress only: egress to outside stays open)",
            vec![(None, "deny", deny_all)],
            |_, d, _, _| outside(d),
        ),
    ]
}

#[test]
fn calico_policies_are_ordered_scoped_and_acted_on() {
    let mut failures = Vec::new();
    for (case, policies, expect) in cases() {
        let mut snapshot = world();
        add_policies(&mut snapshot, policies);
        let desired = compute(&snapshot, &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        failures.extend(mismatches(case, &desired, expect));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
