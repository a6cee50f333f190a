#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The hub and the replica together: spans, patches to the interested only, catching up, resync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::{Batch, Delivery, Hub, HubError, ItemKey, ItemKind, Replica, ReplicaError, SetPatch, Update};

/// A set of numbers: a stand-in for an IP set.
type Members = BTreeSet<u32>;

fn key(name: &str) -> ItemKey {
    ItemKey::new(ItemKind::IpSet, name)
}

fn members(values: &[u32]) -> Members {
    values.iter().copied().collect()
}

fn span(names: &[&str]) -> Option<BTreeSet<ItemKey>> {
    Some(names.iter().map(|name| key(name)).collect())
}

/// Sets `a` (on n1 and n2) and `b` (on n2), both with ten members.
fn hub() -> Hub<Members> {
    let mut hub = Hub::new(8);
    let ten: Vec<u32> = (0..10).collect();
    let batch = Batch {
        items: BTreeMap::from([(key("a"), Some(members(&ten))), (key("b"), Some(members(&ten)))]),
        spans: BTreeMap::from([("n1".into(), span(&["a"])), ("n2".into(), span(&["a", "b"]))]),
    };
    hub.publish(1, batch).unwrap();
    hub
}

fn set_item(name: &str, value: Members) -> Batch<Members> {
    Batch { items: BTreeMap::from([(key(name), Some(value))]), spans: BTreeMap::new() }
}

fn replica_at(hub: &Hub<Members>, node: &str) -> Replica<Members> {
    let mut replica = Replica::default();
    replica.apply(hub.catch_up(node, None)).unwrap();
    replica
}

fn contents(replica: &Replica<Members>) -> BTreeMap<ItemKey, Members> {
    replica.items().iter().map(|(key, value)| (key.clone(), (**value).clone())).collect()
}

#[test]
fn a_snapshot_holds_exactly_the_nodes_span() {
    let hub = hub();
    let Delivery::Snapshot { revision, items } = hub.catch_up("n1", None) else { panic!("a first sync is a snapshot") };
    assert_eq!(revision, 1);
    assert_eq!(items.keys().cloned().collect::<Vec<_>>(), vec![key("a")]);
    assert!(hub.catch_up("n3", None).is_empty(), "a node with no span gets an empty snapshot");
}

#[test]
fn one_member_change_is_one_patch_to_the_interested_nodes_and_nothing_to_the_others() {
    let mut hub = hub();
    let mut n1 = replica_at(&hub, "n1");
    let published = hub.publish(2, set_item("b", members(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]))).unwrap();
    assert_eq!(published.nodes, BTreeSet::from(["n2".to_string()]), "only n2's span holds b");
    let to_n2 = hub.catch_up("n2", Some(1));
    let expected = Update::Patch(Arc::new(SetPatch { added: vec![10], removed: vec![9] }));
    assert_eq!(to_n2, Delivery::Delta { from: 1, to: 2, updates: BTreeMap::from([(key("b"), expected)]) });
    let to_n1 = hub.catch_up("n1", Some(1));
    assert!(to_n1.is_empty(), "n1 does not use b: {to_n1:?}");
    n1.apply(to_n1).unwrap();
    assert_eq!(n1.revision(), Some(2), "n1 still moves to the new revision");
}

#[test]
fn catching_up_sends_patches_whole_values_and_removals_as_the_window_requires() {
    let mut hub = hub();
    let mut n2 = replica_at(&hub, "n2");
    let ten: Vec<u32> = (0..10).collect();
    hub.publish(2, set_item("a", members(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 11]))).unwrap();
    hub.publish(3, set_item("a", members(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 12]))).unwrap();
    let c_on_n2 = Batch {
        items: BTreeMap::from([(key("c"), Some(members(&ten)))]),
        spans: BTreeMap::from([("n2".into(), span(&["a", "c"]))]),
    };
    hub.publish(4, c_on_n2).unwrap();
    let Delivery::Delta { from: 1, to: 4, updates } = hub.catch_up("n2", Some(1)) else {
        panic!("n2 is within the history")
    };
    let kinds: BTreeMap<String, &str> = updates
        .iter()
        .map(|(key, update)| {
            let kind = match update {
                Update::Set(_) => "set",
                Update::Patch(_) => "patch",
                Update::Remove => "remove",
            };
            (key.name.clone(), kind)
        })
        .collect();
    let expected = BTreeMap::from([("a".to_string(), "set"), ("b".to_string(), "remove"), ("c".to_string(), "set")]);
    assert_eq!(kinds, expected, "a changed twice, b left the span, c entered it");
    n2.apply(Delivery::Delta { from: 1, to: 4, updates }).unwrap();
    assert_eq!(contents(&n2), contents(&replica_at(&hub, "n2")), "caught up equals a fresh snapshot");
}

