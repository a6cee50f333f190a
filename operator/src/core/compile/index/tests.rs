//! The index's answers to policy changes after pods were relabelled, addressed, removed and their
//! namespaces relabelled: what a policy selects and what its rule's set holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use gingham_crds::api::GlobalNetworkPolicy;
use gingham_crds::api::GlobalNetworkPolicySpec;
use gingham_crds::api::nodenetwork::LocalEndpoint;
use gingham_crds::api::policy::{Action, EntityRule, PolicyRule, PolicyType};

use super::PolicyIndex;
use crate::core::compile::{Tiers, global_policy_entry};
use crate::core::facts::PodFacts;
use crate::core::testkit::{Meta, meta, pod, scheduled};

fn facts(name: &str, app: &str, node: Option<&str>) -> Option<Arc<PodFacts>> {
    let p = pod("ns", name).label("app", app);
    let p = match node {
        Some(node) => scheduled(p, node, false),
        None => p,
    };
    Some(Arc::new(PodFacts::from_pod(&p)))
}

fn report(index: &mut PolicyIndex, node: &str, endpoints: &[(&str, &str)]) {
    let endpoints: Vec<LocalEndpoint> = endpoints
        .iter()
        .map(|(name, address)| LocalEndpoint {
            name: format!("ns/{name}"),
            uid: None,
            address: address.split(',').next().unwrap_or_default().into(),
            addresses: if address.contains(',') { address.split(',').map(Into::into).collect() } else { Vec::new() },
            interface: String::new(),
        })
        .collect();
    index.set_node_endpoints(node, &endpoints);
}

