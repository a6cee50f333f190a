//! `gingham diags [NODE]`: a tarball for a bug report, collected on the node (run it there, or in
//! the node's network namespace): links, routes, neighbours, FDB, the nftables table, BIRD's
//! configuration and `show protocols all`, the agent's log, and the node's NodeNetwork (spec and
//! status). BGP passwords are redacted everywhere; what could not be collected is listed in
//! `MANIFEST.txt` rather than failing the whole collection.

use std::path::{Path, PathBuf};
use std::process::Command;

use gingham_datastore::atomic::{PRIVATE_FILE, write_atomic};
use serde::Serialize;

use crate::output::Report;
use crate::source::ClusterView;

/// Where the node's agent keeps what diags reads (the agent's own defaults).
#[derive(Clone, Debug, clap::Args)]
pub struct DiagsArgs {
    /// The node (default: $NODE_NAME, else the host name).
    pub node: Option<String>,
    /// The tarball to write (default: gingham-diags-NODE.tar.gz).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The agent's BIRD directory (bird.conf, bird.ctl).
    #[arg(long, default_value = "/var/run/gingham/bird")]
    pub bird_dir: PathBuf,
    /// The agent's log file, when it logs to one.
    #[arg(long)]
    pub agent_log: Option<PathBuf>,
}

/// What `diags` wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiagsReport {
    /// The tarball.
    pub tarball: PathBuf,
    /// Each part: file name and `ok` or why it is missing.
    pub parts: Vec<(String, String)>,
}

impl DiagsReport {
    /// Whether every part was collected.
    pub fn is_complete(&self) -> bool {
        self.parts.iter().all(|(_, state)| state == "ok")
    }
}

/// Replaces what follows `password` on each line (BIRD's `password "..."`, YAML's `password: ...`).
pub fn redact(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("password") {
            Some(at) => format!("{}password <redacted>", &line[..at]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// Collects everything into a tarball.
pub fn collect(view: &ClusterView, args: &DiagsArgs) -> Result<DiagsReport, String> {
    let node = crate::node::this_node(args.node.clone());
    let tarball = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("gingham-diags-{node}.tar.gz")));
    let dir = std::env::temp_dir().join(format!("gingham-diags-{}", std::process::id()));
    let work = dir.join(format!("gingham-diags-{node}"));
    let bird_socket = args.bird_dir.join("bird.ctl").display().to_string();
    let network = view.node_networks.get(&node).map(|n| {
        let mut n = n.clone();
        n.status = view.snapshot.node_statuses.get(&node).cloned();
        n
    });
    let parts: Vec<(&str, Result<String, String>)> = vec![
        ("links.txt", run("ip", &["-d", "link", "show"])),
        ("routes.txt", run("ip", &["-4", "route", "show", "table", "all"])),
        ("neighbours.txt", run("ip", &["neigh", "show"])),
        ("fdb.txt", run("bridge", &["fdb", "show"])),
        ("nftables.txt", run("nft", &["list", "table", "inet", "gingham"])),
        (
            "bird.conf",
            std::fs::read_to_string(args.bird_dir.join("bird.conf"))
                .map_err(|e| format!("{}: {e}", args.bird_dir.display())),
        ),
        ("bird-protocols.txt", run("birdc", &["-s", &bird_socket, "show", "protocols", "all"])),
        (
            "agent.log",
            match &args.agent_log {
                Some(log) => std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display())),
                None => Err("no --agent-log given (in Kubernetes: kubectl logs the agent's pod)".into()),
            },
        ),
        (
            "nodenetwork.yaml",
            network
                .ok_or_else(|| format!("no NodeNetwork {node} in the datastore"))
                .and_then(|n| serde_saphyr::to_string(&n).map_err(|e| e.to_string())),
        ),
    ];
    let mut report = DiagsReport { tarball: tarball.clone(), parts: Vec::new() };
    let mut manifest = format!("gingham diags of node {node}, gingham {}\n", env!("CARGO_PKG_VERSION"));
    for (name, content) in parts {
        let state = match content {
            Ok(text) => {
                write_atomic(&work.join(name), redact(&text).as_bytes(), PRIVATE_FILE).map_err(|e| e.to_string())?;
                "ok".to_string()
            }
            Err(why) => why,
        };
        manifest += &format!("{name}: {state}\n");
        report.parts.push((name.to_string(), state));
    }
    write_atomic(&work.join("MANIFEST.txt"), manifest.as_bytes(), PRIVATE_FILE).map_err(|e| e.to_string())?;
    let tar = run("tar", &["-czf", &path_text(&tarball), "-C", &path_text(&dir), &format!("gingham-diags-{node}")]);
    let _ = std::fs::remove_dir_all(&dir);
    tar.map(|_| report)
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

impl Report for DiagsReport {
    fn human(&self) -> String {
        let mut out = format!("wrote {}\n", self.tarball.display());
        for (name, state) in &self.parts {
            out += &format!("  {name:<20} {state}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_bird_and_yaml_text() {
        let cases = [
            ("  password \"s3cret\";", "  password <redacted>\n"),
            ("      password: s3cret", "      password <redacted>\n"),
            ("neighbor 10.0.0.1 as 64512;", "neighbor 10.0.0.1 as 64512;\n"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact(text), expected, "{text}");
        }
    }
}
