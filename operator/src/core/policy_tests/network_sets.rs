//! NetworkSets and GlobalNetworkSets through compile, with Calico's scoping (libcalico-go's
//! `getEndpointSelector`): a rule selector without `namespaceSelector` matches the network sets of
//! a NetworkPolicy's namespace, and in a GlobalNetworkPolicy every network set, namespaced or not;
//! `namespaceSelector: global()` picks GlobalNetworkSets only, and `all()` namespaced ones only.
//! The same tables hold when the sets and policies arrive one event at a time after the snapshot,
//! and when a set's nets change live.

use gingham_crds::api::{GlobalNetworkPolicy, GlobalNetworkSet, NetworkPolicy, NetworkSet};
use serde_json::{Value, json};

use super::world::{Expect, P, is, mismatches, world};
use crate::core::engine::store::Object;
use crate::core::engine::{Engine, Event};
use crate::core::testkit::meta;
use crate::core::{ClusterSnapshot, OperatorSettings, compute};

/// Three network sets labelled `feed: partners`, each holding one of the outside addresses:
/// a GlobalNetworkSet (192.0.2.7, 2001:db8::7), one in prod (10.0.2.99) and one in dev
/// (fd00:2::99).
fn network_sets(global_nets: &[&str]) -> Vec<Object> {
    let labelled = |namespace: Option<&str>| {
        let mut metadata = meta(namespace, "partners");
        metadata.labels = Some([("feed".to_string(), "partners".to_string())].into());
        metadata
    };
    fn spec<T: serde::de::DeserializeOwned>(nets: &[&str]) -> T {
        serde_json::from_value(json!({ "nets": nets })).expect("a network set spec")
    }
    vec![
        Object::GlobalNetworkSet(GlobalNetworkSet { metadata: labelled(None), spec: spec(global_nets) }),
        Object::NetworkSet(NetworkSet { metadata: labelled(Some("prod")), spec: spec(&["10.0.2.96/28"]) }),
        Object::NetworkSet(NetworkSet { metadata: labelled(Some("dev")), spec: spec(&["fd00:2::99/128"]) }),
    ]
}

const GLOBAL_NETS: &[&str] = &["192.0.2.0/24", "2001:db8::/32"];

/// Only prod/db is selected: the table is about who reaches it.
fn to_db(s: P, d: P, allowed_sources: &[&str]) -> bool {
    !is(d, "prod", "db") || allowed_sources.contains(&s.name)
}

/// A policy allowing ingress to prod/db from `source` (a NetworkPolicy in prod, or global).
fn policy(namespace: Option<&'static str>, source: Value) -> Object {
    let spec = json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "source": source}]});
    match namespace {
        Some(ns) => Object::NetworkPolicy(NetworkPolicy {
            metadata: meta(Some(ns), "from-partners"),
            spec: serde_json::from_value(spec).expect("a NetworkPolicy spec"),
        }),
        None => Object::GlobalNetworkPolicy(GlobalNetworkPolicy {
            metadata: meta(None, "from-partners"),
            spec: serde_json::from_value(spec).expect("a GlobalNetworkPolicy spec"),
        }),
    }
}

fn cases() -> Vec<(&'static str, Object, Expect)> {
    vec![
        (
            "GNP, no namespaceSelector: every network set, global or namespaced",
            policy(None, json!({"selector": "feed == 'partners'"})),
            |s, d, _, _| to_db(s, d, &["192.0.2.7", "2001:db8::7", "10.0.2.99", "fd00:2::99"]),
        ),
        (
            "GNP, namespaceSelector global(): GlobalNetworkSets only",
            policy(None, json!({"selector": "feed == 'partners'", "namespaceSelector": "global()"})),
            |s, d, _, _| to_db(s, d, &["192.0.2.7", "2001:db8::7"]),
        ),
        (
            "GNP, namespaceSelector all(): namespaced network sets only",
            policy(None, json!({"selector": "feed == 'partners'", "namespaceSelector": "all()"})),
            |s, d, _, _| to_db(s, d, &["10.0.2.99", "fd00:2::99"]),
        ),
        (
            "NP, no namespaceSelector: the network sets of its namespace",
            policy(Some("prod"), json!({"selector": "feed == 'partners'"})),
            |s, d, _, _| to_db(s, d, &["10.0.2.99"]),
        ),
        (
            "NP, namespaceSelector env == 'dev': that namespace's network sets",
            policy(Some("prod"), json!({"selector": "feed == 'partners'", "namespaceSelector": "env == 'dev'"})),
            |s, d, _, _| to_db(s, d, &["fd00:2::99"]),
        ),
        (
            "NP, namespaceSelector global() || env == 'dev': global sets and dev's",
            policy(
                Some("prod"),
                json!({"selector": "feed == 'partners'", "namespaceSelector": "global() || env == 'dev'"}),
            ),
            |s, d, _, _| to_db(s, d, &["192.0.2.7", "2001:db8::7", "fd00:2::99"]),
        ),
        (
            "GNP, pods and network sets in one selector",
            policy(None, json!({"selector": "feed == 'partners' || app == 'api'"})),
            |s, d, _, _| to_db(s, d, &["192.0.2.7", "2001:db8::7", "10.0.2.99", "fd00:2::99", "api"]),
        ),
        (
            "GNP, notSelector: everything but the network sets' addresses",
            policy(None, json!({"notSelector": "feed == 'partners'"})),
            |s, d, _, _| {
                !is(d, "prod", "db") || !["192.0.2.7", "2001:db8::7", "10.0.2.99", "fd00:2::99"].contains(&s.name)
            },
        ),
    ]
}

