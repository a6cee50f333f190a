#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Fan-out bench (part of `make bench` group 7): one stream server and N real gRPC subscribers
//! (5,000 by default, `GINGHAM_FANOUT_NODES`), the subscribers in a child process of this binary so
//! that the server's memory is its own. For set-member changes of narrow sets (about 75 nodes
//! interested) and of one set every node uses, it measures the time from publishing to the last
//! interested subscriber having the delta, the bytes sent per event and per interested node, and
//! that no uninterested subscriber hears anything. Prints a markdown table.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gingham_stream::wire::proto::{self, span_client::SpanClient};
use gingham_stream::{Batch, ItemKey, ItemKind, SpanService, StaticTokens, serve_tcp};
use tokio::sync::mpsc;
use tonic::Request;

/// An IP set: addresses as text, as the operator's sets are.
type Members = BTreeSet<String>;

const SETS: usize = 2_000;
const SETS_PER_NODE: usize = 30;
const MEMBERS: u32 = 100;
const NARROW_EVENTS: usize = 40;
const WIDE_EVENTS: usize = 10;

fn set_key(index: usize) -> ItemKey {
    ItemKey::new(ItemKind::IpSet, format!("s{index:05}"))
}

fn wide_key() -> ItemKey {
    ItemKey::new(ItemKind::IpSet, "all-pods")
}

fn members(seed: usize) -> BTreeSet<String> {
    (0..MEMBERS).map(|i| format!("10.{}.{}.{}", 100 + seed % 100, i / 250, i % 250 + 1)).collect()
}

/// Node `n`'s span: its 30 sets (spread so each set has about nodes × 30 / 2,000 nodes) and the wide set.
fn span_of(node: usize) -> BTreeSet<ItemKey> {
    let mut span: BTreeSet<ItemKey> = (0..SETS_PER_NODE).map(|j| set_key((node * 7919 + j * 104_729) % SETS)).collect();
    span.insert(wide_key());
    span
}

fn node_name(node: usize) -> String {
    format!("node-{node:05}")
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if let Some(position) = args.iter().position(|a| a == "--subscribers") {
        runtime.block_on(subscribers(&args[position + 1], args[position + 2].parse().unwrap()));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let nodes: usize = std::env::var("GINGHAM_FANOUT_NODES").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    runtime.block_on(serve_and_measure(nodes));
}

/// The child: `count` subscribers; on `EXPECT <rev> <k>` from stdin, waits until `k` of them hold
/// `rev` and prints `DONE <rev> <nanos of the last> <uninterested>` (uninterested: messages of
/// `rev` beyond `k`).
async fn subscribers(address: &str, count: usize) {
    let (sender, mut arrivals) = mpsc::unbounded_channel::<(u64, u128)>();
    // Connect in waves of 100 at a time, each subscriber on its own connection.
    let mut ready = 0;
    for wave in (0..count).collect::<Vec<_>>().chunks(100) {
        let mut joins = Vec::new();
        for &node in wave {
            let sender = sender.clone();
            let address = address.to_string();
            joins.push(tokio::spawn(async move {
                let mut client = loop {
                    match SpanClient::connect(format!("http://{address}")).await {
                        Ok(client) => break client,
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                let mut request = Request::new(proto::SubscribeRequest {
                    node: node_name(node),
                    revision: None,
                    origin: None,
                    held: None,
                });
                request.metadata_mut().insert("authorization", format!("Bearer t{node}").parse().unwrap());
                let mut stream = client.subscribe(request).await.unwrap().into_inner();
                stream.message().await.unwrap().unwrap();
                tokio::spawn(async move {
                    let _client = client;
                    while let Ok(Some(message)) = stream.message().await {
                        if !message.updates.is_empty() {
                            let _ = sender.send((message.revision, now_nanos()));
                        }
                    }
                });
            }));
        }
        for join in joins {
            join.await.unwrap();
            ready += 1;
        }
    }
    println!("READY {ready}");
    let mut seen: BTreeMap<u64, (usize, u128)> = BTreeMap::new();
    let mut lines = BufReader::new(std::io::stdin()).lines();
    while let Some(Ok(line)) = tokio::task::block_in_place(|| lines.next()) {
        let words: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
        let [revision, expected] = words[..] else { break };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.get(&revision).map_or(0, |s| s.0) < expected as usize {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((rev, at))) => {
                    let entry = seen.entry(rev).or_insert((0, 0));
                    entry.0 += 1;
                    entry.1 = entry.1.max(at);
                }
                _ => break,
            }
        }
        // Anything else of this revision that is already queued came to an uninterested node.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok((rev, at)) = arrivals.try_recv() {
            let entry = seen.entry(rev).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = entry.1.max(at);
        }
        let (got, last) = seen.get(&revision).copied().unwrap_or_default();
        println!("DONE {revision} {last} {got}");
    }
}

