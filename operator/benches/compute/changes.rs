//! Single changes on the loaded engine, one at a time, as the controller meets them: each is timed
//! on the engine, then what it changed goes through the operator's writer (API writes,
//! [`ApiServer`]) and the stream (items and bytes, [`Fanout`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gingham_crds::api::NodeNetworkStatus;
use gingham_crds::api::nodenetwork::LocalEndpoint;
use gingham_operator::core::engine::store::{Kind, Object};
use gingham_operator::core::engine::{Engine, Event};

use crate::apiserver::{ApiServer, Writes};
use crate::cluster::{
    APPS, PODS_PER_NAMESPACE, PODS_PER_NODE, narrow_global_policy, node_name, pod, relabelled_pod, wide_global_policy,
};
use crate::fanout::{Fanout, StreamCost};

/// Makes a change's steps for round `r` on the loaded engine.
type Case = Box<dyn Fn(&Loaded, usize) -> Vec<Step>>;

/// The engine with the API server and the stream it has written to.
pub(crate) struct Loaded {
    pub(crate) engine: Engine,
    pub(crate) api: ApiServer,
    pub(crate) fanout: Fanout,
    /// The nodes of the cluster.
    pub(crate) nodes: usize,
    /// Each node's report as loaded.
    pub(crate) reports: BTreeMap<String, NodeNetworkStatus>,
}

/// What one change cost.
struct Sample {
    time: Duration,
    writes: Writes,
    stream: StreamCost,
}

