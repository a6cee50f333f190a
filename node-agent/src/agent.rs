//! The main loop: on any change of spec, span, blocks or endpoints, and on a periodic resync, build
//! the [`NodeView`], sync the dataplane and BIRD, and write status when it changed.
//!
//! A spec that does not decode or validate is rejected with an error in status; the last good spec
//! stays in force. While the node's span is not known (no stream snapshot or span file yet),
//! routes are programmed but nftables and BIRD are left as they are, and status says that policy
//! and BGP wait for the span. IPAM is read off the executor and never waited for long
//! ([`IPAM_WAIT`]): when it does not answer, the loop syncs with the endpoints it last read and
//! reports why. Each pass ends with a heartbeat; `/healthz` fails when none came for
//! [`STALLED_AFTER`]. On shutdown routes and rules stay in place.

mod bird_calls;
mod ipam_calls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::NodeNetworkStatus;
use gingham_crds::api::nodenetwork::{BgpSessionStatus, IpamUsage, StreamStatus};
use gingham_crds::api::span::NodeSpan;
use gingham_crds::validate::validate_node_network_structure;
use ipnet::IpNet;
use tokio::sync::watch;

use crate::bird::BirdSupervisor;
use crate::dataplane::plan::NodePlan;
use crate::dataplane::{Dataplane, NodeView, SyncReport};
use crate::dataplane::{SPAN_UNKNOWN, SyncError};
use crate::datastore::{NodeNetworkState, Snapshot, StatusSink};
use crate::endpoint::LocalEndpoint;
use crate::ipam::{Allocation, BlockSet, IpamStore};
use crate::logging::LogControl;
use crate::metrics::Metrics;
use crate::shared::{Programmed, Shared};
use crate::status::{self, StatusInputs};
use ipam_calls::{LoopIpam, LoopIpamError};

pub use ipam_calls::IPAM_WAIT;

/// How often BIRD is polled and status refreshed between syncs.
const TICK: Duration = Duration::from_secs(2);

/// The longest a pass of the loop is expected to take: a dataplane sync (0.44 s for 5,000 blocks
/// in bench group 5), BIRD's config check and reload (its waits are 3-10 s), and IPAM calls of
/// at most [`IPAM_WAIT`] each.
pub const LONGEST_PASS: Duration = Duration::from_secs(30);

/// The loop counts as stalled when it has not finished a pass for this long (three ticks and the
/// longest pass); `/healthz` then answers 503.
pub const STALLED_AFTER: Duration = Duration::from_secs(3 * TICK.as_secs() + LONGEST_PASS.as_secs());

/// An allocation whose veth was not created after this long is leaked (longer than the longest
/// ADD timeout the plugin accepts, 600 s).
pub const STALE_PENDING_SECONDS: u64 = 900;

/// The agent's fixed settings.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// This node's name.
    pub node: String,
    /// Release leaked addresses on each resync: ready allocations whose host interface has
    /// disappeared, and allocations whose veth was never created (see [`STALE_PENDING_SECONDS`]).
    pub reap_leaked: bool,
    /// Applies `spec.agent.logLevel`.
    pub logs: LogControl,
}

/// What the loop shares with the CNI API and the HTTP endpoints.
#[derive(Clone, Debug)]
pub struct Services {
    /// Blocks, endpoint changes and what the last sync programmed.
    pub shared: Arc<Shared>,
    /// The allocation table.
    pub ipam: IpamStore,
    /// The agent's metrics.
    pub metrics: Metrics,
}

/// The main loop and what it owns.
pub struct Agent<D: Dataplane, S: StatusSink> {
    options: AgentOptions,
    dataplane: D,
    sink: S,
    inputs: watch::Receiver<Snapshot>,
    services: Services,
    ipam: LoopIpam,
    bird: Option<BirdSupervisor>,
    state: LoopState,
}

/// What the loop remembers between iterations.
#[derive(Debug, Default)]
struct LoopState {
    accepted: Option<(Option<i64>, NodeNetworkSpec)>,
    /// The node's span as the inputs last gave it; `None` while it is not known.
    span: Option<Arc<NodeSpan>>,
    /// The accepted spec, the span and the IPAMBlocks, decoded once per revision.
    plan: Option<Arc<NodePlan>>,
    /// The datastore sent new inputs since the plan was built.
    inputs_changed: bool,
    blocks: Option<BlockSet>,
    spec_error: Option<String>,
    report: Option<SyncReport>,
    endpoints: Vec<LocalEndpoint>,
    /// Usage at the last IPAM read, kept while IPAM does not answer.
    ipam_usage: IpamUsage,
    /// Why the last IPAM call of the loop failed.
    ipam_error: Option<String>,
    /// The tunnel addresses IPAM holds for this node, as last read.
    tunnel: crate::ipam::TunnelAddresses,
    bird_apply_error: Option<String>,
    /// BGP sessions left out of BIRD's config, each with the reason.
    bird_left_out: Vec<String>,
    /// BIRD's sessions are due to be read: on the tick, and after its config changed.
    bird_sessions_stale: bool,
    bird_exit_error: Option<String>,
    sessions: Vec<BgpSessionStatus>,
    written: Option<NodeNetworkStatus>,
    /// How the operator's stream stands, as the inputs last said.
    stream: Option<StreamStatus>,
}