async fn serve_and_measure(nodes: usize) {
    let tokens = StaticTokens((0..nodes).map(|n| (format!("t{n}"), node_name(n))).collect());
    let (service, publisher) = SpanService::<Members>::new(256, Arc::new(tokens), Duration::from_secs(3600));
    let stats = service.stats();
    let mut sets: Vec<BTreeSet<String>> = (0..SETS).map(members).collect();
    let mut wide = members(SETS);
    let mut first = Batch::default();
    for (index, set) in sets.iter().enumerate() {
        first.items.insert(set_key(index), Some(set.clone()));
    }
    first.items.insert(wide_key(), Some(wide.clone()));
    let spans: Vec<BTreeSet<ItemKey>> = (0..nodes).map(span_of).collect();
    let mut interested: BTreeMap<ItemKey, usize> = BTreeMap::new();
    for span in &spans {
        for key in span {
            *interested.entry(key.clone()).or_default() += 1;
        }
    }
    for (node, span) in spans.into_iter().enumerate() {
        first.spans.insert(node_name(node), Some(span));
    }
    // The narrow events change sets that some node uses, spread over the index.
    let used: Vec<usize> = (0..SETS).filter(|index| interested.contains_key(&set_key(*index))).collect();
    let narrow: Vec<usize> = used.iter().step_by((used.len() / NARROW_EVENTS).max(1)).copied().collect();
    let mut revision = 1;
    publisher.publish(revision, first).unwrap();
    let rss_loaded = rss_mib();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(service, listener, std::future::pending()));
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--subscribers", &address.to_string(), &nodes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap()).lines();
    let connected = std::time::Instant::now();
    let ready = tokio::task::block_in_place(|| from_child.next()).unwrap().unwrap();
    assert!(ready.starts_with("READY"), "{ready}");
    let connect_seconds = connected.elapsed().as_secs_f64();
    let rss_serving = rss_mib();

    let mut rows = Vec::new();
    for (label, events) in [("narrow set, one member", NARROW_EVENTS), ("set on every node, one member", WIDE_EVENTS)] {
        let (mut latencies, mut per_node, mut totals, mut stray) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
        let mut interested_counts = Vec::new();
        for event in 0..events {
            revision += 1;
            let (key, set) = if label.starts_with("narrow") {
                let index = narrow[event % narrow.len()];
                (set_key(index), &mut sets[index])
            } else {
                (wide_key(), &mut wide)
            };
            let member = format!("10.99.{}.{}", event / 250, event % 250 + 1);
            set.insert(member);
            let expected = interested.get(&key).copied().unwrap_or(0);
            interested_counts.push(expected as f64);
            let bytes_before = stats.bytes.load(Ordering::Relaxed);
            writeln!(to_child, "EXPECT {revision} {expected}").unwrap();
            let start = now_nanos();
            let batch = Batch { items: BTreeMap::from([(key, Some(set.clone()))]), spans: BTreeMap::new() };
            publisher.publish(revision, batch).unwrap();
            let done = tokio::task::block_in_place(|| from_child.next()).unwrap().unwrap();
            let words: Vec<u128> = done.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
            let (last, got) = (words[1], words[2] as usize);
            assert!(got >= expected, "only {got} of {expected} subscribers got revision {revision}");
            stray += got - expected;
            let bytes = stats.bytes.load(Ordering::Relaxed) - bytes_before;
            latencies.push(last.saturating_sub(start) as f64 / 1e6);
            totals.push(bytes as f64);
            per_node.push(bytes as f64 / expected.max(1) as f64);
        }
        rows.push(format!(
            "| {nodes} | {label} | {:.0} | {:.1} ms | {:.1} ms | {:.0} B | {:.0} B | {stray} |",
            percentile(&mut interested_counts, 0.5),
            percentile(&mut latencies.clone(), 0.5),
            percentile(&mut latencies, 0.99),
            percentile(&mut per_node, 0.5),
            percentile(&mut totals, 0.5),
        ));
    }
    drop(to_child);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "Fan-out over gRPC on the loopback: {nodes} subscribers (one connection each, in a child process), {SETS} sets of {MEMBERS} members, {SETS_PER_NODE} sets per node plus one on every node; connected and synced in {connect_seconds:.1} s."
    );
    println!();
    println!(
        "| subscribers | event | interested | to last p50 | to last p99 | bytes per interested node | bytes per event | to uninterested |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!();
    println!("| subscribers | server RSS with the hub loaded | server RSS serving every subscriber |");
    println!("|---|---|---|");
    println!("| {nodes} | {rss_loaded:.0} MiB | {rss_serving:.0} MiB |");
}