#[test]
fn a_revision_older_than_the_history_gets_a_snapshot_and_the_oldest_kept_base_a_delta() {
    let mut hub: Hub<Members> = Hub::new(2);
    hub.publish(
        1,
        Batch {
            items: BTreeMap::from([(key("a"), Some(members(&[1])))]),
            spans: BTreeMap::from([("n1".into(), span(&["a"]))]),
        },
    )
    .unwrap();
    for revision in 2..=4 {
        hub.publish(revision, set_item("a", members(&[1, u32::try_from(revision).unwrap()]))).unwrap();
    }
    assert!(matches!(hub.catch_up("n1", Some(1)), Delivery::Snapshot { revision: 4, .. }), "revision 1 is forgotten");
    assert!(
        matches!(hub.catch_up("n1", Some(2)), Delivery::Delta { from: 2, to: 4, .. }),
        "2 is the base of the kept history"
    );
    assert!(matches!(hub.catch_up("n1", Some(3)), Delivery::Delta { from: 3, to: 4, .. }));
    assert!(matches!(hub.catch_up("n1", Some(99)), Delivery::Snapshot { .. }), "a revision this hub never published");
}

#[test]
fn a_refused_batch_changes_nothing() {
    let mut hub = hub();
    let stale = hub.publish(1, set_item("a", members(&[1])));
    assert_eq!(stale.unwrap_err(), HubError::StaleRevision { given: 1, head: 1 });
    let dangling = Batch { items: BTreeMap::new(), spans: BTreeMap::from([("n1".into(), span(&["a", "zzz"]))]) };
    let error = hub.publish(2, dangling).unwrap_err();
    assert_eq!(error, HubError::DanglingKey { node: "n1".into(), key: key("zzz") });
    let removes_used = Batch { items: BTreeMap::from([(key("b"), None)]), spans: BTreeMap::new() };
    assert_eq!(hub.publish(2, removes_used).unwrap_err(), HubError::DanglingKey { node: "n2".into(), key: key("b") });
    assert_eq!(hub.head(), Some(1));
    assert_eq!(hub.item_count(), 2);
    assert!(matches!(hub.catch_up("n2", Some(1)), Delivery::Delta { ref updates, .. } if updates.is_empty()));
}

#[test]
fn a_delta_for_another_revision_or_a_drifted_copy_is_refused_and_the_copy_kept() {
    let mut hub = hub();
    let mut n2 = replica_at(&hub, "n2");
    hub.publish(2, set_item("b", members(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]))).unwrap();
    hub.publish(3, set_item("b", members(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 11]))).unwrap();
    let from_two = hub.catch_up("n2", Some(2));
    assert_eq!(n2.apply(from_two).unwrap_err(), ReplicaError::RevisionGap { from: 2, held: Some(1) });
    let before = contents(&n2);
    let bad = Delivery::Delta {
        from: 1,
        to: 3,
        updates: BTreeMap::from([
            (key("a"), Update::Set(Arc::new(members(&[7])))),
            (key("b"), Update::Patch(Arc::new(SetPatch { added: vec![], removed: vec![99] }))),
        ]),
    };
    assert!(matches!(n2.apply(bad), Err(ReplicaError::Patch { .. })));
    assert_eq!(contents(&n2), before, "nothing of a refused delta is applied");
    assert_eq!(n2.revision(), Some(1));
}

