//! The reader as a source of events: a change yields events for the objects of the files it
//! touched, duplicates resolve to the last file, and the operator's own writes are not changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn pool(name: &str, cidr: &str) -> String {
    format!("apiVersion: gingham.dev/v1\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: {cidr}\n")
}

/// Each event as `+name cidr` (upsert of a pool) or `-name` (delete).
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Event::Upsert(Object::Pool(p)) => {
                format!("+{} {}", p.metadata.name.as_deref().unwrap_or_default(), p.spec.cidr)
            }
            Event::Upsert(other) => format!("+{:?}", other.kind()),
            Event::Delete(_, (_, name)) => format!("-{name}"),
        })
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_change_yields_events_for_the_objects_of_the_files_it_touched_only() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("objects/b.yaml"));
    write(&a, &pool("one", "10.1.0.0/16"));
    write(&b, &format!("{}---\n{}", pool("two", "10.2.0.0/16"), pool("three", "10.3.0.0/16")));
    let mut reader = Reader::new(dir.path());
    assert_eq!(
        summary(&reader.rescan().unwrap().events),
        ["+one 10.1.0.0/16", "+three 10.3.0.0/16", "+two 10.2.0.0/16"]
    );

    write(&b, &pool("two", "10.20.0.0/16"));
    let delta = reader.refresh([b.clone()]).unwrap();
    assert_eq!(summary(&delta.events), ["-three", "+two 10.20.0.0/16"]);

    // Named again without a change: nothing to do.
    assert!(reader.refresh([a.clone(), b.clone()]).unwrap().events.is_empty());

    std::fs::remove_file(&a).unwrap();
    assert_eq!(summary(&reader.refresh([a]).unwrap().events), ["-one"]);
    let snapshot = reader.snapshot();
    assert_eq!(snapshot.pools.iter().map(|p| p.spec.cidr.as_str()).collect::<Vec<_>>(), ["10.20.0.0/16"]);
}

#[test]
fn an_object_in_two_files_comes_from_the_last_and_falls_back_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    write(&a, &pool("p", "10.1.0.0/16"));
    write(&b, &pool("p", "10.2.0.0/16"));
    let mut reader = Reader::new(dir.path());
    let first = reader.rescan().unwrap();
    assert_eq!(summary(&first.events).last().map(String::as_str), Some("+p 10.2.0.0/16"));

    // The losing file changes: the winner stands.
    write(&a, &pool("p", "10.3.0.0/16"));
    assert!(reader.refresh([a.clone()]).unwrap().events.is_empty());
    // The winner goes: the other file's version takes over.
    std::fs::remove_file(&b).unwrap();
    assert_eq!(summary(&reader.refresh([b]).unwrap().events), ["+p 10.3.0.0/16"]);
    std::fs::remove_file(&a).unwrap();
    assert_eq!(summary(&reader.refresh([a]).unwrap().events), ["-p"]);
}

#[test]
fn a_directory_named_by_the_watcher_stands_for_every_file_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("objects/team");
    write(&team.join("one.yaml"), &pool("one", "10.1.0.0/16"));
    write(&team.join("deep/two.yaml"), &pool("two", "10.2.0.0/16"));
    let mut reader = Reader::new(dir.path());
    reader.rescan().unwrap();

    std::fs::rename(&team, dir.path().join("moved-away")).unwrap();
    assert_eq!(summary(&reader.refresh([team.clone()]).unwrap().events), ["-two", "-one"]);
    std::fs::rename(dir.path().join("moved-away"), &team).unwrap();
    assert_eq!(summary(&reader.refresh([team]).unwrap().events), ["+two 10.2.0.0/16", "+one 10.1.0.0/16"]);
}

#[test]
fn the_operators_own_writes_are_adopted_and_anyone_elses_edit_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("generated/nodenetworks/node-1.yaml");
    let mut reader = Reader::new(dir.path());
    reader.rescan().unwrap();

    write(&own, "kind: NodeNetwork\n");
    reader.adopt(std::slice::from_ref(&own));
    let delta = reader.refresh([own.clone()]).unwrap();
    assert!(!delta.own_changed && delta.events.is_empty(), "{delta:?}");

    write(&own, "kind: NodeNetwork # edited by hand\n");
    assert!(reader.refresh([own.clone()]).unwrap().own_changed);
    std::fs::remove_file(&own).unwrap();
    assert!(reader.rescan().unwrap().own_changed, "a rescan notices the removal");
}

#[test]
fn temporary_files_and_files_outside_the_layout_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [dir.path().join(".a.yaml.tmp"), dir.path().join("elsewhere/a.yaml"), dir.path().join("notes.txt")];
    for path in &paths {
        write(path, &pool("p", "10.1.0.0/16"));
    }
    let mut reader = Reader::new(dir.path());
    assert!(reader.refresh(paths).unwrap().events.is_empty());
    assert!(reader.rescan().unwrap().events.is_empty());
}

#[test]
fn a_pool_on_its_marker_line_is_read_and_an_oversized_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    write(&a, "--- {apiVersion: gingham.dev/v1, kind: IPPool, metadata: {name: p}, spec: {cidr: 10.1.0.0/16}}\n");
    let big = std::fs::File::create(&b).unwrap();
    big.set_len(gingham_crds::manifest::MAX_MANIFEST_BYTES + 1).unwrap();
    let mut reader = Reader::new(dir.path());
    let delta = reader.rescan().unwrap();
    assert_eq!(summary(&delta.events), ["+p 10.1.0.0/16"]);
    assert_eq!(delta.problems.len(), 1, "{:?}", delta.problems);
    assert!(delta.problems[0].contains("b.yaml is larger than 16777216 bytes"), "{:?}", delta.problems);
}

#[test]
fn an_overlay_replaces_objects_by_identity_adds_new_ones_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("pools.yaml"), &(pool("a", "10.1.0.0/16") + "---\n" + &pool("b", "10.2.0.0/16")));
    let snapshot = Reader::new(dir.path()).read().unwrap().snapshot;
    let change = pool("b", "10.3.0.0/16") + "---\n" + &pool("c", "10.4.0.0/16") + "---\n" + &pool("d", "banana");
    let (after, problems) = overlay(snapshot, Path::new("change.yaml"), &change);
    let pools: Vec<(String, String)> =
        after.pools.iter().map(|p| (p.metadata.name.clone().unwrap(), p.spec.cidr.clone())).collect();
    let expected = [("a", "10.1.0.0/16"), ("b", "10.3.0.0/16"), ("c", "10.4.0.0/16"), ("d", "banana")];
    assert_eq!(pools, expected.map(|(n, c)| (n.to_string(), c.to_string())));
    assert_eq!(problems, ["change.yaml:15: IPPool/d: spec.cidr: cidr must be a CIDR such as 10.244.0.0/16"]);
}
