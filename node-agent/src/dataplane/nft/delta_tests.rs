#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gingham_crds::api::nodenetwork::EndpointPolicy;
use gingham_crds::api::span::NodeSpan;

use super::*;
use crate::dataplane::fixtures::{endpoint, policy_span, policy_spec};
use crate::dataplane::nft::build::{FROM_ENDPOINT, TO_ENDPOINT};
use crate::dataplane::nft::model::{Hook, SetType};
use crate::dataplane::nft::observe::{Digests, Observed, Plan, plan};
use crate::dataplane::nft::render;
use crate::endpoint::LocalEndpoint;

fn pods(names: &[&str]) -> Vec<LocalEndpoint> {
    names.iter().enumerate().map(|(i, pod)| endpoint(pod, [10, 0, 0, 5 + i as u8])).collect()
}

fn rules(span: &NodeSpan, names: &[&str]) -> Ruleset {
    crate::dataplane::fixtures::rules(&policy_spec(), span, &pods(names))
}

/// `policy_span` with `db` gone from the policy and pods, so that the `*_allow_all` chains exist
/// only while some pod without policies is there.
fn web_only() -> NodeSpan {
    let mut span = policy_span();
    span.endpoints.retain(|e| e.name == "default/web");
    span
}

fn with_db() -> NodeSpan {
    let mut span = web_only();
    span.endpoints.push(EndpointPolicy { name: "default/db".into(), ..EndpointPolicy::default() });
    span
}

fn chain_names(chains: &[Chain]) -> Vec<&str> {
    chains.iter().map(|c| c.name.as_str()).collect()
}

/// `last`'s table after `delta`, as a listing would show it.
fn applied(last: &Ruleset, delta: &Delta) -> Observed {
    let mut table = Observed::expected(last);
    for name in &delta.deleted_chains {
        table.chains.remove(name);
    }
    for name in delta.deleted_sets.iter().chain(&delta.deleted_maps) {
        table.elements.remove(name);
    }
    for chain in delta.new_chains.iter().chain(&delta.refilled) {
        table.chains.insert(chain.name.clone(), chain.rules.len());
    }
    for name in delta.new_sets.iter().map(|s| &s.name).chain(&delta.new_maps) {
        table.elements.insert(name.clone(), BTreeSet::new());
    }
    for (name, gone) in &delta.delete {
        table.elements.get_mut(name).unwrap().retain(|e| !gone.contains(e));
    }
    for (name, added) in &delta.add {
        table.elements.get_mut(name).unwrap().extend(added.iter().cloned());
    }
    table
}

#[test]
fn a_pod_with_a_new_policy_list_adds_its_chains_and_map_elements() {
    let last = rules(&web_only(), &["web"]);
    let desired = rules(&with_db(), &["web", "db"]);
    let mut delta = structure(&last, &desired).unwrap();
    assert_eq!(chain_names(&delta.new_chains), vec!["ee_allow_all", "ei_allow_all"]);
    assert_eq!(chain_names(&delta.refilled), vec!["forward"], "only the fingerprint comment changes");
    assert!(delta.deleted_chains.is_empty() && delta.new_sets.is_empty() && delta.deleted_sets.is_empty());
    elements(&mut delta, &desired.elements(), &last.elements());
    let db = &pods(&["web", "db"])[1].interface;
    assert_eq!(delta.add.keys().collect::<Vec<_>>(), vec![FROM_ENDPOINT, TO_ENDPOINT]);
    assert_eq!(delta.add[FROM_ENDPOINT], [format!("\"{db}\" : jump ee_allow_all")].into());
    assert!(delta.delete.is_empty());
    let mut listed = applied(&last, &delta);
    listed.fingerprint = Observed::expected(&desired).fingerprint;
    assert_eq!(listed, Observed::expected(&desired), "the delta leads exactly to the desired table");
}

