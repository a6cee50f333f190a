//! Benchmark 7: the operator's own scale bench (`operator/benches/compute.rs`, issue 3), run as
//! its author wrote it and included verbatim; its figures also become table rows.

use std::process::Command;

use super::{BenchError, Goal, Options, Results, Row};
use crate::cmd;

/// Seconds the operator bench may take to run (after it is built) before the smaller size alone
/// is run instead.
const BUDGET_SECONDS: &str = "480";

const PACKAGE: &str = "gingham-operator";
const BENCH: &str = "compute";

/// `cargo bench` for `bench` of `package`, from the workspace root. The variables `cargo run` set
/// for this process are removed, so that the bench is not rebuilt for a different environment than
/// `make bench` built it in.
pub(crate) fn cargo_bench(package: &str, bench: &str, extra: &[&str], timeout: Option<&str>) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = match timeout {
        Some(seconds) => {
            let mut command = Command::new("timeout");
            command.args([seconds, &cargo]);
            command
        }
        None => Command::new(&cargo),
    };
    command.args(["bench", "-q", "-p", package, "--bench", bench]).args(extra);
    // The workspace root, wherever the results are written.
    command.current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(std::path::Path::new(".")));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}

fn bench(nodes: Option<&str>) -> Result<std::process::Output, BenchError> {
    let built = cmd::output(&mut cargo_bench(PACKAGE, BENCH, &["--no-run"], None), None)?;
    if !built.status.success() {
        return Err(BenchError::Failed(format!("building the operator bench failed: {}", last_line(&built.stderr))));
    }
    let mut command = cargo_bench(PACKAGE, BENCH, &[], Some(BUDGET_SECONDS));
    if let Some(n) = nodes {
        command.env("GINGHAM_BENCH_NODES", n);
    }
    Ok(cmd::output(&mut command, None)?)
}

/// The last line a command wrote, for an error message.
pub(crate) fn last_line(output: &[u8]) -> String {
    String::from_utf8_lossy(output).lines().last().unwrap_or_default().to_string()
}

/// The number at the start of cell `i` (`"6.9 ms"` is 6.9).
pub(crate) fn cell(cells: &[&str], i: usize) -> Option<f64> {
    cells.get(i)?.split_whitespace().next()?.parse().ok()
}

/// Which of the bench's tables a line belongs to, from the table's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    /// Full compute and memory, one row per size.
    Full,
    /// Single changes on the loaded engine.
    Change,
    /// The largest object written, by kind.
    Object,
}

/// The goal for full compute at a size (issue 13's goal rows).
fn compute_goal(nodes: &str) -> Goal {
    match nodes {
        "5000" => Goal::AtMost(2.0),
        "10000" => Goal::AtMost(5.0),
        _ => Goal::None,
    }
}

fn full_rows(cells: &[&str]) -> Vec<Row> {
    let nodes = cells[0];
    let what = format!("{nodes} nodes, {} pods, {} policies", cells[1], cells[2]);
    let compute = Row::value(7, format!("{what}: full compute"), cell(cells, 3), "s", compute_goal(nodes));
    let goal = if nodes == "10000" { Goal::AtMost(1536.0) } else { Goal::None };
    let mut memory = Row::value(7, format!("{what}: peak memory beyond the inputs"), cell(cells, 5), "MiB", goal);
    memory.note = format!(
        "bytes allocated; inputs {}; resident set beyond the inputs {}, VmHWM with them {}; the engine holds {} after the load",
        cells[4], cells[6], cells[7], cells[8]
    );
    vec![compute, memory]
}

fn change_rows(cells: &[&str]) -> Vec<Row> {
    let (nodes, change) = (cells[0], cells[2]);
    let what = format!("{nodes} nodes, {change}");
    let pod_event = change.starts_with("pod add") || change.starts_with("pod delete");
    let mut time = Row::value(
        7,
        format!("{what}: engine time"),
        cell(cells, 4),
        "µs",
        if pod_event { Goal::AtMost(1000.0) } else { Goal::None },
    );
    time.note = format!("mean of {} rounds", cells[3]);
    let (median, max) = cells[5].split_once(',').unwrap_or((cells[5], cells[5]));
    let mut writes = Row::value(7, format!("{what}: API writes"), max.trim().parse().ok(), "writes", Goal::AtMost(2.0));
    writes.note = format!("largest round ({}); median {}", cells[6], median.trim());
    // A pod's address or labels are set members; a policy change is not.
    let set_member = change.starts_with("pod");
    let goal = if set_member { Goal::AtMost(256.0) } else { Goal::None };
    let mut stream = Row::value(7, format!("{what}: stream bytes per node sent to"), cell(cells, 10), "B", goal);
    stream.note = format!(
        "{} items to {} nodes, {} per event; median message {}, largest {}",
        cells[7], cells[8], cells[9], cells[11], cells[12]
    );
    vec![time, writes, stream]
}

fn object_row(cells: &[&str]) -> Row {
    let what = format!("{} nodes, {} policies: largest {} written", cells[0], cells[1], cells[2]);
    let mut row = Row::value(7, what, cell(cells, 4), "B", Goal::AtMost(65536.0));
    row.note = format!("{}; {} objects, {} in all (JSON)", cells[5], cells[3], cells[6]);
    row
}

