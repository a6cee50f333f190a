//! Benchmark 3's network-set rows: the per-packet cost of a policy whose Deny rule's source set
//! holds the nets of a GlobalNetworkSet of 100,000 CIDRs against one of 10, on two server pods of
//! the same node, probed alternately in the same run with a pod no policy selects; how long the
//! agent takes to program the 100,000 elements; and what one CIDR changed costs: the patch the
//! stream carries (against the whole set) and the time until it is enforced.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::guard;
use super::stats::summarize;
use super::traffic::{Lab2, alternate, apply};
use super::{BenchError, Goal, Options, Results, Row};
use crate::probe::{self, Probe, Reach};
use crate::{cmd, datastore, lab};
use gingham_crds::api::nodenetwork::{IpSet, IpSetKind};
use gingham_crds::api::span::SpanItem;
use gingham_crds::api::{IpFamily, Shared};
use gingham_stream::Item;

/// CIDRs in the large and the small set.
pub const SIZES: [usize; 2] = [100_000, 10];

/// `count` non-overlapping /30s in 10.240.0.0/12, none of them a pod's.
fn nets(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("10.{}.{}.{}/30", 240 + i / 16_384, (i / 64) % 256, (i % 64) * 4)).collect()
}

fn network_set(name: &str, nets: &[String]) -> Value {
    json!({"apiVersion": "gingham.dev/v1", "kind": "GlobalNetworkSet",
        "metadata": {"name": name, "labels": {"feed": name}}, "spec": {"nets": nets}})
}

/// A GlobalNetworkPolicy on the pods labelled `role: <role>`: TCP from the network set `feed` is
/// denied (no pod is in it), then everything is allowed.
fn policy(role: &str, feed: &str) -> Value {
    json!({"apiVersion": "gingham.dev/v1", "kind": "GlobalNetworkPolicy", "metadata": {"name": format!("bench-{feed}")},
        "spec": {"selector": format!("role == '{role}'"), "types": ["Ingress"], "ingress": [
            {"action": "Deny", "protocol": "TCP", "source": {"selector": format!("feed == '{feed}'")}},
            {"action": "Allow"}]}})
}