/// The snapshot with the network sets and the policy in it.
fn with(mut snapshot: ClusterSnapshot, objects: Vec<Object>) -> ClusterSnapshot {
    for object in objects {
        match object {
            Object::GlobalNetworkSet(o) => snapshot.global_network_sets.push(o),
            Object::NetworkSet(o) => snapshot.network_sets.push(o),
            Object::NetworkPolicy(o) => snapshot.network_policies.push(o),
            Object::GlobalNetworkPolicy(o) => snapshot.global_network_policies.push(o),
            other => panic!("not a network set or policy: {other:?}"),
        }
    }
    snapshot
}

#[test]
fn network_sets_are_selected_with_calicos_scoping() {
    let mut failures = Vec::new();
    for (case, policy, expect) in cases() {
        // All at once, as a snapshot.
        let mut objects = network_sets(GLOBAL_NETS);
        objects.push(policy.clone());
        let desired = compute(&with(world(), objects), &OperatorSettings::default());
        assert!(desired.problems.is_empty(), "{case}: {:?}", desired.problems);
        failures.extend(mismatches(case, &desired, expect));
        // One event at a time: the policy first, then the sets join its set.
        let mut engine = Engine::from_snapshot(&world(), OperatorSettings::default());
        engine.apply(Event::Upsert(policy.clone()));
        for set in network_sets(GLOBAL_NETS) {
            engine.apply(Event::Upsert(set));
        }
        failures.extend(mismatches(&format!("{case} (events)"), engine.desired(), expect));
        // The sets first, then the policy: its new set collects them.
        let mut engine = Engine::from_snapshot(&world(), OperatorSettings::default());
        for set in network_sets(GLOBAL_NETS) {
            engine.apply(Event::Upsert(set));
        }
        engine.apply(Event::Upsert(policy));
        failures.extend(mismatches(&format!("{case} (sets, then policy)"), engine.desired(), expect));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn an_allow_list_follows_its_global_network_set_live() {
    let allow = || policy(None, json!({"selector": "feed == 'partners'", "namespaceSelector": "global()"}));
    let mut objects = network_sets(GLOBAL_NETS);
    objects.push(allow());
    let mut engine = Engine::from_snapshot(&with(world(), objects), OperatorSettings::default());
    let before: Expect = |s, d, _, _| to_db(s, d, &["192.0.2.7", "2001:db8::7"]);
    let mut failures = mismatches("before", engine.desired(), before);

    // 192.0.2.0/24 narrowed to a /30 that leaves 192.0.2.7 out; the IPv6 net stays.
    let narrowed = network_sets(&["192.0.2.0/30", "2001:db8::/32"]).remove(0);
    engine.apply(Event::Upsert(narrowed));
    let after: Expect = |s, d, _, _| to_db(s, d, &["2001:db8::7"]);
    failures.extend(mismatches("narrowed", engine.desired(), after));

    // Gone: nobody reaches db any more, and the set is empty, not stale.
    let Object::GlobalNetworkSet(set) = network_sets(GLOBAL_NETS).remove(0) else { unreachable!() };
    let key = (String::new(), set.metadata.name.clone().unwrap_or_default());
    engine.apply(Event::Delete(crate::core::engine::store::Kind::GlobalNetworkSet, key));
    let gone: Expect = |s, d, _, _| to_db(s, d, &[]);
    failures.extend(mismatches("deleted", engine.desired(), gone));
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
