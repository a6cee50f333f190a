#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Node-local IPAM: persistence, idempotence, GC, exhaustion, pressure and concurrency.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod ipam_support;

use gingham_crds::api::IpFamily;
use gingham_node_agent::ipam::{Attachment, BlockSet, IpamError, IpamStore, LOCK_TIMEOUT};
use ipam_support::{blocks, request};

/// A store whose tunnel address is already allocated (the first address of `set`'s tunnel block).
fn with_tunnel(dir: &std::path::Path, set: &BlockSet) -> IpamStore {
    let store = IpamStore::open(dir).unwrap();
    store.ensure_tunnel(set, IpFamily::IPv4, "tunnel-addr-test").unwrap();
    store
}

#[test]
fn allocations_survive_reopen_and_add_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let set = blocks(&["10.244.0.0/30"], &["10.244.0.0/30"]);
    let first = with_tunnel(dir.path(), &set).allocate(&set, &request("a")).unwrap();
    assert_eq!(first.address.unwrap().to_string(), "10.244.0.1", "the tunnel address is skipped");
    let reopened = IpamStore::open(dir.path()).unwrap();
    assert_eq!(reopened.allocate(&set, &request("a")).unwrap(), first, "same container, same address");
    let second = reopened.allocate(&set, &request("b")).unwrap();
    assert_eq!(second.address.unwrap().to_string(), "10.244.0.2");
    assert_eq!(reopened.list().unwrap(), vec![first, second]);
}

#[test]
fn release_is_idempotent_and_frees_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.244.0.0/31"], &[]);
    let a = store.allocate(&set, &request("a")).unwrap();
    assert_eq!(store.release("a", Some("eth0")).unwrap(), vec![a.clone()]);
    assert!(store.release("a", Some("eth0")).unwrap().is_empty());
    assert!(store.release("never", None).unwrap().is_empty());
    assert_eq!(store.allocate(&set, &request("b")).unwrap().address, a.address);
}

#[test]
fn gc_releases_what_is_not_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.244.0.0/28"], &[]);
    for id in ["a", "b", "c"] {
        store.allocate(&set, &request(id)).unwrap();
    }
    let valid = vec![Attachment { container_id: "b".into(), ifname: "eth0".into() }];
    let gone: Vec<_> = store.gc(&valid).unwrap().into_iter().map(|a| a.container_id).collect();
    assert_eq!(gone, vec!["a", "c"]);
    let left: Vec<_> = store.list().unwrap().into_iter().map(|a| a.container_id).collect();
    assert_eq!(left, vec!["b"]);
}

#[test]
fn a_new_sandbox_of_the_same_pod_replaces_the_old_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.244.0.0/28"], &[]);
    store.allocate(&set, &request("old")).unwrap();
    let mut again = request("new");
    again.pod = "pod-old".into();
    store.allocate(&set, &again).unwrap();
    let left: Vec<_> = store.list().unwrap().into_iter().map(|a| a.container_id).collect();
    assert_eq!(left, vec!["new"]);
}

#[test]
fn exhaustion_is_an_error_that_says_what_to_do_and_pressure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let set = blocks(&["10.244.0.0/29"], &["10.244.0.0/29"]);
    let store = with_tunnel(dir.path(), &set);
    let mut pressures = Vec::new();
    for index in 0..7 {
        store.allocate(&set, &request(&index.to_string())).unwrap();
        let usage = store.usage(&set).unwrap();
        assert_eq!((usage.allocated, usage.capacity), (index + 2, 8), "the tunnel address counts as allocated");
        pressures.push(usage.pressure);
    }
    // 6/8 = 75% is fine, 7/8 = 88% is pressure.
    assert_eq!(pressures, vec![false, false, false, false, false, true, true]);
    let error = store.allocate(&set, &request("full")).unwrap_err();
    assert!(matches!(error, IpamError::Exhausted { .. }), "{error}");
    assert!(error.to_string().contains("10.244.0.0/29"), "{error}");
    assert!(store.usage(&blocks(&[], &[])).unwrap().pressure, "no blocks at all is pressure too");
}