/// A small deterministic generator, so that the walk below is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn from_any_kept_revision_a_delta_gives_what_a_fresh_snapshot_gives() {
    let mut random = Lcg(7);
    let mut hub: Hub<Members> = Hub::new(64);
    let names = ["a", "b", "c", "d", "e"];
    let nodes = ["n1", "n2", "n3"];
    let mut sets: BTreeMap<&str, BTreeSet<u32>> = names.iter().map(|name| (*name, (0..20).collect())).collect();
    let mut replicas: Vec<(String, Replica<Members>)> = Vec::new();
    for revision in 1..=60 {
        let mut batch = Batch::default();
        // Every item exists; its members (a few toggled at a time, so most changes are patches)
        // and the spans move.
        for (name, set) in &mut sets {
            if revision == 1 || random.below(3) == 0 {
                for _ in 0..=random.below(3) {
                    let member = u32::try_from(random.below(24)).unwrap();
                    if !set.remove(&member) {
                        set.insert(member);
                    }
                }
                batch.items.insert(key(name), Some(set.clone()));
            }
        }
        for node in nodes {
            if revision == 1 || random.below(4) == 0 {
                let chosen: Vec<&str> = names.iter().copied().filter(|_| random.below(2) == 0).collect();
                batch.spans.insert(node.to_string(), span(&chosen));
            }
        }
        hub.publish(revision, batch).unwrap();
        for node in nodes {
            replicas.push((node.to_string(), replica_at(&hub, node)));
        }
    }
    for (node, mut replica) in replicas {
        let held = replica.revision();
        replica.apply(hub.catch_up(&node, held)).unwrap();
        assert_eq!(replica.revision(), hub.head());
        assert_eq!(contents(&replica), contents(&replica_at(&hub, &node)), "{node} from revision {held:?}");
    }
}

#[test]
fn a_node_whose_span_stayed_quiet_never_needs_a_snapshot_however_old_its_revision() {
    let mut hub: Hub<Members> = Hub::new(2);
    let batch = Batch {
        items: BTreeMap::from([(key("a"), Some(members(&[1]))), (key("b"), Some(members(&[1])))]),
        spans: BTreeMap::from([("quiet".into(), span(&["a"])), ("busy".into(), span(&["b"]))]),
    };
    hub.publish(1, batch).unwrap();
    for revision in 2..=10 {
        hub.publish(revision, set_item("b", members(&[1, u32::try_from(revision).unwrap()]))).unwrap();
    }
    assert!(!hub.changed_since("quiet", 1));
    assert_eq!(hub.catch_up("quiet", Some(1)), Delivery::Delta { from: 1, to: 10, updates: BTreeMap::new() });
    assert!(matches!(hub.catch_up("busy", Some(1)), Delivery::Snapshot { .. }), "busy's revision 1 is forgotten");
    assert!(matches!(hub.catch_up("quiet", Some(11)), Delivery::Snapshot { .. }), "a revision ahead of this hub");
    assert!(matches!(hub.catch_up("nobody", Some(0)), Delivery::Snapshot { .. }), "a revision before this hub's first");
}

#[test]
fn a_resync_by_content_sends_only_the_items_that_differ_and_removes_what_left_the_span() {
    let mut hub = hub();
    let ten: Vec<u32> = (0..10).collect();
    hub.publish(2, set_item("b", members(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]))).unwrap();
    // n2 holds a copy from another replica, at a revision this hub never published: a as here, b
    // from before revision 2, and z, which is not in its span here.
    let copy = BTreeMap::from([
        (key("a"), Arc::new(members(&ten))),
        (key("b"), Arc::new(members(&ten))),
        (key("z"), Arc::new(members(&[1]))),
    ]);
    let mut n2 = Replica::default();
    n2.apply(Delivery::Snapshot { revision: 77, items: copy.clone() }).unwrap();
    let held: BTreeMap<ItemKey, Members> = copy.iter().map(|(key, value)| (key.clone(), (**value).clone())).collect();
    let same = |_: &ItemKey, value: &Members, held: &Members| value == held;
    let delivery = hub.span("n2").resync(77, &held, same);
    let Delivery::Delta { from: 77, to: 2, updates } = &delivery else { panic!("a delta from 77: {delivery:?}") };
    let changed: Vec<(&str, bool)> =
        updates.iter().map(|(key, update)| (key.name.as_str(), matches!(update, Update::Remove))).collect();
    assert_eq!(changed, vec![("b", false), ("z", true)], "a is the same and is not sent; b is sent whole, z removed");
    n2.apply(delivery).unwrap();
    assert_eq!(contents(&n2), contents(&replica_at(&hub, "n2")), "resynced equals a fresh snapshot");
    let current: BTreeMap<ItemKey, Members> = contents(&n2);
    assert!(hub.span("n2").resync(2, &current, same).is_empty(), "a current copy gets nothing");
}
