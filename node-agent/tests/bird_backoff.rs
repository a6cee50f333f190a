//! A BIRD that keeps exiting is reported on every exit and restarted with a doubling backoff,
//! which reapplying the config does not bypass (no BIRD needed: a stand-in that exits at once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use gingham_node_agent::bird::{BirdError, BirdPaths, BirdSupervisor};

/// A stand-in `bird` that accepts any config (`-p`) and otherwise exits at once, as a BIRD that
/// crashes on start would.
fn crashing_bird(dir: &Path) -> BirdPaths {
    let program = dir.join("bird");
    std::fs::write(&program, "#!/bin/sh\n[ \"$1\" = -p ] && exit 0\nexit 3\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    BirdPaths { bird: vec![program.display().to_string()], birdc: "/bin/false".into(), dir: run }
}

/// Polls until BIRD's exit is reported; returns the report.
async fn next_exit(bird: &mut BirdSupervisor) -> String {
    let start = Instant::now();
    loop {
        if let Err(error) = bird.poll() {
            assert!(matches!(error, BirdError::Exited { .. }), "{error}");
            return error.to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "BIRD's exit was not reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_exiting_bird_is_reported_and_restarted_with_growing_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let mut bird = BirdSupervisor::new(crashing_bird(dir.path()));
    let config = "router id 10.0.0.1;\n";
    bird.apply(config).await.unwrap();
    let first = next_exit(&mut bird).await;
    assert!(first.contains("restarting in 1s"), "{first}");
    let exited = Instant::now();
    assert!(bird.poll().is_ok() && bird.pid().is_none(), "no restart before the backoff has passed");
    bird.apply(config).await.unwrap();
    assert!(bird.pid().is_none(), "reapplying the config must not restart BIRD before its backoff");
    let second = next_exit(&mut bird).await;
    assert!(exited.elapsed() >= Duration::from_secs(1), "restarted after {:?}", exited.elapsed());
    assert!(second.contains("restarting in 2s"), "the backoff doubles: {second}");
    assert_eq!(bird.restarts(), (1, Some(second.as_str())));
}