impl<D: Dataplane, S: StatusSink> Agent<D, S> {
    /// An agent; nothing runs until [`Agent::run`].
    pub fn new(
        options: AgentOptions,
        dataplane: D,
        sink: S,
        inputs: watch::Receiver<Snapshot>,
        services: Services,
        bird: Option<BirdSupervisor>,
    ) -> Self {
        let state = LoopState { bird_sessions_stale: true, ..LoopState::default() };
        let ipam = LoopIpam::new(services.ipam.clone());
        Self { options, dataplane, sink, inputs, services, ipam, bird, state }
    }

    /// Runs until `shutdown` completes. BIRD is stopped (its kernel routes persist); the
    /// dataplane's routes and rules are left in place.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        let mut next_resync = Instant::now();
        let mut dirty = true;
        let mut inputs_open = true;
        loop {
            if dirty || Instant::now() >= next_resync {
                self.reconcile().await;
                let refresh = self
                    .state
                    .accepted
                    .as_ref()
                    .map_or(90, |(_, s)| s.agent.route_refresh_seconds.min(s.agent.nftables_refresh_seconds));
                next_resync = Instant::now() + Duration::from_secs(u64::from(refresh.max(1)));
                dirty = false;
            }
            // Not after every change: `birdc` is a process.
            if std::mem::take(&mut self.state.bird_sessions_stale) {
                self.refresh_bird().await;
            }
            self.write_status().await;
            self.services.shared.beat();
            tokio::select! {
                () = &mut shutdown => break,
                changed = self.inputs.changed(), if inputs_open => {
                    if changed.is_err() {
                        tracing::error!("the datastore stopped; keeping the last inputs");
                        inputs_open = false;
                    }
                    self.state.inputs_changed = true;
                    dirty = true;
                }
                () = self.services.shared.wait_for_change() => dirty = true,
                _ = tick.tick() => self.state.bird_sessions_stale = true,
            }
        }
        tracing::info!("shutting down; routes and rules stay in place");
        if let Some(bird) = &mut self.bird {
            bird.stop().await;
        }
    }

    /// One full pass: accept the spec, apply BIRD's config, sync the dataplane. BIRD goes first:
    /// its sessions take a second or more to come up (a node joining waits for them), and its
    /// config does not depend on the dataplane.
    async fn reconcile(&mut self) {
        if std::mem::take(&mut self.state.inputs_changed) || self.state.plan.is_none() {
            let mut snapshot = self.inputs.borrow_and_update().clone();
            self.state.stream.clone_from(&snapshot.stream);
            self.state.span = snapshot.span.take().map(Arc::new);
            if let Some(span) = &self.state.span {
                self.services.shared.set_span_pools(span);
            }
            self.accept(&snapshot);
            self.plan(&snapshot);
        }
        let (Some((_, spec)), Some(plan)) = (self.state.accepted.clone(), self.state.plan.clone()) else { return };
        self.apply_bird(&spec, self.state.span.clone()).await;
        if self.options.reap_leaked {
            self.reap_leaked().await;
        }
        let seq = self.services.shared.current_seq();
        // Pending allocations too: the plugin routes its pod before `ready`, and this sync must not
        // take that route away. Only endpoints whose veth exists are programmed. When IPAM does
        // not answer, the endpoints last read stay (never none: that would unroute every pod), and
        // the sync does not claim to have seen the changes since.
        let (endpoints, seq) = match self.ipam.call("list", |store| store.list()).await {
            Ok(list) => {
                self.ipam_answered();
                (list.into_iter().map(|a| a.endpoint()).collect(), seq)
            }
            Err(error) => {
                self.ipam_failed(&error);
                (self.state.endpoints.clone(), self.services.shared.programmed().seq)
            }
        };
        let tunnel_error = self.ensure_tunnel().await.err();
        let view = NodeView {
            plan: &plan,
            endpoints: &endpoints,
            tunnel_address: self.state.tunnel.ipv4,
            tunnel_address6: self.state.tunnel.ipv6,
        };
        let started = Instant::now();
        let mut report = self.dataplane.sync(&view).await;
        plan.report(&mut report);
        if let Some(error) = tunnel_error {
            report.routes_programmed = false;
            report.errors.push(SyncError { label: "tunnel_address", message: error.to_string() });
        }
        self.services.metrics.sync_seconds.observe(started.elapsed().as_secs_f64());
        self.services.metrics.programmed(&report);
        // Waiting for the span is logged once, when the plan says so.
        for error in report.errors.iter().filter(|e| e.label != SPAN_UNKNOWN) {
            tracing::warn!(%error, "dataplane sync error; the previous state stays in force");
            self.services.metrics.error("sync", error.label);
        }
        self.services.metrics.endpoints.set(i64::try_from(report.programmed_endpoints.len()).unwrap_or(i64::MAX));
        self.services.shared.publish(Programmed {
            seq,
            endpoints: report.programmed_endpoints.clone(),
            policy_endpoints: report.policy_endpoints.clone(),
            synced: true,
            waiting_for_span: plan.policy.is_none(),
        });
        self.state.report = Some(report);
        self.state.endpoints = endpoints;
    }

    fn ipam_answered(&mut self) {
        if self.state.ipam_error.take().is_some() {
            tracing::info!("IPAM answers again");
        }
    }

    /// Logs (when the reason changed), counts and reports an IPAM call that failed.
    fn ipam_failed(&mut self, error: &LoopIpamError) {
        let message = error.to_string();
        if self.state.ipam_error.as_deref() != Some(&message) {
            tracing::warn!(%error, "IPAM did not answer the main loop");
        }
        self.services.metrics.error("ipam", error.label());
        self.state.ipam_error = Some(message);
    }

    /// Allocates, keeps or releases this node's tunnel addresses (both families) through IPAM, as
    /// the spec's tunnel blocks call for. On failure the last known addresses stay in use.
    async fn ensure_tunnel(&mut self) -> Result<(), LoopIpamError> {
        let Some(blocks) = self.state.blocks.clone() else { return Ok(()) };
        let node = self.options.node.clone();
        let result = self.ipam.call("tunnel", move |store| store.ensure_tunnels(&blocks, &node)).await;
        match result {
            Ok(addresses) => {
                self.state.tunnel = addresses;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "allocating the tunnel address failed; the last known one stays in use");
                self.services.metrics.error("ipam", error.label());
                Err(error)
            }
        }
    }

    /// Decodes the spec in force, the span and the IPAMBlocks once for this revision of the
    /// inputs, and logs the values left out, and whether the span is known, when they changed.
    fn plan(&mut self, snapshot: &Snapshot) {
        let Some((_, spec)) = &self.state.accepted else { return };
        let plan = NodePlan::build(&self.options.node, spec, self.state.span.as_deref(), &snapshot.blocks);
        let old = self.state.plan.as_deref();
        for problem in plan.routing_problems.iter().chain(&plan.policy_problems) {
            if !old.is_some_and(|old| old.routing_problems.contains(problem) || old.policy_problems.contains(problem)) {
                tracing::warn!(%problem, "a value of the NodeNetwork, the span or an IPAMBlock does not decode");
                self.services.metrics.error("spec", "undecodable");
            }
        }
        match (old.map(|old| old.policy.is_some()), plan.policy.is_some()) {
            (None | Some(true), false) => tracing::info!(
                "waiting for this node's span: routes are programmed; nftables and BIRD stay as they are until it arrives"
            ),
            (Some(false), true) => tracing::info!("this node's span arrived: programming policy and BGP sessions"),
            _ => {}
        }
        self.state.plan = Some(Arc::new(plan));
    }

    /// Takes a spec into force, or records why it was rejected: only problems that stop the agent
    /// from acting on the spec at all reject it ([`validate_node_network_structure`]); a value
    /// that does not decode is left out by the plan and reported.
    fn accept(&mut self, snapshot: &Snapshot) {
        let node = &self.options.node;
        let error = match &snapshot.node_network {
            NodeNetworkState::Missing => {
                Some(format!("no NodeNetwork {node} yet; the operator creates it when it assigns the node's blocks"))
            }
            NodeNetworkState::Malformed(message) => {
                Some(format!("NodeNetwork {node} rejected: {message}; the last good spec stays in force"))
            }
            NodeNetworkState::Found(network) => match validate_node_network_structure(&network.spec) {
                Ok(()) => {
                    let releasing: Vec<IpNet> = snapshot
                        .blocks
                        .iter()
                        .filter(|b| b.node == *node && b.releasing)
                        .filter_map(|b| Some(b.cidr.value()?.0))
                        .collect();
                    let blocks = BlockSet::from_spec(&network.spec, &releasing);
                    self.services.shared.set_blocks(blocks.clone());
                    self.state.blocks = Some(blocks);
                    let level = &network.spec.agent.log_level;
                    if self.state.accepted.as_ref().is_none_or(|(_, old)| old.agent.log_level != *level) {
                        self.options.logs.set(level);
                    }
                    self.state.accepted = Some((network.metadata.generation, network.spec.clone()));
                    None
                }
                Err(problems) => {
                    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    Some(format!(
                        "NodeNetwork {node} generation {} rejected: {}; the last good spec stays in force",
                        network.metadata.generation.unwrap_or_default(),
                        problems.join("; ")
                    ))
                }
            },
        };
        if error != self.state.spec_error {
            match &error {
                Some(error) if snapshot.node_network == NodeNetworkState::Missing => {
                    tracing::info!(%error, "waiting for the NodeNetwork");
                }
                Some(error) => {
                    tracing::warn!(%error, "NodeNetwork not accepted");
                    self.services.metrics.error("spec", "rejected");
                }
                None => tracing::info!(node, "NodeNetwork accepted"),
            }
        }
        self.state.spec_error = error;
    }

    /// Releases leaked addresses: ready allocations whose host interface no longer exists (the pod
    /// is gone), and allocations whose veth was never created long after any ADD could still wait.
    async fn reap_leaked(&mut self) {
        let reaped = self.ipam.call("leak check", |store| {
            let stale = store.release_stale_pending(STALE_PENDING_SECONDS)?;
            let mut gone = Vec::new();
            for allocation in store.list()?.iter().filter(|a| a.ready && !interface_exists(&a.interface)) {
                gone.extend(store.release(&allocation.container_id, Some(&allocation.ifname))?);
            }
            Ok::<_, crate::ipam::IpamError>((stale, gone))
        });
        match reaped.await {
            Ok((stale, gone)) => {
                let log = |allocation: &Allocation, what: &str| {
                    tracing::info!(pod = %allocation.endpoint().key(), addresses = ?allocation.addresses(), "{what}");
                };
                stale.iter().for_each(|a| log(a, "released an address whose ADD never completed"));
                gone.iter().for_each(|a| log(a, "released the address of a pod whose interface is gone"));
            }
            Err(error) => self.ipam_failed(&error),
        }
    }

    /// Writes status when it says something new (and the NodeNetwork exists).
    async fn write_status(&mut self) {
        if self.inputs.borrow().node_network == NodeNetworkState::Missing {
            // Nothing to attach a status to yet (the API server would answer 404).
            return;
        }
        if let Some(blocks) = self.state.blocks.clone() {
            match self.ipam.call("usage", move |store| store.usage(&blocks)).await {
                Ok(usage) => {
                    self.ipam_answered();
                    self.state.ipam_usage = usage;
                }
                Err(error) => self.ipam_failed(&error),
            }
        }
        let ipam = self.state.ipam_usage.clone();
        self.services.metrics.ipam_allocated.set(i64::from(ipam.allocated));
        self.services.metrics.ipam_capacity.set(i64::from(ipam.capacity));
        let bird_error = self.state.bird_apply_error.as_deref().or(self.state.bird_exit_error.as_deref());
        let spec = self.state.accepted.as_ref();
        let inputs = StatusInputs {
            generation: spec.and_then(|(generation, _)| *generation),
            spec_error: self.state.spec_error.as_deref(),
            report: self.state.report.as_ref(),
            bgp_enabled: spec.is_some_and(|(_, s)| s.bgp.is_some()) && self.bird.is_some(),
            waiting_for_span: self.state.plan.as_ref().is_some_and(|plan| plan.policy.is_none()),
            sessions: &self.state.sessions,
            bird_error,
            bgp_left_out: &self.state.bird_left_out,
            ipam_error: self.state.ipam_error.as_deref(),
            endpoints: &self.state.endpoints,
            ipam,
            tunnel_address: self.state.tunnel.ipv4,
            tunnel_address6: self.state.tunnel.ipv6,
            stream: self.state.stream.as_ref(),
        };
        let mut next = status::build(
            &inputs,
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
        );
        status::carry_times(&mut next, self.state.written.as_ref());
        if self.state.written.as_ref().is_some_and(|written| status::equivalent(written, &next)) {
            return;
        }
        match self.sink.write_status(&next).await {
            Ok(()) => self.state.written = Some(next),
            Err(error) => {
                tracing::warn!(%error, "writing status failed; retrying on the next tick");
                self.services.metrics.error("status", error.label());
            }
        }
    }
}

fn interface_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}
