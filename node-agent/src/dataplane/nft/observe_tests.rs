#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::dataplane::fixtures::{endpoint, policy_span, policy_spec, rules};

/// Trimmed output of `nft -j list table inet gingham` (nft 1.0.6).
const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
 {"table": {"family": "inet", "name": "gingham", "handle": 2}},
 {"set": {"family": "inet", "name": "s_web", "table": "gingham", "type": "ipv4_addr", "flags": ["interval"],
   "elem": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}},
 {"set": {"family": "inet", "name": "np", "table": "gingham", "type": ["ipv4_addr", "inet_proto", "inet_service"],
   "elem": [{"concat": ["10.0.0.1", "tcp", 8080]}]}},
 {"map": {"family": "inet", "name": "from_endpoint", "table": "gingham", "type": "ifname", "map": "verdict",
   "elem": [["gh0123", {"jump": {"target": "ep_allow"}}]]}},
 {"set": {"family": "inet", "name": "empty", "table": "gingham", "type": "ipv4_addr"}},
 {"chain": {"family": "inet", "table": "gingham", "name": "ep_allow", "handle": 1}},
 {"chain": {"family": "inet", "table": "gingham", "name": "forward", "handle": 4, "hook": "forward"}},
 {"rule": {"family": "inet", "table": "gingham", "chain": "forward", "handle": 10, "comment": "gingham structure abc", "expr": []}},
 {"rule": {"family": "inet", "table": "gingham", "chain": "forward", "handle": 11, "expr": []}}]}"#;

#[test]
fn listings_parse_to_elements_chains_and_fingerprint() {
    let observed = Observed::from_json(LISTING).unwrap();
    assert_eq!(observed.fingerprint.as_deref(), Some("abc"));
    assert_eq!(observed.chains, [("ep_allow".to_string(), 0), ("forward".to_string(), 2)].into());
    let shown = |name: &str| observed.elements[name].iter().cloned().collect::<Vec<_>>();
    assert_eq!(shown("s_web"), vec!["10.0.0.1", "10.1.0.0/16"]);
    assert_eq!(shown("np"), vec!["10.0.0.1 . tcp . 8080"]);
    assert_eq!(shown("from_endpoint"), vec!["\"gh0123\" : jump ep_allow"]);
    assert!(shown("empty").is_empty());
    assert!(Observed::from_json("not json").is_err());
    let edited = Observed::from_json(
        &LISTING.replace(r#""handle": 11, "expr": []"#, r#""handle": 11, "expr": [{"accept": null}]"#),
    )
    .unwrap();
    assert_ne!(edited.rule_digests["forward"], observed.rule_digests["forward"], "an edited rule changes the digest");
    let renumbered = Observed::from_json(&LISTING.replace(r#""handle": 11"#, r#""handle": 99"#)).unwrap();
    assert_eq!(renumbered.rule_digests, observed.rule_digests, "handles do not matter");
}

#[test]
fn plans_pick_the_smallest_change() {
    let desired = rules(&policy_spec(), &policy_span(), &[endpoint("web", [10, 0, 0, 5])]);
    let mut exact = Observed::expected(&desired);
    exact.rule_digests = forward(0);
    assert_eq!(plan(&desired, None, &Digests::new(), None), Plan::Rewrite, "missing table");
    assert_eq!(plan(&desired, Some(&exact), &Digests::new(), None), Plan::UpToDate);

    let mut drifted = exact.clone();
    drifted.elements.get_mut("s_clients").unwrap().remove("10.0.0.9");
    drifted.elements.get_mut("s_clients").unwrap().insert("10.9.9.9".into());
    let Plan::Changes(delta) = plan(&desired, Some(&drifted), &Digests::new(), None) else {
        panic!("expected element updates")
    };
    assert!(!delta.is_structural());
    let Delta { add, delete, .. } = *delta;
    assert_eq!(add, [("s_clients".to_string(), ["10.0.0.9".to_string()].into())].into());
    assert_eq!(delete, [("s_clients".to_string(), ["10.9.9.9".to_string()].into())].into());

    let mut rule_deleted = exact.clone();
    *rule_deleted.chains.get_mut("forward").unwrap() -= 1;
    assert_eq!(plan(&desired, Some(&rule_deleted), &Digests::new(), None), Plan::Rewrite, "a deleted rule");
    let mut foreign = exact.clone();
    foreign.fingerprint = Some("other".into());
    assert_eq!(plan(&desired, Some(&foreign), &Digests::new(), None), Plan::Rewrite, "another structure");
    assert_eq!(plan(&desired, Some(&exact), &forward(0), None), Plan::UpToDate, "rules as gingham left them");
    assert_eq!(plan(&desired, Some(&exact), &forward(7), None), Plan::Rewrite, "a rule edited in place");
    let mut set_gone = exact;
    set_gone.elements.remove("s_clients");
    assert_eq!(plan(&desired, Some(&set_gone), &Digests::new(), None), Plan::Rewrite, "a deleted set");
}

fn forward(digest: u64) -> Digests {
    [("forward".to_string(), digest)].into()
}

#[test]
fn chains_a_change_touched_are_trusted_again_only_once_listed() {
    let mut seen = Observed::from_json(LISTING).unwrap();
    let trusted = trust(Digests::new(), &seen, &BTreeSet::new());
    assert_eq!(trusted, seen.rule_digests, "a first listing is adopted");
    let changed: BTreeSet<String> = ["forward".to_string()].into();
    let after_delta = trust(trusted, &seen, &changed);
    assert!(
        !after_delta.contains_key("forward")
            && after_delta.contains_key("ep_allow") == seen.rule_digests.contains_key("ep_allow")
    );
    seen.rule_digests.insert("forward".into(), 42);
    assert_eq!(trust(after_delta, &seen, &BTreeSet::new())["forward"], 42, "learned at the next listing");
    seen.chains.remove("forward");
    assert!(
        !trust(seen.rule_digests.clone(), &seen, &BTreeSet::new()).contains_key("forward"),
        "a deleted chain is forgotten"
    );
}
