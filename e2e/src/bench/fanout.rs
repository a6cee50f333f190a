//! Benchmark 7, second part: the stream's fan-out (`stream/benches/fanout.rs`, issue 13): 5,000
//! real gRPC subscribers on the loopback; time from a set-member change to the last interested
//! subscriber, bytes per interested node, and the server's memory.

use super::operator::{cargo_bench, cell, last_line};
use super::{BenchError, Goal, Results, Row};
use crate::cmd;

/// Seconds the fan-out bench may take once built.
const BUDGET_SECONDS: &str = "300";

/// Rows from the fan-out bench's tables.
pub fn rows(table: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| subscribers")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let subscribers = cells.first().copied().unwrap_or_default();
        if cells.len() == 8 {
            let event = format!("{subscribers} subscribers, {} ({} interested)", cells[1], cells[2]);
            rows.push(Row::value(7, format!("{event}: to the last, p50"), cell(&cells, 3), "ms", Goal::None));
            rows.push(Row::value(7, format!("{event}: to the last, p99"), cell(&cells, 4), "ms", Goal::AtMost(250.0)));
            let mut bytes =
                Row::value(7, format!("{event}: bytes per interested node"), cell(&cells, 5), "B", Goal::AtMost(256.0));
            bytes.note = format!("{} per event; {} messages to uninterested nodes", cells[6], cells[7]);
            rows.push(bytes);
        } else if cells.len() == 3 {
            let mut row = Row::value(
                7,
                format!("stream server RSS, {subscribers} subscribers"),
                cell(&cells, 2),
                "MiB",
                Goal::None,
            );
            row.note = format!("{} with the hub loaded and no subscriber", cells[1]);
            rows.push(row);
        }
    }
    rows
}

/// Runs the fan-out bench and adds its rows and its output.
pub fn run(results: &mut Results) -> Result<(), BenchError> {
    let built = cmd::output(&mut cargo_bench("gingham-stream", "fanout", &["--no-run"], None), None)?;
    if !built.status.success() {
        return Err(BenchError::Failed(format!("building the fan-out bench failed: {}", last_line(&built.stderr))));
    }
    let out = cmd::output(&mut cargo_bench("gingham-stream", "fanout", &[], Some(BUDGET_SECONDS)), None)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(BenchError::Failed(format!(
            "the fan-out bench failed ({}): {}",
            out.status,
            last_line(&out.stderr)
        )));
    }
    results.rows.extend(rows(&text));
    results.sections.push(("Stream fan-out (cargo bench -p gingham-stream --bench fanout)".to_string(), text));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    #[test]
    fn the_fanout_tables_become_rows() {
        let text = "| subscribers | event | interested | to last p50 | to last p99 | bytes per interested node | bytes per event | to uninterested |\n|---|---|---|---|---|---|---|---|\n| 5000 | narrow set, one member | 77 | 6.9 ms | 10.5 ms | 57 B | 4368 B | 0 |\n\n| subscribers | server RSS with the hub loaded | server RSS serving every subscriber |\n|---|---|---|\n| 5000 | 70 MiB | 442 MiB |\n";
        let rows = super::rows(text);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].what, "5000 subscribers, narrow set, one member (77 interested): to the last, p99");
        assert_eq!((rows[1].ours, rows[1].met()), (Some(10.5), Some(true)));
        assert_eq!((rows[2].ours, rows[2].met()), (Some(57.0), Some(true)));
        assert_eq!(rows[3].ours, Some(442.0));
        assert_eq!(rows[3].note, "70 MiB with the hub loaded and no subscriber");
    }
}
