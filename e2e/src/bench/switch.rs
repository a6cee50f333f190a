//! Benchmark 9: packets lost on the full pod matrix while the pool's encapsulation is switched
//! through every VXLAN transition each way ([`live::VXLAN_SWITCHES`]), on the live scenario
//! (three nodes on two subnets, [`PODS_PER_NODE`] pods each, so that the low addresses of every
//! block are taken). Every ordered pod pair is pinged during each switch; lost packets are
//! reported per pair (bench-results/switch.csv) and in total, with the pairs still unreachable
//! after the switch.

use std::collections::BTreeMap;
use std::time::Duration;

use super::guard::{self, BenchLab};
use super::{BenchError, Goal, Options, Results, Row};
use crate::harness::{PingCount, Pinger};
use crate::live::{self, Encap};
use crate::probe::Reach;
use crate::state::LabState;

/// Pods on each node.
pub const PODS_PER_NODE: usize = 3;
/// Ping interval per pair.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// The longest a pair is pinged (ping's own deadline, in case the switch hangs).
const LIMIT: Duration = Duration::from_secs(120);
/// How long the matrix may take to settle after the switch applied, before a pair counts as cut.
const SETTLE: Duration = Duration::from_secs(5);

/// What every ordered pod pair's ping counted, by (from, to).
type PairCounts = BTreeMap<(String, String), PingCount>;

/// Pings every ordered pair of pods while `encap` is applied; the counts per pair and the seconds
/// the nodes took to apply it.
fn switch_under_ping(state: &LabState, encap: Encap) -> Result<(PairCounts, f64), BenchError> {
    let mut pingers = Vec::new();
    for from in &state.pods {
        for to in state.pods.iter().filter(|p| p.netns != from.netns) {
            let address = to.address.as_deref().unwrap_or_default().split('/').next().unwrap_or_default();
            pingers.push(((from.key(), to.key()), Pinger::start_bounded(&from.netns, address, INTERVAL, LIMIT)?));
        }
    }
    guard::sleep(Duration::from_millis(500))?;
    let took = live::switch(state, "pool", encap)?;
    guard::sleep(Duration::from_millis(1000))?;
    let mut counts = BTreeMap::new();
    for (pair, pinger) in pingers {
        counts.insert(pair, pinger.stop()?);
    }
    Ok((counts, took.as_secs_f64()))
}

fn series(label: &str) -> String {
    label.replace(" → ", "_to_").replace(' ', "_")
}

/// Runs benchmark 9 on a lab of its own.
pub fn run(options: &Options, results: &mut Results) -> Result<(), BenchError> {
    let prefix = guard::prefix('s');
    let lab = BenchLab::up(&live::scenario(&prefix, PODS_PER_NODE, Encap::NONE), &prefix, &options.bin_dir, false)?;
    live::fabric_routes(&lab.state, true)?;
    let mut previous = Encap::NONE;
    let mut total = (0_u64, 0_u64);
    for encap in live::VXLAN_SWITCHES {
        let label = format!("{} → {}", previous.label(), encap.label());
        let (counts, took) = switch_under_ping(&lab.state, *encap)?;
        for ((from, to), count) in &counts {
            results.samples("switch.csv", &format!("{}:{from}>{to}", series(&label)), &[count.lost() as f64]);
        }
        let lost: u64 = counts.values().map(PingCount::lost).sum();
        let sent: u64 = counts.values().map(|c| c.sent).sum();
        total = (total.0 + lost, total.1 + sent);
        let with_loss = counts.values().filter(|c| c.lost() > 0).count();
        let worst = counts.iter().filter(|(_, c)| c.lost() > 0).max_by_key(|(_, c)| c.lost());
        let after = live::settled_matrix(&lab.state, SETTLE);
        let cut = after.values().filter(|r| **r != Reach::Ok).count();
        let mut row = Row::value(
            9,
            format!("{label}: pings lost, all {} pairs", counts.len()),
            Some(lost as f64),
            "pings",
            Goal::None,
        );
        row.note = format!(
            "{sent} sent ({} ms apart); {with_loss} pairs lost any, worst {} ({}); applied in {took:.1} s; after: {cut} of {} pairs unreachable",
            INTERVAL.as_millis(),
            worst.map_or_else(|| "none".to_string(), |((a, b), _)| format!("{a} → {b}")),
            worst.map_or(0, |(_, c)| c.lost()),
            after.len()
        );
        eprintln!("{label}: {lost} of {sent} pings lost; {}", row.note);
        results.rows.push(row);
        previous = *encap;
    }
    let mut row = Row::value(9, "every switch: pings lost, all pairs", Some(total.0 as f64), "pings", Goal::None);
    row.note =
        format!("{} sent over {} switches; per pair in bench-results/switch.csv", total.1, live::VXLAN_SWITCHES.len());
    results.rows.push(row);
    Ok(())
}