#[test]
fn removing_the_pod_deletes_what_only_it_used() {
    let last = rules(&with_db(), &["web", "db"]);
    let desired = rules(&web_only(), &["web"]);
    let mut delta = structure(&last, &desired).unwrap();
    assert_eq!(delta.deleted_chains, vec!["ee_allow_all", "ei_allow_all"]);
    assert!(delta.new_chains.is_empty());
    elements(&mut delta, &desired.elements(), &last.elements());
    assert!(delta.add.is_empty());
    assert_eq!(delta.delete.keys().collect::<Vec<_>>(), vec![FROM_ENDPOINT, TO_ENDPOINT]);
    let mut listed = applied(&last, &delta);
    listed.fingerprint = Observed::expected(&desired).fingerprint;
    assert_eq!(listed, Observed::expected(&desired));
}

#[test]
fn a_new_policy_adds_its_chains_and_sets_and_refills_the_endpoint_chain() {
    let mut span = policy_span();
    span.policies.retain(|p| p.name == "global/audit");
    span.ip_sets.clear();
    span.endpoints[0].ingress.clear();
    let last = rules(&span, &["web", "db"]);
    let desired = rules(&policy_span(), &["web", "db"]);
    let delta = structure(&last, &desired).unwrap();
    let new: Vec<&str> = chain_names(&delta.new_chains);
    assert!(new.iter().any(|c| c.starts_with("pi_default_allow_http")), "{new:?}");
    assert!(new.iter().any(|c| c.starts_with("ei_default_Deny_default_allow_http")), "{new:?}");
    assert!(new.iter().any(|c| c.starts_with("ti_default_Deny_default_allow_http")), "{new:?}");
    let sets: Vec<(&str, SetType)> = delta.new_sets.iter().map(|s| (s.name.as_str(), s.kind)).collect();
    assert_eq!(sets, vec![("s_clients", SetType::Addresses), ("s_web_http", SetType::AddressPorts)]);
    assert!(delta.new_sets.iter().all(|s| s.elements.is_empty()), "elements travel as element additions");
    assert!(delta.deleted_chains.is_empty(), "web's old ingress chain is db's too: {:?}", delta.deleted_chains);
}

#[test]
fn what_a_delta_cannot_express_needs_a_rewrite() {
    let last = rules(&policy_span(), &["web", "db"]);
    type Edit = fn(&mut Ruleset);
    let cases: [(&str, Edit); 4] = [
        ("a set changes its type", |r| r.sets[0].kind = SetType::AddressPorts),
        ("a base chain changes its hook", |r| r.chains[0].hook = Some(Hook::Input)),
        ("a base chain goes", |r| {
            r.chains.retain(|c| c.name != "postrouting");
        }),
        ("a base chain appears", |r| {
            r.chains.push(Chain { name: "extra".into(), hook: Some(Hook::Input), rules: vec![] })
        }),
    ];
    for (case, edit) in cases {
        let mut desired = last.clone();
        edit(&mut desired);
        assert_eq!(structure(&last, &desired), None, "{case}");
    }
    assert!(structure(&last, &last).unwrap().is_empty(), "no change");
}

#[test]
fn plans_use_the_last_applied_ruleset_only_while_the_table_still_shows_it() {
    let last = rules(&web_only(), &["web"]);
    let desired = rules(&with_db(), &["web", "db"]);
    let table = Observed::expected(&last);
    let Plan::Changes(delta) = plan(&desired, Some(&table), &Digests::new(), Some(&last)) else {
        panic!("expected a delta")
    };
    assert!(delta.is_structural());
    assert_eq!(plan(&desired, Some(&table), &Digests::new(), None), Plan::Rewrite, "after a restart nothing is known");
    let mut drifted = table.clone();
    *drifted.chains.get_mut("forward").unwrap() -= 1;
    assert_eq!(plan(&desired, Some(&drifted), &Digests::new(), Some(&last)), Plan::Rewrite, "a rule was deleted");
    let mut edited = table.clone();
    edited.rule_digests.insert("forward".into(), 7);
    let trusted: Digests = [("forward".to_string(), 0)].into();
    assert_eq!(plan(&desired, Some(&edited), &trusted, Some(&last)), Plan::Rewrite, "a rule was edited");

    let mut stray = table.clone();
    stray.elements.get_mut("s_clients").unwrap().insert("10.9.9.9".into());
    let Plan::Changes(delta) = plan(&desired, Some(&stray), &Digests::new(), Some(&last)) else {
        panic!("expected a delta")
    };
    assert_eq!(delta.delete["s_clients"], ["10.9.9.9".to_string()].into(), "element drift is repaired too");
}