/// A gauge or counter of the agent in `netns` (its metrics endpoint, 0.0.0.0:9091).
fn agent_metric(netns: &str, name: &str) -> Option<f64> {
    let text = cmd::run_in(netns, "curl", &["-sf", "http://127.0.0.1:9091/metrics"]).ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The bytes of the whole set and of the patch that moves it from `old` to `new` members, as the
/// stream's payloads (JSON) carry them.
fn payloads(old: &[String], new: &[String]) -> Result<(usize, usize), BenchError> {
    let item = |members: &[String]| {
        SpanItem::IpSet(Shared::new(IpSet {
            name: "gs_bench".into(),
            family: IpFamily::IPv4,
            kind: IpSetKind::Addresses,
            members: members.iter().map(|m| m.as_str().into()).collect(),
        }))
    };
    let (before, after) = (item(old), item(new));
    let failed = |e: serde_json::Error| BenchError::Failed(format!("encode the set: {e}"));
    let whole = serde_json::to_vec(&after).map_err(failed)?.len();
    let patch = before.patch_to(&after).ok_or_else(|| BenchError::Failed("no patch between the sets".into()))?;
    Ok((whole, serde_json::to_vec(&patch).map_err(failed)?.len()))
}

/// Writes one object and waits until `done` holds; the time it took.
fn timed(l: &Lab2, object: &Value, what: &str, done: impl FnMut() -> bool) -> Result<Duration, BenchError> {
    let start = Instant::now();
    datastore::put(&l.lab.state.datastore(), object).map_err(lab::LabError::from)?;
    guard::wait_for(what, Duration::from_secs(120), Duration::from_millis(10), done)?;
    Ok(start.elapsed())
}

/// The rows; see the module documentation.
pub(super) fn cost(options: &Options, l: &Lab2, results: &mut Results) -> Result<(), BenchError> {
    let [big, small] = SIZES.map(nets);
    let objects = [network_set("small", &small), policy("server", "big"), policy("server10", "small")];
    apply(&l.lab, &objects)?;
    let n2 = l.n2.netns.as_str();
    let elements = || agent_metric(n2, "gingham_agent_nft_set_elements").unwrap_or(0.0);
    let syncs = || agent_metric(n2, "gingham_agent_sync_duration_seconds_sum").unwrap_or(0.0);
    let (elements_before, sync_before) = (elements(), syncs());
    #[allow(clippy::cast_precision_loss)]
    let wanted = elements_before + big.len() as f64;
    let programmed =
        timed(l, &network_set("big", &big), "the 100,000 CIDRs in n2's nftables", || elements() >= wanted)?;
    let agent = syncs() - sync_before;
    let mut row = Row::value(
        3,
        "GlobalNetworkSet of 100,000 CIDRs: written → programmed",
        Some(programmed.as_secs_f64()),
        "s",
        Goal::None,
    );
    row.note = format!("the agent's syncs meanwhile: {agent:.2} s (sync_duration_seconds on the server's node)");
    results.rows.push(row);

    let server10 = l.lab.state.pods.iter().find(|p| p.name == "s10").cloned();
    let server10 = server10.ok_or_else(|| BenchError::Failed("pod s10 missing".into()))?;
    let address = |p: &crate::state::PodRecord| p.ip(IpFamily::IPv4).unwrap_or_default().to_string();
    let (server_ip, server10_ip) = (address(&l.server), address(&server10));
    let sides = [
        (l.plain.0.as_str(), l.client.as_str(), l.plain.1.as_str()),
        (server10.netns.as_str(), l.client.as_str(), server10_ip.as_str()),
        (l.server.netns.as_str(), l.client.as_str(), server_ip.as_str()),
    ];
    let samples = alternate(options, &sides)?;
    let median = |s: &[f64]| summarize(s).map(|s| s.p50);
    for (series, values) in ["no_policy_gbps", "netset_10_gbps", "netset_100000_gbps"].iter().zip(&samples) {
        results.samples("netset-cost.csv", series, values);
    }
    for (size, values) in [(10, &samples[1]), (100_000, &samples[2])] {
        let mut row = Row::value(
            3,
            format!("GlobalNetworkSet of {size} CIDRs as the Deny rule's source, median"),
            median(values),
            "Gbit/s",
            Goal::None,
        );
        row.baseline = median(&samples[0]);
        row.note = "baseline: a pod on the same node that no policy selects, same run".into();
        results.rows.push(row);
    }
    let mut row = Row::value(
        3,
        "GlobalNetworkSet of 100,000 CIDRs vs one of 10, median",
        median(&samples[2]),
        "Gbit/s",
        Goal::RatioAtLeast(0.95),
    );
    row.baseline = median(&samples[1]);
    row.note = "the same policy on two server pods of one node, probed alternately in the same run".into();
    results.rows.push(row);

    // One CIDR of the 100,000 replaced by the client's address: TCP to the server is denied once the
    // patch is in force, and allowed again when it is reverted.
    let mut changed = big.clone();
    changed[0] = format!("{}/32", l.client_ip);
    let (whole, patch) = payloads(&big, &changed)?;
    let target = crate::family::socket_text(&server_ip, 5201);
    let probe = |want: Reach| probe::reach(&l.lab.state, &l.client, &server_ip, Probe::Tcp(5201)) == want;
    let denied = timed(l, &network_set("big", &changed), &format!("{target} denied"), || probe(Reach::Blocked))?;
    let allowed = timed(l, &network_set("big", &big), &format!("{target} allowed again"), || probe(Reach::Refused))?;
    let mut row = Row::value(
        3,
        "one CIDR of the 100,000 changed: the stream's patch",
        Some(patch as f64),
        "B",
        Goal::AtMost(256.0),
    );
    row.note = format!(
        "the whole set is {whole} B; written → enforced {:.2} s (denied) and {:.2} s (reverted)",
        denied.as_secs_f64(),
        allowed.as_secs_f64()
    );
    results.rows.push(row);

    for object in
        [network_set("big", &[]), network_set("small", &[]), policy("server", "big"), policy("server10", "small")]
    {
        datastore::remove(&l.lab.state.datastore(), &object).map_err(lab::LabError::from)?;
    }
    apply(&l.lab, &[])?;
    Ok(())
}