/// Adds a global policy for `selector` (in the namespaces `namespaces` picks) allowing ingress
/// from `from` (in the same namespaces), and returns the pods it applies to and its rule's set
/// members; then removes it again, so that every probe creates its set anew.
fn probe(index: &mut PolicyIndex, selector: &str, namespaces: Option<&str>, from: &str) -> (Vec<String>, Vec<String>) {
    let source = EntityRule {
        selector: Some(from.into()),
        namespace_selector: namespaces.map(Into::into),
        ..EntityRule::default()
    };
    let spec = GlobalNetworkPolicySpec {
        selector: Some(selector.into()),
        namespace_selector: namespaces.map(Into::into),
        types: Some(vec![PolicyType::Ingress]),
        ingress: Some(vec![PolicyRule { action: Action::Allow, source: Some(source), ..PolicyRule::default() }]),
        ..GlobalNetworkPolicySpec::default()
    };
    let (entry, problems) =
        global_policy_entry(&GlobalNetworkPolicy { metadata: meta(None, "probe"), spec }, &Tiers::default());
    assert!(problems.is_empty(), "{problems:?}");
    let entry = entry.unwrap();
    let keys: Vec<_> = entry.sets.iter().cloned().collect();
    index.upsert_policy(entry);
    index.take_dirty();
    let mut selected: Vec<String> = index
        .endpoints
        .values()
        .flatten()
        .filter(|(_, endpoint)| endpoint.ingress.iter().any(|p| &**p == "global/probe"))
        .map(|(name, _)| name.trim_start_matches("ns/").to_string())
        .collect();
    selected.sort();
    let members = keys
        .iter()
        .filter_map(|key| index.set_ids.get(key).and_then(|id| index.set_views(*id)))
        .flatten()
        .flat_map(|view| view.members.iter().map(ToString::to_string).collect::<Vec<_>>())
        .collect();
    index.delete_policy("global/probe");
    (selected, members)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn policies_select_and_sets_collect_by_the_current_labels_and_addresses() {
    let mut index = PolicyIndex::default();
    index.set_pod("ns/a", facts("a", "web", None));
    index.set_pod("ns/b", facts("b", "db", None));
    index.set_pod("ns/c", facts("c", "web", Some("n2")));
    report(&mut index, "n1", &[("a", "10.0.0.1"), ("b", "10.0.0.2")]);
    let p = |index: &mut PolicyIndex, selector: &str, from: &str| probe(index, selector, None, from);

    assert_eq!(p(&mut index, "app == 'web'", "app == 'db'"), (strings(&["a", "c"]), strings(&["10.0.0.2"])));
    assert_eq!(p(&mut index, "all()", "all()"), (strings(&["a", "b", "c"]), strings(&["10.0.0.1", "10.0.0.2"])));

    index.set_pod("ns/a", facts("a", "db", None));
    index.set_pod("ns/b", facts("b", "web", None));
    assert_eq!(
        p(&mut index, "app == 'web'", "app == 'web'"),
        (strings(&["b", "c"]), strings(&["10.0.0.2"])),
        "relabelled, and c has no address yet"
    );

    report(&mut index, "n2", &[("c", "10.0.0.3")]);
    assert_eq!(
        p(&mut index, "has(app)", "app in {'web'}"),
        (strings(&["a", "b", "c"]), strings(&["10.0.0.2", "10.0.0.3"]))
    );

    report(&mut index, "n1", &[("b", "10.0.0.2")]);
    assert_eq!(p(&mut index, "app == 'db'", "app == 'db'"), (vec![], vec![]), "a's endpoint is gone");

    report(&mut index, "n2", &[]);
    assert_eq!(
        p(&mut index, "app == 'web'", "app == 'web'"),
        (strings(&["b", "c"]), strings(&["10.0.0.2"])),
        "c is still scheduled to n2, without its address"
    );

    index.set_pod("ns/c", None);
    assert_eq!(p(&mut index, "has(app)", "has(app)"), (strings(&["b"]), strings(&["10.0.0.2"])), "c's pod is gone");
}

#[test]
fn namespace_labels_scope_policies_and_sets_picked_by_pod_labels() {
    let mut index = PolicyIndex::default();
    index.set_pod("ns/a", facts("a", "web", None));
    report(&mut index, "n1", &[("a", "10.0.0.1")]);
    let picked = (strings(&["a"]), strings(&["10.0.0.1"]));
    let p = |index: &mut PolicyIndex| probe(index, "app == 'web'", Some("env == 'prod'"), "app == 'web'");

    assert_eq!(p(&mut index), (vec![], vec![]));
    index.set_namespace("ns", Some(BTreeMap::from([("env".to_string(), "prod".to_string())])));
    assert_eq!(p(&mut index), picked);
    index.set_namespace("ns", Some(BTreeMap::from([("env".to_string(), "dev".to_string())])));
    assert_eq!(p(&mut index), (vec![], vec![]));
}

/// A pod re-created under the same name is another Pod: the compiled endpoint policy carries the
/// current Pod's UID, and an address its agent reported for another UID (the predecessor's) is in
/// no set under the new Pod's labels.
#[test]
fn a_pod_recreated_under_its_name_is_keyed_by_its_uid() {
    let with_uid = |app: &str, uid: &str| {
        let mut facts = (*facts("p", app, Some("n1")).unwrap()).clone();
        facts.uid = Some(uid.into());
        Some(Arc::new(facts))
    };
    let report_uid = |index: &mut PolicyIndex, address: &str, uid: &str| {
        let endpoint = LocalEndpoint {
            name: "ns/p".into(),
            uid: Some(uid.into()),
            address: address.into(),
            addresses: Vec::new(),
            interface: String::new(),
        };
        index.set_node_endpoints("n1", &[endpoint]);
    };
    let compiled_uid = |index: &mut PolicyIndex| {
        let spec = index.build_node("n1");
        spec.endpoints.iter().find(|e| e.name == "ns/p").and_then(|e| e.uid.clone())
    };
    let mut index = PolicyIndex::default();
    index.set_pod("ns/p", with_uid("web", "u1"));
    assert_eq!(compiled_uid(&mut index).as_deref(), Some("u1"), "compiled ahead of ADD for the Pod's UID");
    report_uid(&mut index, "10.0.0.1", "u1");
    assert_eq!(probe(&mut index, "all()", None, "app == 'web'").1, strings(&["10.0.0.1"]));

    index.set_pod("ns/p", with_uid("db", "u2"));
    assert_eq!(compiled_uid(&mut index).as_deref(), Some("u2"), "the new Pod's UID at once");
    assert_eq!(probe(&mut index, "all()", None, "app == 'db'").1, Vec::<String>::new(), "the address is u1's");
    assert_eq!(probe(&mut index, "all()", None, "app == 'web'").1, Vec::<String>::new(), "u1's labels are gone");

    report_uid(&mut index, "10.0.0.2", "u2");
    assert_eq!(probe(&mut index, "all()", None, "app == 'db'").1, strings(&["10.0.0.2"]));

    index.set_pod("ns/p", None);
    assert_eq!(compiled_uid(&mut index).as_deref(), Some("u2"), "without a Pod object, the reported UID");
}

/// A dual-stack pod is in the IPv4 set and the IPv6 set of every selector it matches; an IPv6-only
/// pod in the IPv6 one only; losing an address leaves only that family's set.
#[test]
fn endpoints_bring_an_address_of_each_family_to_the_set_of_that_family() {
    let mut index = PolicyIndex::default();
    for name in ["dual", "v6", "v4"] {
        index.set_pod(&format!("ns/{name}"), facts(name, "web", Some("n1")));
    }
    report(&mut index, "n1", &[("dual", "10.0.0.1,fd00::1"), ("v6", "fd00::2"), ("v4", "10.0.0.3")]);
    let views = |index: &mut PolicyIndex| {
        let span = index.build_node("n1");
        let _ = index.take_dirty();
        let mut found = Vec::new();
        let source = EntityRule { selector: Some("app == 'web'".into()), ..EntityRule::default() };
        let spec = GlobalNetworkPolicySpec {
            selector: Some("all()".into()),
            ingress: Some(vec![PolicyRule { action: Action::Allow, source: Some(source), ..PolicyRule::default() }]),
            ..GlobalNetworkPolicySpec::default()
        };
        let (entry, _) =
            global_policy_entry(&GlobalNetworkPolicy { metadata: meta(None, "web"), spec }, &Tiers::default());
        index.upsert_policy(entry.unwrap());
        let _ = index.take_dirty();
        let span_after = index.build_node("n1");
        for set in &span_after.ip_sets {
            found.push((set.family, set.members.iter().map(ToString::to_string).collect::<Vec<_>>()));
        }
        index.delete_policy("global/web");
        assert!(span.ip_sets.is_empty());
        found
    };
    use gingham_crds::api::IpFamily;
    assert_eq!(
        views(&mut index),
        [(IpFamily::IPv6, strings(&["fd00::1", "fd00::2"])), (IpFamily::IPv4, strings(&["10.0.0.1", "10.0.0.3"]))],
        "sorted by name: gs6_... before gs_..."
    );
    report(&mut index, "n1", &[("dual", "10.0.0.1"), ("v6", "fd00::2"), ("v4", "10.0.0.3")]);
    assert_eq!(
        views(&mut index),
        [(IpFamily::IPv6, strings(&["fd00::2"])), (IpFamily::IPv4, strings(&["10.0.0.1", "10.0.0.3"]))]
    );
}