#[test]
fn golden_delta_for_a_new_pod_and_its_removal() {
    let (small, large) = (rules(&web_only(), &["web"]), rules(&with_db(), &["web", "db"]));
    let mut text = String::new();
    for (last, desired) in [(&small, &large), (&large, &small)] {
        let mut delta = structure(last, desired).unwrap();
        elements(&mut delta, &desired.elements(), &last.elements());
        text.push_str(&render::delta(&delta));
        text.push_str("# --\n");
    }
    insta::assert_snapshot!(text);
}

/// `policy_span` with an IPv6 set `clients6` the `allow-http` rule also names.
fn with_clients6(members: &[&str]) -> NodeSpan {
    let mut span = policy_span();
    let mut clients6 = (*span.ip_sets[0]).clone();
    clients6.name = "clients6".into();
    clients6.family = gingham_crds::api::IpFamily::IPv6;
    clients6.members = members.iter().map(|m| (*m).into()).collect();
    span.ip_sets.push(clients6.into());
    let mut policy = (*span.policies[0]).clone();
    policy.ingress[0].source.sets.push("clients6".into());
    span.policies[0] = policy.into();
    span
}

fn dual_stack_rules(span: &NodeSpan) -> Ruleset {
    let mut spec = policy_spec();
    spec.address6 = Some("fd00:192::2/64".into());
    crate::dataplane::fixtures::rules(&spec, span, &pods(&["web", "db"]))
}

#[test]
fn ipv6_set_members_are_added_and_removed_as_elements() {
    let last = dual_stack_rules(&with_clients6(&["fd00:10::9", "fd00:10::7"]));
    let desired = dual_stack_rules(&with_clients6(&["fd00:10::9", "fd00:10:0:1::/64"]));
    let Plan::Changes(delta) = plan(&desired, Some(&Observed::expected(&last)), &Digests::new(), Some(&last)) else {
        panic!("expected a delta")
    };
    assert!(!delta.is_structural(), "{delta:?}");
    assert_eq!(
        render::delta(&delta),
        "delete element inet gingham s_clients6 { fd00:10::7 }\nadd element inet gingham s_clients6 { fd00:10:0:1::/64 }\n"
    );
    let mut retyped = desired.clone();
    retyped
        .sets
        .iter_mut()
        .filter(|s| s.name == "s_clients6")
        .for_each(|s| s.family = gingham_crds::api::IpFamily::IPv4);
    assert_eq!(structure(&desired, &retyped), None, "a set that changes its family needs a rewrite");
}

#[test]
fn an_empty_set_left_out_gets_programmed_by_a_delta_when_it_gains_a_member() {
    let ipv4_only = |span: &NodeSpan| crate::dataplane::fixtures::rules(&policy_spec(), span, &pods(&["web", "db"]));
    let last = ipv4_only(&with_clients6(&[]));
    assert!(last.sets.iter().all(|s| s.name != "s_clients6"), "an empty IPv6 set on an IPv4-only node");
    let desired = ipv4_only(&with_clients6(&["fd00:10::9"]));
    let Plan::Changes(delta) = plan(&desired, Some(&Observed::expected(&last)), &Digests::new(), Some(&last)) else {
        panic!("expected a delta, not a rewrite")
    };
    assert_eq!(delta.new_sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["s_clients6"]);
    let refilled = chain_names(&delta.refilled);
    assert!(refilled.iter().any(|c| c.starts_with("pi_default_allow_http")), "{refilled:?}");
    assert_eq!(delta.add["s_clients6"], ["fd00:10::9".to_string()].into());
}
