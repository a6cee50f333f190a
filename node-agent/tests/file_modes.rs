#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Everything the agent writes on the node is root's alone: the IPAM table and lock, BIRD's config
//! (it holds BGP passwords) and the CNI socket. Directories and files left loose by an earlier
//! version are tightened, and a local user (`nobody`) can neither lock IPAM nor read the config.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gingham_node_agent::api;
use gingham_node_agent::bird::{BirdPaths, BirdSupervisor};
use gingham_node_agent::ipam::{AllocationRequest, BlockSet, FamilyRequest, IpamStore};

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every entry under `root`, relative, with its permission bits.
fn listing(root: &Path) -> BTreeMap<String, u32> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path.clone());
            }
            let name = path.strip_prefix(root).unwrap().display().to_string();
            found.insert(name, meta.permissions().mode() & 0o7777);
        }
    }
    found
}

/// A stand-in `bird` that accepts every config and exits at once when started.
fn stand_in_bird(programs: &Path, dir: &Path) -> BirdPaths {
    let program = programs.join("bird");
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    set_mode(&program, 0o755);
    BirdPaths { bird: vec![program.display().to_string()], birdc: "/bin/false".into(), dir: dir.to_path_buf() }
}

/// Whether `nobody` can run `args` (through `setpriv`).
fn nobody_can(args: &[&str]) -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn everything_the_agent_writes_is_root_only() {
    let root_user = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    assert!(root_user, "this test needs root: it checks what `nobody` can reach");
    let programs = tempfile::tempdir().unwrap();
    let node = tempfile::tempdir().unwrap();
    // An earlier version's layout: world-readable directories, a 0644 config and a loose candidate.
    set_mode(node.path(), 0o755);
    let (state, bird_dir) = (node.path().join("state"), node.path().join("bird"));
    for dir in [&state, &state.join("ipam"), &bird_dir] {
        std::fs::create_dir_all(dir).unwrap();
        set_mode(dir, 0o755);
    }
    for (file, mode) in [("bird.conf", 0o644), ("bird.conf.candidate", 0o666)] {
        std::fs::write(bird_dir.join(file), "old\n").unwrap();
        set_mode(&bird_dir.join(file), mode);
    }

    let ipam = IpamStore::open(&state).unwrap();
    let blocks = BlockSet {
        blocks: vec!["10.9.0.0/30".parse().unwrap()],
        releasing: Default::default(),
        tunnel_blocks: Vec::new(),
    };
    let request = AllocationRequest {
        container_id: "c".into(),
        ifname: "eth0".into(),
        namespace: "default".into(),
        pod: "web".into(),
        uid: None,
        families: vec![FamilyRequest::any(gingham_crds::api::IpFamily::IPv4)],
    };
    ipam.allocate(&blocks, &request).unwrap();
    ipam.mark_ready("c", "eth0").unwrap();
    let mut bird = BirdSupervisor::new(stand_in_bird(programs.path(), &bird_dir));
    let password = "router id 10.9.0.1;\nprotocol bgp p { password \"secret\"; }\n";
    bird.apply(password).await.unwrap();
    let _listener = api::bind(&node.path().join("run/cni.sock")).unwrap();

    let expected: BTreeMap<String, u32> = [
        ("state", 0o700),
        ("state/ipam", 0o700),
        ("state/ipam/lock", 0o600),
        ("state/ipam/allocations.json", 0o600),
        ("bird", 0o700),
        ("bird/bird.conf", 0o600),
        ("run", 0o700),
        ("run/cni.sock", 0o600),
    ]
    .into_iter()
    .map(|(name, mode)| (name.to_string(), mode))
    .collect();
    let modes = |found: BTreeMap<String, u32>| found.into_iter().map(|(n, m)| format!("{n} {m:o}")).collect::<Vec<_>>();
    assert_eq!(modes(listing(node.path())), modes(expected), "what the agent wrote, with modes");
    assert_eq!(std::fs::read_to_string(bird_dir.join("bird.conf")).unwrap(), password);

    // The node's directory itself stays as it was (it may be shared); what the agent owns does not.
    let lock = state.join("ipam/lock").display().to_string();
    let config = bird_dir.join("bird.conf").display().to_string();
    assert!(!nobody_can(&["flock", "-n", &lock, "true"]), "nobody must not be able to take the IPAM lock");
    assert!(!nobody_can(&["cat", &config]), "nobody must not read BIRD's config");
    assert!(nobody_can(&["ls", &node.path().display().to_string()]), "the check itself runs as nobody");
}
