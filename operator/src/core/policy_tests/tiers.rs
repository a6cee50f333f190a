//! Tiers through compile: tier order and Pass, each tier's default action, the built-in tiers
//! around `default`, a policy in a missing tier (reported, not applied), and a tier's change of
//! order or default action on a running engine.

use gingham_crds::api::Tier;
use serde_json::json;

use super::world::{Expect, Policy, TCP, UDP, add_policies, is, mismatches, outside, world};
use crate::core::engine::{Engine, Event, store::Object};
use crate::core::testkit::meta;
use crate::core::{ClusterSnapshot, OperatorSettings, compute};

/// A Tier: name, order, default action.
type TierRow = (&'static str, Option<f64>, Option<&'static str>);

fn tier((name, order, action): TierRow) -> Tier {
    let mut spec = json!({});
    if let Some(order) = order {
        spec["order"] = json!(order);
    }
    if let Some(action) = action {
        spec["defaultAction"] = json!(action);
    }
    Tier { metadata: meta(None, name), spec: serde_json::from_value(spec).unwrap() }
}

fn snapshot(tiers: &[TierRow], policies: Vec<Policy>) -> ClusterSnapshot {
    let mut snapshot = world();
    snapshot.tiers = tiers.iter().copied().map(tier).collect();
    add_policies(&mut snapshot, policies);
    snapshot
}

fn cases() -> Vec<(&'static str, Vec<TierRow>, Vec<Policy>, Expect)> {
    let security = ("security", Some(100.0), None);
    let platform_pass = ("platform", Some(200.0), Some("Pass"));
    vec![
        (
            "a lower tier decides first: its deny beats a default-tier allow",
            vec![security],
            vec![
                (
                    None,
                    "security.deny-web",
                    json!({"tier": "security", "selector": "app == 'web'", "ingress": [{"action": "Deny"}]}),
                ),
                (Some("prod"), "allow", json!({"selector": "all()", "ingress": [{"action": "Allow"}]})),
            ],
            |_, d, _, _| d.name != "web",
        ),
        (
            "Pass skips the rest of the tier: the next tier decides",
            vec![security],
            vec![
                (
                    None,
                    "security.pass-frontend",
                    json!({"tier": "security", "order": 1, "selector": "all()", "namespaceSelector": "env == 'prod'",
                           "ingress": [{"action": "Pass", "source": {"selector": "role == 'frontend'"}}]}),
                ),
                (
                    None,
                    "security.deny-rest",
                    json!({"tier": "security", "order": 2, "selector": "all()", "namespaceSelector": "env == 'prod'", "ingress": [{"action": "Deny"}]}),
                ),
                (
                    Some("prod"),
                    "db-from-web",
                    json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "source": {"selector": "app == 'web'"}}]}),
                ),
            ],
            // In prod only frontends get past security; then the default tier lets only prod's web
            // reach db, and the other prod pods, which no default-tier policy selects, take them all.
            |s, d, _, _| {
                let frontend = is(s, "prod", "web") || is(s, "dev", "web");
                d.ns != "prod" || (frontend && (d.name != "db" || is(s, "prod", "web")))
            },
        ),
        (
            "a tier that selects an endpoint but does not decide denies by default",
            vec![security],
            vec![(
                None,
                "security.allow-tcp",
                json!({"tier": "security", "selector": "app == 'db'", "ingress": [{"action": "Allow", "protocol": "TCP"}]}),
            )],
            |_, d, proto, _| !is(d, "prod", "db") || proto == TCP,
        ),
        (
            "a tier with defaultAction Pass hands undecided traffic on",
            vec![platform_pass],
            vec![
                (
                    None,
                    "platform.deny-udp",
                    json!({"tier": "platform", "selector": "all()", "ingress": [{"action": "Deny", "protocol": "UDP"}]}),
                ),
                (Some("dev"), "isolate", json!({"selector": "all()", "types": ["Ingress"]})),
            ],
            |_, d, proto, _| outside(d) || (proto != UDP && d.ns != "dev"),
        ),
        (
            "every tier passes: allowed past the last tier",
            vec![security],
            vec![(
                None,
                "security.pass",
                json!({"tier": "security", "selector": "all()", "ingress": [{"action": "Pass"}]}),
            )],
            |_, _, _, _| true,
        ),
        (
            "kube-admin comes before default and kube-baseline after it; both pass by default",
            vec![],
            vec![
                (
                    None,
                    "kube-baseline.deny-all",
                    json!({"tier": "kube-baseline", "selector": "all()", "ingress": [{"action": "Deny"}]}),
                ),
                (
                    None,
                    "kube-admin.deny-tool-to-db",
                    json!({"tier": "kube-admin", "selector": "app == 'db'", "ingress": [{"action": "Deny", "source": {"selector": "app == 'api'"}}]}),
                ),
                (Some("prod"), "allow-db", json!({"selector": "app == 'db'", "ingress": [{"action": "Allow"}]})),
            ],
            // db: admin denies api, default allows the rest; every other pod: baseline denies.
            |s, d, _, _| outside(d) || (is(d, "prod", "db") && !is(s, "prod", "api")),
        ),
        (
            "a built-in tier's object may change its default action",
            vec![("kube-admin", None, Some("Deny"))],
            vec![(
                None,
                "kube-admin.allow-web",
                json!({"tier": "kube-admin", "selector": "app == 'web'", "ingress": [{"action": "Allow", "protocol": "TCP"}]}),
            )],
            |_, d, proto, _| d.name != "web" || proto == TCP,
        ),
    ]
}

