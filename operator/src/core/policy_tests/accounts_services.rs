//! `serviceAccounts` (names, selector, the policy's `serviceAccountSelector`) and `services`
//! (source and destination, with the service's ports) through compile, on the small world:
//!
//! | pod       | service account | account labels |
//! |-----------|-----------------|----------------|
//! | prod/web  | web-sa          | team: web      |
//! | prod/api  | api-sa          | team: api      |
//! | dev/web   | web-sa          | team: web      |
//! | dev/tool  | api-sa          | (no object)    |
//!
//! Services (EndpointSlices): `prod/pg` is prod/db's addresses on 5432/TCP; `prod/front` is
//! prod/web's addresses on 8080/TCP.

use gingham_crds::api::GlobalNetworkPolicy;
use serde_json::json;

use super::world::{Expect, Policy, TCP, add_policies, is, mismatches, world};
use crate::core::ClusterSnapshot;
use crate::core::testkit::{endpoint_slice, meta, service_account, with_account};
use crate::core::{OperatorSettings, compute};

fn accounts_and_services() -> ClusterSnapshot {
    let mut snapshot = world();
    let accounts =
        [("prod", "web", "web-sa"), ("prod", "api", "api-sa"), ("dev", "web", "web-sa"), ("dev", "tool", "api-sa")];
    for pod in &mut snapshot.pods {
        let (ns, name) = (pod.metadata.namespace.clone().unwrap(), pod.metadata.name.clone().unwrap());
        if let Some((_, _, account)) = accounts.iter().find(|(n, p, _)| (*n, *p) == (ns.as_str(), name.as_str())) {
            *pod = with_account(pod.clone(), account);
        }
    }
    snapshot.service_accounts = vec![
        service_account("prod", "web-sa", &[("team", "web")]),
        service_account("prod", "api-sa", &[("team", "api")]),
        service_account("dev", "web-sa", &[("team", "web")]),
    ];
    snapshot.endpoint_slices = vec![
        endpoint_slice("prod", "pg", &["10.0.1.2", "fd00:1::2"], &[("TCP", 5432)]),
        endpoint_slice("prod", "front", &["10.0.1.1", "fd00:1::1"], &[("TCP", 8080)]),
    ];
    snapshot
}

fn cases() -> Vec<(&'static str, Vec<Policy>, Expect)> {
    vec![
        (
            "serviceAccounts names: only prod's api-sa (dev/tool runs as an api-sa of dev)",
            vec![(
                Some("prod"),
                "from-api",
                json!({"selector": "all()", "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"serviceAccounts": {"names": ["api-sa"]}}}]}),
            )],
            |s, d, proto, _| d.ns != "prod" || (is(s, "prod", "api") && proto == TCP),
        ),
        (
            "serviceAccounts names with a namespaceSelector: api-sa of every namespace",
            vec![(
                Some("prod"),
                "from-any-api",
                json!({"selector": "all()", "ingress": [{"action": "Allow", "source": {"namespaceSelector": "all()", "serviceAccounts": {"names": ["api-sa"]}}}]}),
            )],
            |s, d, _, _| d.ns != "prod" || is(s, "prod", "api") || is(s, "dev", "tool"),
        ),
        (
            "serviceAccounts selector in a global policy: team web anywhere, on prod/db",
            vec![(
                None,
                "db-from-web-team",
                json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "source": {"serviceAccounts": {"selector": "team == 'web'"}}}]}),
            )],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "prod", "web") || is(s, "dev", "web"),
        ),
        (
            "serviceAccounts names and selector are ANDed; as a destination on egress",
            vec![(
                None,
                "to-web-team",
                json!({"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow", "destination": {"serviceAccounts": {"names": ["web-sa", "api-sa"], "selector": "team == 'api'"}}}]}),
            )],
            |s, d, _, _| s.ns.is_empty() || is(d, "prod", "api"),
        ),
        (
            "serviceAccountSelector picks the policy's endpoints by their account's labels",
            vec![(
                None,
                "lock-web-team",
                json!({"selector": "all()", "serviceAccountSelector": "team == 'web'", "ingress": [{"action": "Deny"}]}),
            )],
            |_, d, _, _| !is(d, "prod", "web") && !is(d, "dev", "web"),
        ),
        (
            "services as a destination: the service's addresses on its ports only",
            vec![(
                Some("prod"),
                "web-to-pg",
                json!({"selector": "app == 'web'", "types": ["Egress"], "egress": [{"action": "Allow", "destination": {"services": {"name": "pg"}}}]}),
            )],
            |s, d, proto, port| !is(s, "prod", "web") || (is(d, "prod", "db") && proto == TCP && port == 5432),
        ),
        (
            "services as a source: the service's addresses, any port",
            vec![(
                None,
                "db-from-front",
                json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "source": {"services": {"name": "front", "namespace": "prod"}}}]}),
            )],
            |s, d, _, _| !is(d, "prod", "db") || is(s, "prod", "web"),
        ),
        (
            "a service of another namespace than the policy's is another service",
            vec![(
                Some("dev"),
                "dev-pg",
                json!({"selector": "all()", "types": ["Egress"], "egress": [{"action": "Allow", "destination": {"services": {"name": "pg"}}}]}),
            )],
            |s, _, _, _| s.ns != "dev",
        ),
    ]
}

#[test]
fn service_account_and_service_matches_select_the_right_packets() {
    let mut failures = Vec::new();
    for (case, policies, expect) in cases() {
        let mut snapshot = accounts_and_services();
        add_policies(&mut snapshot, policies);
        let desired = compute(&snapshot, &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        failures.extend(mismatches(case, &desired, expect));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_pod_cannot_claim_a_service_account_by_its_own_labels() {
    let mut snapshot = accounts_and_services();
    // prod/db labels itself as if it ran as api-sa; it runs as none.
    for pod in &mut snapshot.pods {
        if pod.metadata.name.as_deref() == Some("db") {
            let labels = pod.metadata.labels.get_or_insert_default();
            labels.insert("projectcalico.org/serviceaccount".into(), "api-sa".into());
            labels.insert("pcsa.team".into(), "api".into());
        }
    }
    snapshot.global_network_policies.push(GlobalNetworkPolicy {
        metadata: meta(None, "from-api-team"),
        spec: serde_json::from_value(json!({"selector": "app == 'web'", "ingress": [{"action": "Allow", "source": {"serviceAccounts": {"selector": "team == 'api'"}}}]}))
            .unwrap(),
    });
    let desired = compute(&snapshot, &OperatorSettings::default());
    let failures = mismatches("spoofed labels", &desired, |s, d, _, _| d.name != "web" || is(s, "prod", "api"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
