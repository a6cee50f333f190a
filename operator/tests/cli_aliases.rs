//! `gingham-operator validate` and `render` are aliases of `gingham validate` and `render` (whose
//! tests, in cli/tests/, pin the behaviour): the same functions, the same output and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn operator(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gingham-operator")).current_dir(dir).args(args).output().unwrap();
    (output.status.code().unwrap(), String::from_utf8(output.stdout).unwrap())
}

#[test]
fn validate_and_render_still_answer_under_the_operator_binary() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "apiVersion: gingham.dev/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16}\n";
    std::fs::write(dir.path().join("pool.yaml"), pool).unwrap();
    std::fs::write(dir.path().join("node.yaml"), "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n").unwrap();
    assert_eq!(operator(&["validate", "pool.yaml"], dir.path()), (0, "1 objects in 1 files: 0 invalid\n".into()));
    assert_eq!(operator(&["validate", "missing.yaml"], dir.path()).0, 2);
    let (code, yaml) = operator(&["render", ".", "--node", "n1"], dir.path());
    assert_eq!(code, 0);
    assert!(yaml.starts_with("apiVersion: gingham.dev/v1\nkind: NodeNetwork\n"), "{yaml}");
}