#[test]
fn mark_ready_needs_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    assert!(matches!(store.mark_ready("x", "eth0"), Err(IpamError::NotFound { .. })));
    store.allocate(&blocks(&["10.0.0.0/30"], &[]), &request("x")).unwrap();
    assert!(store.mark_ready("x", "eth0").unwrap().ready);
    assert!(store.list().unwrap()[0].ready);
}

#[test]
fn a_corrupt_table_is_an_error_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    std::fs::write(dir.path().join("ipam/allocations.json"), "{ not json").unwrap();
    let error = store.allocate(&blocks(&["10.0.0.0/30"], &[]), &request("x")).unwrap_err();
    assert!(matches!(error, IpamError::Corrupt { .. }), "{error}");
}

#[test]
fn concurrent_allocations_from_many_handles_never_collide() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let set = Arc::new(blocks(&["10.244.0.0/26"], &["10.244.0.0/26"]));
    with_tunnel(dir.path(), &set);
    let threads: Vec<_> = (0..32)
        .map(|index| {
            let (dir, set) = (Arc::clone(&dir), Arc::clone(&set));
            std::thread::spawn(move || {
                // A separate store (and so a separate lock file description) per thread, like separate processes.
                let store = IpamStore::open(dir.path()).unwrap();
                store.allocate(&set, &request(&format!("c{index}"))).unwrap().address.unwrap()
            })
        })
        .collect();
    let addresses: BTreeSet<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(addresses.len(), 32);
    assert!(!addresses.contains(&"10.244.0.0".parse().unwrap()), "no pod gets the tunnel address");
    assert_eq!(IpamStore::open(dir.path()).unwrap().list().unwrap().len(), 32);
}

/// Child mode of the multi-process test: allocate one address and print it. Ignored, so it never
/// reports a pass on its own; the parent runs it with `--ignored`.
#[test]
#[ignore = "child mode of concurrent_allocations_from_many_processes_never_collide, which runs it"]
fn child_process_allocates() {
    let (Ok(dir), Ok(id)) = (std::env::var("GINGHAM_IPAM_CHILD_DIR"), std::env::var("GINGHAM_IPAM_CHILD_ID")) else {
        panic!("run by concurrent_allocations_from_many_processes_never_collide, which sets GINGHAM_IPAM_CHILD_*");
    };
    let store = IpamStore::open(std::path::Path::new(&dir)).unwrap();
    let allocation = store.allocate(&blocks(&["10.244.0.0/26"], &[]), &request(&id)).unwrap();
    println!("ADDRESS={}", allocation.address.unwrap());
}

#[test]
fn concurrent_allocations_from_many_processes_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..12)
        .map(|index| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_process_allocates", "--ignored", "--nocapture", "--test-threads=1"])
                .env("GINGHAM_IPAM_CHILD_DIR", dir.path())
                .env("GINGHAM_IPAM_CHILD_ID", format!("p{index}"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut addresses = BTreeSet::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().find_map(|l| l.split("ADDRESS=").nth(1)).expect("child printed its address");
        addresses.insert(line.to_string());
    }
    assert_eq!(addresses.len(), 12, "{addresses:?}");
    assert_eq!(IpamStore::open(dir.path()).unwrap().list().unwrap().len(), 12);
}

#[test]
fn allocations_never_made_ready_are_released_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let set = blocks(&["10.244.0.0/28"], &[]);
    store.allocate(&set, &request("pending")).unwrap();
    store.allocate(&set, &request("plumbed")).unwrap();
    store.mark_ready("plumbed", "eth0").unwrap();
    let table = dir.path().join("ipam").join("allocations.json");
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&table).unwrap());
    let before = inode();
    assert!(store.release_stale_pending(3600).unwrap().is_empty(), "young pending allocations stay");
    assert_eq!(inode(), before, "nothing released, nothing written (the agent checks on every sync)");
    let gone: Vec<_> = store.release_stale_pending(0).unwrap().into_iter().map(|a| a.container_id).collect();
    assert_eq!(gone, vec!["pending"]);
    let left: Vec<_> = store.list().unwrap().into_iter().map(|a| a.container_id).collect();
    assert_eq!(left, vec!["plumbed"]);
}

