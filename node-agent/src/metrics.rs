//! The agent's Prometheus metrics, registered once under the `gingham_agent` prefix.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::dataplane::SyncReport;

/// Labels as name-value pairs.
pub type Labels = Vec<(String, String)>;

/// Every metric the agent exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Seconds one dataplane sync took.
    pub sync_seconds: Histogram,
    /// Errors by kind (`sync`, `bird`, `spec`, `status`, `ipam`) and reason (the error's `label()`).
    pub errors: Family<Labels, Counter>,
    /// Programmed local endpoints.
    pub endpoints: Gauge,
    /// BGP sessions by state (`established`, `other`).
    pub bgp_sessions: Family<Labels, Gauge>,
    /// Allocated pod addresses.
    pub ipam_allocated: Gauge,
    /// Pod addresses available in the node's blocks.
    pub ipam_capacity: Gauge,
    /// Times BIRD exited and was restarted.
    pub bird_exits: Counter,
    /// Routes the agent owns, as last programmed.
    pub routes: Gauge,
    /// nftables rules in the agent's table, as last programmed.
    pub rules: Gauge,
    /// Elements of the agent's nftables sets and verdict maps, as last programmed.
    pub set_elements: Gauge,
}

impl Metrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            sync_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            errors: Family::default(),
            endpoints: Gauge::default(),
            bgp_sessions: Family::default(),
            ipam_allocated: Gauge::default(),
            ipam_capacity: Gauge::default(),
            bird_exits: Counter::default(),
            routes: Gauge::default(),
            rules: Gauge::default(),
            set_elements: Gauge::default(),
        };
        let sub = registry.sub_registry_with_prefix("gingham_agent");
        sub.register("sync_duration_seconds", "Seconds one dataplane sync took", metrics.sync_seconds.clone());
        sub.register("errors", "Errors by kind", metrics.errors.clone());
        sub.register("endpoints", "Programmed local endpoints", metrics.endpoints.clone());
        sub.register("bgp_sessions", "BGP sessions by state", metrics.bgp_sessions.clone());
        sub.register("ipam_allocated", "Allocated pod addresses", metrics.ipam_allocated.clone());
        sub.register("ipam_capacity", "Pod addresses in the node's blocks", metrics.ipam_capacity.clone());
        sub.register("bird_exits", "Times BIRD exited", metrics.bird_exits.clone());
        sub.register("routes", "Routes the agent owns, as last programmed", metrics.routes.clone());
        sub.register("nft_rules", "nftables rules, as last programmed", metrics.rules.clone());
        sub.register(
            "nft_set_elements",
            "nftables set and map elements, as last programmed",
            metrics.set_elements.clone(),
        );
        metrics
    }

    /// Records what a sync put in force: the sizes of the desired routes and ruleset for the parts
    /// the report says are programmed (the previous values stay otherwise).
    pub fn programmed(&self, report: &SyncReport) {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        if report.routes_programmed {
            self.routes.set(count(report.sizes.routes));
        }
        if report.policy_programmed {
            self.rules.set(count(report.sizes.rules));
            self.set_elements.set(count(report.sizes.set_elements));
        }
    }

    /// Counts one error of `kind` for `reason` (a stable label, such as the error's `label()`).
    pub fn error(&self, kind: &str, reason: &str) {
        let labels = vec![("kind".to_string(), kind.to_string()), ("reason".to_string(), reason.to_string())];
        self.errors.get_or_create(&labels).inc();
    }

    /// Sets the BGP session gauges.
    pub fn sessions(&self, established: usize, total: usize) {
        let set = |state: &str, value: usize| {
            let labels = vec![("state".to_string(), state.to_string())];
            self.bgp_sessions.get_or_create(&labels).set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set("established", established);
        set("other", total.saturating_sub(established));
    }
}