/// Rows from the bench's tables.
pub fn rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut table = None;
    for line in text.lines() {
        if let Some(failed) = line.strip_prefix("A size did not complete:") {
            let mut row = Row::value(7, "operator bench: a size did not complete", None, "", Goal::None);
            row.note = failed.trim().trim_matches('|').trim().to_string();
            rows.push(row);
            continue;
        }
        if line.starts_with("| nodes | pods | policies") {
            table = Some(Table::Full);
            continue;
        }
        if line.starts_with("| nodes | pods | change") {
            table = Some(Table::Change);
            continue;
        }
        if line.starts_with("| nodes | policies | kind") {
            table = Some(Table::Object);
            continue;
        }
        if !line.starts_with("| ") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        match table {
            Some(Table::Full) if cells.len() == 9 => rows.extend(full_rows(&cells)),
            Some(Table::Change) if cells.len() == 13 => rows.extend(change_rows(&cells)),
            Some(Table::Object) if cells.len() == 7 => rows.push(object_row(&cells)),
            _ => {}
        }
    }
    rows
}

/// Runs benchmark 7.
pub fn run(_options: &Options, results: &mut Results) -> Result<(), BenchError> {
    let mut out = bench(None)?;
    let mut title = "Operator scale (cargo bench -p gingham-operator --bench compute)".to_string();
    if !out.status.success() {
        eprintln!(
            "the operator bench did not finish within {BUDGET_SECONDS} s at 500, 5,000 and 10,000 nodes; running 500 only"
        );
        out = bench(Some("500"))?;
        title = format!("{title}, GINGHAM_BENCH_NODES=500 (both sizes exceeded {BUDGET_SECONDS} s)");
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::Failed(format!(
            "the operator bench failed ({}): {}",
            out.status,
            last_line(&out.stderr)
        )));
    }
    results.rows.extend(rows(&text));
    results.sections.push((title, text));
    super::fanout::run(results)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use crate::bench::Goal;

    const OUTPUT: &str = "\
| nodes | pods | policies | full compute | inputs (allocated) | allocated beyond inputs (peak) | RSS beyond inputs (peak) | VmHWM with inputs | held after load |
|---|---|---|---|---|---|---|---|---|
| 5000 | 150000 | 10002 | 4.43 s | 802 MiB | 53 MiB | 54 MiB | 901 MiB | 627 MiB |

| nodes | pods | change on the loaded engine | rounds | mean time | API writes (median, max) | writes of the largest round | stream items | nodes sent to | bytes per event | bytes per node sent to | median message | largest message |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| 5000 | 150000 | pod add: tenant pod | 200 | 335 µs | 12, 22 | IPPool status ×1, NodeNetwork apply ×21 | 2 | 11 | 4570 B | 304 B | 99 B | 3592 B |
| 5000 | 150000 | GlobalNetworkPolicy changed: rule of gnp-1 | 4 | 664190 µs | 1, 2 | NodeNetwork apply ×2 | 1 | 4010 | 697740 B | 174 B | 174 B | 174 B |

| nodes | policies | kind | objects written | largest object | the largest | all of the kind |
|---|---|---|---|---|---|---|
| 5000 | 10002 | NodeNetwork | 5000 | 822686 B | node-00001 | 112047485 B |

A size did not complete: 10000 | signal: 9 (SIGKILL) |
";

    #[test]
    fn every_table_of_the_operator_bench_becomes_rows_with_the_issue_goals() {
        let rows = super::rows(OUTPUT);
        let found =
            |what: &str| rows.iter().find(|r| r.what == what).unwrap_or_else(|| panic!("no row {what}: {rows:#?}"));
        let compute = found("5000 nodes, 150000 pods, 10002 policies: full compute");
        assert_eq!((compute.ours, compute.goal, compute.met()), (Some(4.43), Goal::AtMost(2.0), Some(false)));
        let memory = found("5000 nodes, 150000 pods, 10002 policies: peak memory beyond the inputs");
        assert_eq!(memory.ours, Some(53.0));
        assert!(
            memory.note.contains("inputs 802 MiB") && memory.note.contains("627 MiB after the load"),
            "{}",
            memory.note
        );
        let time = found("5000 nodes, pod add: tenant pod: engine time");
        assert_eq!((time.ours, time.met()), (Some(335.0), Some(true)));
        let writes = found("5000 nodes, pod add: tenant pod: API writes");
        assert_eq!((writes.ours, writes.met()), (Some(22.0), Some(false)));
        assert!(writes.note.contains("NodeNetwork apply ×21") && writes.note.contains("median 12"), "{}", writes.note);
        let stream = found("5000 nodes, pod add: tenant pod: stream bytes per node sent to");
        assert_eq!((stream.ours, stream.met()), (Some(304.0), Some(false)));
        let policy = found("5000 nodes, GlobalNetworkPolicy changed: rule of gnp-1: API writes");
        assert_eq!((policy.ours, policy.met()), (Some(2.0), Some(true)));
        let stream = found("5000 nodes, GlobalNetworkPolicy changed: rule of gnp-1: stream bytes per node sent to");
        assert_eq!(stream.met(), None, "a policy change is no set-member change");
        let object = found("5000 nodes, 10002 policies: largest NodeNetwork written");
        assert_eq!((object.ours, object.met()), (Some(822_686.0), Some(false)));
        assert_eq!(found("operator bench: a size did not complete").note, "10000 | signal: 9 (SIGKILL)");
        assert_eq!(rows.len(), 2 + 3 + 3 + 1 + 1);
    }
}