/// Child mode of the kill test: allocate until killed. Ignored, so it never reports a pass on its
/// own; the parent runs it with `--ignored`.
#[test]
#[ignore = "child mode of a_process_killed_mid_way_leaves_a_consistent_table, which runs it"]
fn child_process_allocates_until_killed() {
    let dir = std::env::var("GINGHAM_IPAM_KILL_DIR")
        .expect("run by a_process_killed_mid_way_leaves_a_consistent_table, which sets GINGHAM_IPAM_KILL_DIR");
    let store = IpamStore::open(std::path::Path::new(&dir)).unwrap();
    for index in 0.. {
        store.allocate(&blocks(&["10.245.0.0/20"], &[]), &request(&format!("k{index}"))).unwrap();
    }
}

#[test]
fn a_process_killed_mid_way_leaves_a_consistent_table() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..5 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "child_process_allocates_until_killed", "--ignored", "--test-threads=1"])
            .env("GINGHAM_IPAM_KILL_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + 37 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let store = IpamStore::open(dir.path()).unwrap();
        let all = store.list().expect("the table still parses after a kill");
        let unique: BTreeSet<_> = all.iter().map(|a| a.address).collect();
        assert_eq!(unique.len(), all.len(), "round {round}: no address twice");
        let next = store.allocate(&blocks(&["10.245.0.0/20"], &[]), &request(&format!("after{round}"))).unwrap();
        assert!(!unique.contains(&next.address), "round {round}: a new address after the kill");
    }
    assert!(IpamStore::open(dir.path()).unwrap().list().unwrap().len() > 5, "the children did allocate");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// State left world-readable by an earlier version (or an administrator) is made root's alone
/// when the store opens: anyone who can open the lock can stop every IPAM call.
#[test]
fn a_loose_state_directory_is_tightened_to_root_only() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    IpamStore::open(&state).unwrap().allocate(&blocks(&["10.0.0.0/30"], &[]), &request("x")).unwrap();
    let ipam = state.join("ipam");
    let loose = [(&state, 0o755), (&ipam, 0o777), (&ipam.join("lock"), 0o644), (&ipam.join("allocations.json"), 0o666)];
    for (path, mode) in loose {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let store = IpamStore::open(&state).unwrap();

    let modes: Vec<String> = loose.iter().map(|(path, _)| format!("{:o}", mode(path))).collect();
    assert_eq!(modes, ["700", "700", "600", "600"], "state, ipam/, lock, table");
    assert_eq!(store.list().unwrap().len(), 1, "the table is kept");
}

/// A lock held from another open file (a hung process, or anyone who could open it) makes
/// calls fail after [`LOCK_TIMEOUT`] with an error naming the lock and its holder, not hang.
#[test]
fn a_held_lock_fails_calls_fast_naming_the_lock_and_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let store = IpamStore::open(dir.path()).unwrap();
    let lock = dir.path().join("ipam/lock");
    let holder = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).unwrap();
    holder.lock().unwrap();

    let started = Instant::now();
    let error = store.allocate(&blocks(&["10.0.0.0/30"], &[]), &request("x")).unwrap_err();
    let waited = started.elapsed();

    assert!(matches!(error, IpamError::LockTimeout { .. }), "{error}");
    assert!(waited >= LOCK_TIMEOUT && waited < LOCK_TIMEOUT + Duration::from_secs(2), "waited {waited:?}");
    let message = error.to_string();
    assert!(message.contains(&lock.display().to_string()), "names the lock: {message}");
    assert!(message.contains(&format!("pid {}", std::process::id())), "names the holder: {message}");
    drop(holder);
    assert!(store.allocate(&blocks(&["10.0.0.0/30"], &[]), &request("x")).is_ok(), "free again");
}
