//! The operator's Prometheus metrics: reconciles (count, errors, duration) per controller, objects
//! managed and writes, and the agents' stream (subscriptions by how they synced, messages, bytes).
//! Registered once in a sub-registry `gingham_operator` of the one registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gingham_stream::ServerStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::datastore::WriteSummary;

/// Labels of per-controller metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller.
    pub controller: String,
}

/// Labels of reconcile errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller.
    pub controller: String,
    /// The error's stable label.
    pub error: String,
}

/// Labels of object counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind.
    pub kind: String,
}

/// Labels of writes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The kind written.
    pub kind: String,
    /// `apply` or `delete`.
    pub op: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    managed: Family<KindLabels, Gauge>,
    writes: Family<WriteLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them under `gingham_operator_` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            managed: Family::default(),
            writes: Family::default(),
        };
        let sub = registry.sub_registry_with_prefix("gingham_operator");
        sub.register("reconciles", "Reconciles run, by controller", metrics.reconciles.clone());
        sub.register("reconcile_errors", "Reconciles that failed, by controller and error", metrics.errors.clone());
        sub.register("reconcile_duration_seconds", "Reconcile duration, by controller", metrics.duration.clone());
        sub.register("objects_managed", "Objects the operator manages, by kind", metrics.managed.clone());
        sub.register("writes", "Writes to the datastore, by kind and operation", metrics.writes.clone());
        metrics
    }

    /// Records one reconcile of `controller`, its duration and, if it failed, its error label.
    pub fn reconciled(&self, controller: &str, seconds: f64, error: Option<&str>) {
        let labels = ControllerLabels { controller: controller.into() };
        self.reconciles.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
        if let Some(error) = error {
            self.errors.get_or_create(&ErrorLabels { controller: controller.into(), error: error.into() }).inc();
        }
    }

    /// Records the writes and managed objects of one apply.
    pub fn wrote(&self, summary: &WriteSummary) {
        for ((kind, op), count) in &summary.writes {
            self.writes.get_or_create(&WriteLabels { kind: (*kind).into(), op: op.label().into() }).inc_by(*count);
        }
        for (kind, count) in &summary.managed {
            self.managed
                .get_or_create(&KindLabels { kind: (*kind).into() })
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
    }
}

/// The stream server's counters, read from its [`ServerStats`] at each scrape.
#[derive(Debug)]
pub struct StreamMetrics(pub Arc<ServerStats>);

impl StreamMetrics {
    /// Registers the stream's counters under `gingham_operator_stream_` in `registry`.
    pub fn register(registry: &mut Registry, stats: Arc<ServerStats>) {
        registry.sub_registry_with_prefix("gingham_operator").register_collector(Box::new(Self(stats)));
    }
}

impl Collector for StreamMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = |counter: &AtomicU64| ConstCounter::new(counter.load(Ordering::Relaxed));
        let stats = &self.0;
        let help = "Agents' subscriptions to the stream, by how they synced: snapshot (every item; also \
            a subscriber that fell behind the history), delta (resumed from its revision) or content \
            (another replica's revision: only the items whose digest differs)";
        let mut family =
            encoder.encode_descriptor("stream_subscriptions", help, None, load(&stats.snapshots).metric_type())?;
        for (sync, counter) in [("snapshot", &stats.snapshots), ("delta", &stats.resumed), ("content", &stats.resynced)]
        {
            load(counter).encode(family.encode_family(&[("sync", sync)])?)?;
        }
        let totals = [
            ("stream_resynced_items", "Items sent or removed by resyncs by content", &stats.resynced_items),
            ("stream_messages", "Messages sent to the agents", &stats.messages),
            ("stream_bytes", "Bytes of messages sent to the agents", &stats.bytes),
        ];
        for (name, help, counter) in totals {
            let counter = load(counter);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::datastore::WriteOp;

    #[test]
    fn reconciles_and_writes_show_up_in_the_text_format() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.reconciled("operator", 0.01, None);
        metrics.reconciled("operator", 0.02, Some("write"));
        let mut summary = WriteSummary::default();
        summary.count("NodeNetwork", WriteOp::Apply);
        summary.managed.insert("NodeNetwork", 2);
        metrics.wrote(&summary);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "gingham_operator_reconciles_total{controller=\"operator\"} 2",
            "gingham_operator_reconcile_errors_total{controller=\"operator\",error=\"write\"} 1",
            "gingham_operator_reconcile_duration_seconds_count{controller=\"operator\"} 2",
            "gingham_operator_objects_managed{kind=\"NodeNetwork\"} 2",
            "gingham_operator_writes_total{kind=\"NodeNetwork\",op=\"apply\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }

    #[test]
    fn the_stream_says_how_subscribers_synced() {
        let mut registry = Registry::default();
        let stats = Arc::new(ServerStats::default());
        StreamMetrics::register(&mut registry, Arc::clone(&stats));
        stats.resynced.fetch_add(2, Ordering::Relaxed);
        stats.resumed.fetch_add(1, Ordering::Relaxed);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            "gingham_operator_stream_subscriptions_total{sync=\"content\"} 2",
            "gingham_operator_stream_subscriptions_total{sync=\"delta\"} 1",
            "gingham_operator_stream_subscriptions_total{sync=\"snapshot\"} 0",
            "gingham_operator_stream_bytes_total 0",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
