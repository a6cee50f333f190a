//! Connectivity matrices: every pod to every other pod (or to any address), by ICMP or TCP/UDP,
//! run in parallel from inside the pods' namespaces.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use crate::cmd;
use crate::family::socket_text;
use crate::lab::LAB;
use crate::state::{LabState, PodRecord};
use gingham_crds::api::IpFamily;

/// How to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// One ping with a 1 s deadline.
    Icmp,
    /// A TCP connection to this port with a 1 s timeout.
    Tcp(u16),
    /// A UDP datagram to this port, answered within 1 s.
    Udp(u16),
}

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The packet got there and back.
    Ok,
    /// TCP: actively refused (reachable, but nothing listens).
    Refused,
    /// Nothing came back (dropped by policy or no route).
    Blocked,
}

impl Reach {
    fn symbol(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "rst",
            Self::Blocked => "--",
        }
    }
}

/// A connectivity matrix, by (`namespace/pod` source, `namespace/pod` destination).
pub type Matrix = BTreeMap<(String, String), Reach>;

/// The command that probes `address` from inside `from`.
pub fn probe_command(state: &LabState, from: &str, address: &str, probe: Probe) -> Command {
    match probe {
        Probe::Icmp => cmd::in_netns(from, "ping", &["-c1", "-W1", "-q", address]),
        Probe::Tcp(port) | Probe::Udp(port) => {
            let lab = state.bin_dir.join(LAB).display().to_string();
            let target = socket_text(address, port);
            let mut args = vec!["connect", target.as_str()];
            if matches!(probe, Probe::Udp(_)) {
                args.push("--udp");
            }
            cmd::in_netns(from, &lab, &args)
        }
    }
}

/// Probes `address` from the namespace `from`.
pub fn reach(state: &LabState, from: &str, address: &str, probe: Probe) -> Reach {
    match cmd::output(&mut probe_command(state, from, address, probe), None) {
        Ok(out) if out.status.success() => Reach::Ok,
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("refused") => Reach::Refused,
        _ => Reach::Blocked,
    }
}

/// Probes every pair of pods (not a pod to itself), 16 at a time, in the lab's first family (IPv4
/// unless the lab is IPv6-only).
pub fn matrix(state: &LabState, probe: Probe) -> Matrix {
    let family = state.families().first().copied().unwrap_or(IpFamily::IPv4);
    matrix_in(state, probe, family)
}

/// Probes every pair of pods that have an address of `family`, to that address.
pub fn matrix_in(state: &LabState, probe: Probe, family: IpFamily) -> Matrix {
    let pods: Vec<&PodRecord> = state.pods.iter().filter(|p| p.ip(family).is_some()).collect();
    let pairs: Vec<(&PodRecord, &PodRecord)> =
        pods.iter().flat_map(|a| pods.iter().filter(move |b| a.netns != b.netns).map(move |b| (*a, *b))).collect();
    let mut result = Matrix::new();
    for chunk in pairs.chunks(16) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(a, b)| {
                    let address = b.ip(family).unwrap_or_default();
                    let handle = scope.spawn(move || reach(state, &a.netns, address, probe));
                    ((a.key(), b.key()), handle)
                })
                .collect();
            for (key, handle) in handles {
                result.insert(key, handle.join().unwrap_or(Reach::Blocked));
            }
        });
    }
    result
}

/// Renders a matrix as a table: rows are sources, columns destinations.
pub fn render(state: &LabState, matrix: &Matrix) -> String {
    let family = state.families().first().copied().unwrap_or(IpFamily::IPv4);
    render_families(state, &[(family, matrix.clone())])
}

/// Renders the matrices of several families as one table: each cell shows one result per family,
/// in the order given (`ok/--`: reached over the first, not over the second).
pub fn render_families(state: &LabState, matrices: &[(IpFamily, Matrix)]) -> String {
    let pods: Vec<String> = state.pods.iter().map(PodRecord::key).collect();
    let width = pods.iter().map(String::len).max().unwrap_or(4).max(9) + 3;
    let cell_width = 3 * matrices.len().max(1) + 1;
    let mut out = String::new();
    if matrices.len() > 1 {
        let families: Vec<String> = matrices.iter().map(|(family, _)| family.to_string()).collect();
        let _ = writeln!(out, "each cell: {}", families.join("/"));
    }
    let _ = write!(out, "{:width$}  ", "from \\ to");
    for (i, _) in pods.iter().enumerate() {
        let _ = write!(out, "{:>cell_width$}", i + 1);
    }
    out.push('\n');
    for (i, from) in pods.iter().enumerate() {
        let _ = write!(out, "{:width$}  ", format!("{} {from}", i + 1));
        for to in &pods {
            let key = (from.clone(), to.clone());
            let cells: Vec<&str> = matrices.iter().filter_map(|(_, m)| m.get(&key).map(|r| r.symbol())).collect();
            let _ = write!(out, "{:>cell_width$}", cells.join("/"));
        }
        out.push('\n');
    }
    for (family, matrix) in matrices {
        let ok = matrix.values().filter(|r| **r == Reach::Ok).count();
        let _ = writeln!(
            out,
            "{family}: {ok}/{} pairs reachable (ok = reached, rst = refused, -- = no answer)",
            matrix.len()
        );
    }
    out
}

/// The matrix of every family the lab has, or of `only` that one.
pub fn matrices(state: &LabState, probe: Probe, only: Option<IpFamily>) -> Vec<(IpFamily, Matrix)> {
    let families = match only {
        Some(family) => vec![family],
        None => state.families(),
    };
    families.into_iter().map(|family| (family, matrix_in(state, probe, family))).collect()
}