/// One change: what it is, and the events that make it.
type Step = (&'static str, Vec<Event>);

impl Loaded {
    /// Applies one change's events (timed), then writes and publishes what they changed.
    fn change(&mut self, events: Vec<Event>) -> Sample {
        let start = Instant::now();
        for event in events {
            self.engine.apply(event);
        }
        let time = start.elapsed();
        let changes = self.engine.take_changes();
        let desired = self.engine.desired();
        let writes = self.api.write(desired, &changes);
        let stream = self.fanout.round(desired, &changes);
        Sample { time, writes, stream }
    }

    /// A pod added to namespace `ns` on a node (its Pod, then the node's report with its address)
    /// and deleted again (the report without it, then the Pod's deletion).
    fn pod_churn(&self, round: usize, ns: usize) -> [Vec<Event>; 2] {
        let node = (round * 104_729) % self.nodes;
        let node_key = node_name(node);
        let ns = format!("ns-{ns:04}");
        let name = format!("bench-{round}");
        let before = self.reports.get(&node_key).cloned().unwrap_or_default();
        let mut after = before.clone();
        let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + u32::try_from(node).unwrap_or(0) * 64;
        after.endpoints.push(LocalEndpoint {
            name: format!("{ns}/{name}"),
            uid: None,
            address: std::net::Ipv4Addr::from(base + 60).to_string().into(),
            addresses: Vec::new(),
            interface: String::new(),
        });
        after.ipam.allocated += 1;
        let new_pod = pod(&ns, &name, round % APPS, &node_key);
        [
            vec![Event::Upsert(Object::Pod(new_pod)), Event::Upsert(Object::NodeStatus(node_key.clone(), after))],
            vec![Event::Upsert(Object::NodeStatus(node_key, before)), Event::Delete(Kind::Pod, (ns, name))],
        ]
    }

    /// The changes, by what they are, with the rounds of each (fewer above 5,000 nodes).
    fn cases(&self) -> Vec<(usize, Case)> {
        let nodes = self.nodes;
        let namespaces = nodes * PODS_PER_NODE / PODS_PER_NAMESPACE;
        // pod-10 lives in a tenant namespace, pod-1 in a platform one (selected cluster-wide).
        let (tenant, platform) = (namespaces * 10 + 10, 1);
        let rounds = |base: usize| if nodes > 5_000 { (base / 4).max(2) } else { base };
        vec![
            (
                rounds(200),
                Box::new(move |this, r| {
                    let [add, delete] = this.pod_churn(r, 3 + r % (namespaces - 3));
                    vec![("pod add: tenant pod", add), ("pod delete: tenant pod", delete)]
                }),
            ),
            (
                rounds(10),
                Box::new(|this, r| {
                    let [add, delete] = this.pod_churn(r, r % 3);
                    vec![
                        ("pod add: platform pod (selected cluster-wide)", add),
                        ("pod delete: platform pod (selected cluster-wide)", delete),
                    ]
                }),
            ),
            (
                rounds(20),
                Box::new(|_, r| {
                    let event = Event::Upsert(Object::GlobalNetworkPolicy(narrow_global_policy(r + 1)));
                    vec![("GlobalNetworkPolicy changed: selector and rule (10 pods selected)", vec![event])]
                }),
            ),
            (
                rounds(4),
                Box::new(|_, r| {
                    let event = Event::Upsert(Object::GlobalNetworkPolicy(wide_global_policy(r)));
                    vec![("GlobalNetworkPolicy changed: rule of gnp-1 (a fifteenth of all pods selected)", vec![event])]
                }),
            ),
            (
                rounds(20),
                Box::new(move |_, r| {
                    let event = Event::Upsert(Object::Pod(relabelled_pod(nodes, tenant, (r + 1) % 2)));
                    vec![("pod label changed: tenant pod", vec![event])]
                }),
            ),
            (
                rounds(4),
                Box::new(move |_, r| {
                    let event = Event::Upsert(Object::Pod(relabelled_pod(nodes, platform, (r + 1) % 2)));
                    vec![("pod label changed: platform pod (in sets used cluster-wide)", vec![event])]
                }),
            ),
        ]
    }

    /// Makes every change and returns one table row per kind of change.
    pub(crate) fn rows(&mut self, pods: usize) -> Vec<String> {
        // The narrow policy exists before it is changed (written and published, not measured).
        self.change(vec![Event::Upsert(Object::GlobalNetworkPolicy(narrow_global_policy(0)))]);
        let mut samples: Vec<(&'static str, Vec<Sample>)> = Vec::new();
        for (rounds, steps) in self.cases() {
            let started = Instant::now();
            for round in 0..rounds {
                for (label, events) in steps(self, round) {
                    let sample = self.change(events);
                    match samples.iter_mut().find(|(known, _)| *known == label) {
                        Some((_, list)) => list.push(sample),
                        None => samples.push((label, vec![sample])),
                    }
                }
            }
            let done = samples.len();
            eprintln!(
                "{} nodes: {rounds} rounds of changes {done} in {:.1} s",
                self.nodes,
                started.elapsed().as_secs_f64()
            );
        }
        samples.iter().map(|(label, list)| row(self.nodes, pods, label, list)).collect()
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `| nodes | pods | change | rounds | mean time | API writes (median, max) | writes of the largest
/// round | stream items | nodes sent to | bytes per event | bytes per node sent to | median
/// message | largest message |`, the stream's figures being medians but the largest message.
fn row(nodes: usize, pods: usize, label: &str, samples: &[Sample]) -> String {
    let total = |s: &Sample| s.writes.values().sum::<usize>();
    let mean = samples.iter().map(|s| s.time).sum::<Duration>() / u32::try_from(samples.len()).unwrap_or(1).max(1);
    let heaviest = samples.iter().max_by_key(|s| total(s));
    let kinds = heaviest.map_or_else(String::new, |s| {
        let kinds: Vec<String> = s.writes.iter().map(|((kind, op), n)| format!("{kind} {op} ×{n}")).collect();
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
    });
    let of = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    format!(
        "| {nodes} | {pods} | {label} | {} | {:.0} µs | {:.0}, {} | {kinds} | {:.0} | {:.0} | {:.0} B | {:.0} B | {:.0} B | {} B |",
        samples.len(),
        mean.as_secs_f64() * 1e6,
        of(|s| s.writes.values().sum::<usize>() as f64),
        heaviest.map_or(0, total),
        of(|s| s.stream.items as f64),
        of(|s| s.stream.nodes as f64),
        of(|s| s.stream.bytes as f64),
        of(|s| s.stream.per_node()),
        of(|s| s.stream.median as f64),
        samples.iter().map(|s| s.stream.largest).max().unwrap_or(0),
    )
}