#[test]
fn tiers_are_evaluated_in_order_with_pass_and_default_actions() {
    let mut failures = Vec::new();
    for (case, tiers, policies, expect) in cases() {
        let desired = compute(&snapshot(&tiers, policies), &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        failures.extend(mismatches(case, &desired, expect));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_policy_in_a_missing_tier_is_reported_and_not_applied_until_the_tier_exists() {
    let deny =
        (None, "security.deny", json!({"tier": "security", "selector": "all()", "ingress": [{"action": "Deny"}]}));
    let mut engine = Engine::load(snapshot(&[], vec![deny]), OperatorSettings::default());
    let problems = &engine.desired().problems;
    assert!(
        problems.iter().any(|p| p.reason == "MissingTier" && p.message.contains("\"security\" does not exist")),
        "{problems:?}"
    );
    assert!(mismatches("no tier", engine.desired(), |_, _, _, _| true).is_empty(), "nothing is applied");
    engine.apply(Event::Upsert(Object::Tier(tier(("security", Some(10.0), None)))));
    assert!(engine.desired().problems.is_empty(), "{:?}", engine.desired().problems);
    let denied: Expect = |_, d, _, _| outside(d);
    assert!(mismatches("tier created", engine.desired(), denied).is_empty(), "now it denies every pod's ingress");
    engine.apply(Event::Delete(crate::core::engine::store::Kind::Tier, (String::new(), "security".into())));
    assert!(mismatches("tier deleted", engine.desired(), |_, _, _, _| true).is_empty(), "and stops with its tier");
}

#[test]
fn changing_a_tiers_order_or_default_action_recompiles_its_endpoints() {
    let policies = || {
        vec![
            (
                None,
                "first.allow-web",
                json!({"tier": "first", "selector": "app == 'web'", "ingress": [{"action": "Allow"}]}),
            ),
            (
                None,
                "second.deny-web",
                json!({"tier": "second", "selector": "app == 'web'", "ingress": [{"action": "Deny"}]}),
            ),
        ]
    };
    let tiers = [("first", Some(1.0), None), ("second", Some(2.0), None)];
    let mut engine = Engine::load(snapshot(&tiers, policies()), OperatorSettings::default());
    let web_open: Expect = |_, _, _, _| true;
    let web_closed: Expect = |_, d, _, _| d.name != "web";
    assert!(mismatches("first before second", engine.desired(), web_open).is_empty());
    engine.apply(Event::Upsert(Object::Tier(tier(("first", Some(3.0), None)))));
    assert!(mismatches("second before first", engine.desired(), web_closed).is_empty());
    let loaded = compute(&engine.snapshot(), &OperatorSettings::default());
    assert_eq!(loaded.spans, engine.desired().spans, "the incremental result is the full compute's");
}
