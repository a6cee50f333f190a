//! Benchmark 7: the operator's own scale bench (`operator/benches/compute.rs`, issue 3), run as
//! its author wrote it and included verbatim; its figures also become table rows.

use std::process::Command;

use super::{BenchError, Goal, Options, Results, Row};
use crate::cmd;

/// Seconds the operator bench may take to run (after it is built) before the smaller size alone
/// is run instead.
const BUDGET_SECONDS: &str = "240";

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

/// Rows from the bench's table lines.
pub fn rows(table: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| nodes")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let nodes = cells.first().copied().unwrap_or_default();
        // The second table: one change on the loaded engine (nodes, pods, change, rounds, time, writes).
        if cells.len() == 6 {
            let mut row = Row::value(7, format!("{nodes} nodes: {}", cells[2]), cell(&cells, 4), "µs", Goal::None);
            row.note = format!("objects written (median, max): {}", cells[5]);
            rows.push(row);
            continue;
        }
        let kind = cells.get(5).copied().unwrap_or_default();
        if kind.starts_with("tenant") {
            rows.push(Row::value(7, format!("{nodes} nodes: full compute"), cell(&cells, 3), "s", Goal::AtMost(5.0)));
            rows.push(Row::value(7, format!("{nodes} nodes: peak RSS"), cell(&cells, 4), "MiB", Goal::AtMost(1024.0)));
        }
        for (what, i) in [("pod add", 6), ("pod delete", 7)] {
            let mut row =
                Row::value(7, format!("{nodes} nodes, {kind}: {what}"), cell(&cells, i), "µs", Goal::AtMost(1000.0));
            row.note = format!("objects written (median, max): {}", cells.get(i + 2).copied().unwrap_or_default());
            rows.push(row);
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
            "the operator bench did not finish within {BUDGET_SECONDS} s at 500 and 5,000 nodes; running 500 only"
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

    #[test]
    fn the_operator_table_becomes_rows() {
        let text = "| nodes | pods |\n|---|---|\n| 500 | 15000 | 1002 | 0.42 s | 180 MiB | tenant (typical) | 35 µs | 20 µs | 2, 3 | 2, 2 |\n";
        let rows = super::rows(text);
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].ours, rows[1].ours, rows[2].ours), (Some(0.42), Some(180.0), Some(35.0)));
        assert_eq!(rows[2].note, "objects written (median, max): 2, 3");
    }

    #[test]
    fn the_change_table_becomes_one_row_per_change() {
        let text = "| nodes | pods | change on the loaded engine | rounds | mean time | writes (median, max) |\n|---|---|---|---|---|---|\n| 500 | 15000 | pod label changed: tenant pod | 20 | 30 µs | 1, 1 |\n";
        let rows = super::rows(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].what, "500 nodes: pod label changed: tenant pod");
        assert_eq!(rows[0].ours, Some(30.0));
        assert_eq!(rows[0].note, "objects written (median, max): 1, 1");
    }
}
