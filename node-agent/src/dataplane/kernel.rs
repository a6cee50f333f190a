//! [`KernelDataplane`]: one sync is compute desired → read the kernel → diff → apply netlink
//! operations → apply nftables → report. It never flushes: what is already right is not touched.
//! While the node's span is not known (the plan has no policy) nftables is not touched at all: a
//! restarted agent keeps enforcing the table it finds until its span arrives.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use gingham_crds::api::IpFamily;
use gingham_crds::api::nodenetwork::NodeCapabilities;
use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::desired::{
    HostFacts, desired_addresses, desired_fdb, desired_neighbours, desired_sysctls, desired_tunnels, local_routes,
    problems, remote_routes, vtep_routes,
};
use super::diff::{DesiredState, KernelState, Op, diff};
use super::model::{LinkState, ROUTE_PROTOCOL, TunnelKind};
use super::netlink::{Netlink, NetlinkError, describe};
use super::nexthop::{Underlay, through_nexthops};
use super::nft::apply::{Nft, NftChange, NftCommand};
use super::nft::build::{dispatched, ruleset};
use super::nft::model::Ruleset;
use super::nft::observe::{Digests, Observed, Plan, plan, trust};
use super::observed::{self, Notice};
use super::plan::PolicyPlan;
use super::rtnl::RtNetlink;
use super::settled::Settled;
use super::{Dataplane, NodeView, SyncError, SyncReport};

/// What the nftables step of the last sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NftOutcome {
    /// No sync yet.
    #[default]
    NotRun,
    /// The table already matched.
    UpToDate,
    /// Set and map elements were added or deleted.
    Elements,
    /// Sets, maps or chains were added, changed or deleted (and elements updated) in one
    /// transaction, without rewriting the table.
    Incremental,
    /// The table was rewritten in one transaction.
    Rewrite,
    /// The node's span is not known: the table was left as it is, not even listed.
    Untouched,
    /// The change failed; the previous ruleset stays in force.
    Failed,
}

/// What the last sync changed, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Netlink and sysctl changes applied successfully.
    pub netlink_changes: usize,
    /// The kernel was dumped in full (no picture of it yet, notifications lost, something it does
    /// not announce happened, or the periodic check was due); otherwise its notifications told.
    pub dumped: bool,
    /// Nothing changed since the last sync (the same inputs, no kernel notification, no full
    /// check due): the netlink side was neither computed nor compared.
    pub unchanged: bool,
    /// The nftables step.
    pub nft: NftOutcome,
}

/// The real dataplane over a [`Netlink`] and an [`Nft`] (the kernel by default).
#[derive(Debug)]
pub struct KernelDataplane<N = RtNetlink, F = NftCommand> {
    netlink: N,
    nft: F,
    capabilities: Option<NodeCapabilities>,
    trusted_rules: Option<Digests>,
    applied: Option<Ruleset>,
    /// When the table was last listed (and `applied` is what it held, or was made to hold, since).
    listed_at: Option<Instant>,
    last: SyncStats,
    /// The kernel as last dumped, kept current by its notifications; `None`: dump at the next sync.
    observed: Option<KernelState>,
    /// When the kernel was last dumped in full.
    dumped_at: Option<Instant>,
    /// The inputs of the last netlink sync that left the kernel as desired.
    settled: Option<Settled>,
    /// When a sync last wanted each VXLAN device (`vxlan.gingham`, `vxlan6.gingham`).
    vxlan_wanted_at: BTreeMap<String, Instant>,
    /// How long a VXLAN device outlives the last sync that wanted it ([`VXLAN_DRAIN`]).
    vxlan_drain: Duration,
}

/// How long a VXLAN device stays after its pools stop using VXLAN, so that it still receives
/// from the nodes whose agents have not switched yet: every agent reacts to its own NodeNetwork,
/// and the last ones may take a few seconds on a loaded cluster. Without this, each pair lost a
/// packet or two on a switch to Never (bench group 9). It goes at the first sync after this.
pub const VXLAN_DRAIN: Duration = Duration::from_secs(10);

impl KernelDataplane {
    /// Connects to the kernel of the current network namespace (needs a tokio runtime and
    /// CAP_NET_ADMIN) and uses the `nft` command.
    pub fn connect() -> Result<Self, NetlinkError> {
        Ok(Self::new(RtNetlink::connect()?, NftCommand::default()))
    }
}

impl<N: Netlink, F: Nft> KernelDataplane<N, F> {
    /// A dataplane over the given kernel interfaces.
    pub fn new(netlink: N, nft: F) -> Self {
        Self {
            netlink,
            nft,
            capabilities: None,
            trusted_rules: None,
            applied: None,
            listed_at: None,
            last: SyncStats::default(),
            observed: None,
            dumped_at: None,
            settled: None,
            vxlan_wanted_at: BTreeMap::new(),
            vxlan_drain: VXLAN_DRAIN,
        }
    }

    /// The same dataplane with another drain time for the VXLAN device (tests use zero).
    pub fn with_vxlan_drain(mut self, drain: Duration) -> Self {
        self.vxlan_drain = drain;
        self
    }

    /// The netlink side (tests inspect fakes through it).
    #[cfg(test)]
    pub fn netlink_mut(&mut self) -> &mut N {
        &mut self.netlink
    }

    /// The nftables side (tests inspect fakes through it).
    #[cfg(test)]
    pub fn nft_mut(&mut self) -> &mut F {
        &mut self.nft
    }

    /// What the last sync changed.
    pub fn last_sync(&self) -> &SyncStats {
        &self.last
    }

    async fn capabilities(&mut self) -> NodeCapabilities {
        if let Some(known) = &self.capabilities {
            return known.clone();
        }
        let found = self.netlink.capabilities().await;
        if !found.ipip {
            info!("this kernel has no IP-in-IP (no tunl0, no ipip module): IPIP pools cannot be routed here");
        }
        if found.nexthops {
            info!(protocol = ROUTE_PROTOCOL, "remote blocks route through nexthop objects, one per remote node");
        } else {
            warn!("this kernel has no nexthop objects: remote blocks are programmed as plain routes, one per block");
        }
        self.capabilities = Some(found.clone());
        found
    }

    async fn read(&mut self, nexthops: bool) -> Result<KernelState, NetlinkError> {
        let mut state = KernelState {
            links: self.netlink.links().await?,
            addresses: self.netlink.addresses().await?,
            routes: self.netlink.routes().await?,
            neighbours: self.netlink.neighbours().await?,
            fdb: self.netlink.fdb().await?,
            ..KernelState::default()
        };
        if nexthops {
            let found = self.netlink.nexthops().await?;
            (state.nexthops, state.foreign_nexthops) = (found.ours, found.foreign);
        }
        Ok(state)
    }

    /// The kernel as it is: the last dump with every notification since applied, or a new dump
    /// when there is none, notifications were lost or told of something they cannot describe, or
    /// the last dump is older than the spec's `routeRefreshSeconds` (the safety net). Taken out
    /// of `observed` (not copied); the sync puts it back once it has diffed.
    async fn current(&mut self, notices: Vec<Notice>, due: bool, nexthops: bool) -> Result<KernelState, NetlinkError> {
        if let (false, Some(mut state)) = (due, self.observed.take()) {
            let count = notices.len();
            if notices.into_iter().all(|notice| observed::apply(&mut state, notice)) {
                if count > 0 {
                    debug!(count, "kernel state updated from notifications");
                }
                return Ok(state);
            }
            debug!("a notification needs a dump");
        } else if notices.contains(&Notice::Lost) {
            debug!("notifications were lost");
        }
        // Notifications from here on are applied over the dump (replaying one the dump already
        // shows changes nothing).
        self.last.dumped = true;
        let state = self.read(nexthops).await?;
        self.dumped_at = Some(Instant::now());
        Ok(state)
    }

    /// Routes, devices, neighbours, FDB, nexthops and sysctls. Returns the endpoints
    /// (`namespace/pod`) whose plumbing is in place. With the same inputs as the last sync that
    /// left the kernel as desired, no notification since and no full check due, it is that
    /// sync's outcome again ([`Settled`]); a sysctl changed by hand is then found at the full
    /// check (`routeRefreshSeconds`), as a route removed silently is.
    async fn sync_routes(
        &mut self,
        view: &NodeView<'_>,
        capabilities: &NodeCapabilities,
        report: &mut SyncReport,
    ) -> BTreeSet<String> {
        let notices = self.netlink.notices().await;
        tracing::trace!(?notices, "kernel notifications");
        let refresh = Duration::from_secs(u64::from(view.plan.route_refresh_seconds));
        let due = self.dumped_at.is_none_or(|at| at.elapsed() >= refresh);
        if let (true, false, Some(settled)) = (notices.is_empty(), due, self.settled.as_ref())
            && settled.matches(view)
        {
            self.last.unchanged = true;
            report.errors.extend(settled.problems.iter().cloned());
            report.sizes.routes = settled.routes;
            report.routes_programmed = report.errors.is_empty();
            return settled.plumbed.clone();
        }
        self.settled = None;
        let mut current = match self.current(notices, due, capabilities.nexthops).await {
            Ok(current) => current,
            Err(error) => {
                report.errors.push(error.into());
                return BTreeSet::new();
            }
        };
        let underlay_mtu =
            underlay(view, &current, IpFamily::IPv4).or_else(|| underlay(view, &current, IpFamily::IPv6));
        let facts = HostFacts { underlay_mtu: underlay_mtu.map(|l| l.mtu), ipip: capabilities.ipip };
        let present: BTreeSet<&str> = current.links.iter().map(|l| l.name.as_str()).collect();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            view.endpoints.iter().partition(|e| present.contains(e.interface.as_str()));
        for endpoint in &waiting {
            debug!(endpoint = %endpoint.key(), interface = %endpoint.interface, "interface not there yet");
        }
        let ready_view = NodeView { endpoints: &ready.into_iter().cloned().collect::<Vec<_>>(), ..view.clone() };
        let tunnels = desired_tunnels(&ready_view, &facts);
        let now = Instant::now();
        for tunnel in tunnels.iter().filter(|t| matches!(t.kind, TunnelKind::Vxlan { .. })) {
            self.vxlan_wanted_at.insert(tunnel.name.clone(), now);
        }
        self.vxlan_wanted_at.retain(|_, at| now.duration_since(*at) < self.vxlan_drain);
        let keep_vxlan_devices: BTreeSet<String> = self.vxlan_wanted_at.keys().cloned().collect();
        let draining = keep_vxlan_devices.iter().any(|name| !tunnels.iter().any(|t| &t.name == name));
        let remote = remote_routes(&ready_view, &facts);
        let (remote, nexthops) = if capabilities.nexthops {
            let name = |family| underlay(view, &current, family).map(|l| l.name.as_str());
            let underlay = Underlay { v4: name(IpFamily::IPv4), v6: name(IpFamily::IPv6) };
            through_nexthops(&remote, underlay, &current.foreign_nexthops)
        } else {
            (remote.into_iter().map(|r| r.route).collect(), BTreeSet::new())
        };
        let mut routes = local_routes(&ready_view);
        routes.extend(vtep_routes(&ready_view));
        routes.extend(remote);
        let desired = DesiredState {
            routes,
            nexthops,
            tunnels,
            keep_vxlan_devices,
            addresses: desired_addresses(&ready_view, &facts),
            neighbours: desired_neighbours(&ready_view),
            fdb: desired_fdb(&ready_view),
            sysctls: desired_sysctls(&ready_view),
            endpoint_links: ready_view.endpoints.iter().map(|e| e.interface.clone()).collect(),
        };
        for sysctl in &desired.sysctls {
            current.sysctls.insert(sysctl.path.clone(), self.netlink.sysctl(&sysctl.path));
        }
        report.sizes.routes = desired.routes.len();
        let mut failed = Vec::new();
        let ops = diff(&current, &desired);
        self.observed = Some(current);
        let results = self.netlink.apply(&ops).await;
        for (op, result) in ops.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    debug!(change = %describe(&op), "applied");
                    self.last.netlink_changes += 1;
                    if let (Op::AddAddress(address), Some(observed)) = (&op, self.observed.as_mut()) {
                        // The kernel announces a new IPv6 address from its address-configuration
                        // work, after it answered: maybe only after the next sync has looked.
                        observed.addresses.insert(address.clone());
                    }
                }
                Err(error) => {
                    warn!(%error, "netlink change failed");
                    report.errors.push(error.into());
                    failed.push(op);
                }
            }
        }
        let problems: Vec<SyncError> = problems(view, &facts).into_iter().map(SyncError::unprogrammable).collect();
        report.errors.extend(problems.iter().cloned());
        report.routes_programmed = report.errors.is_empty();
        let plumbed: BTreeSet<String> = ready_view
            .endpoints
            .iter()
            .filter(|e| !failed.iter().any(|op| touches(op, &e.interface, &e.addresses())))
            .map(|e| e.key())
            .collect();
        // A draining VXLAN device goes with time alone: no sync is skipped until it has.
        if failed.is_empty() && !draining {
            self.settled = Some(Settled::new(view, plumbed.clone(), problems, report.sizes.routes));
        }
        plumbed
    }

    /// The table as it is: listed when the last listing is older than the spec's
    /// `nftablesRefreshSeconds` (0: every sync), else what gingham's last successful change left
    /// (as Felix trusts its own writes between refreshes). Drift is found at the next listing.
    async fn observe(&mut self, view: &NodeView<'_>) -> Option<Observed> {
        let refresh = Duration::from_secs(u64::from(view.plan.nftables_refresh_seconds));
        let recent = self.listed_at.is_some_and(|at| at.elapsed() < refresh);
        if let (true, Some(applied)) = (recent, &self.applied) {
            return Some(Observed::expected(applied));
        }
        match self.nft.list().await {
            Ok(observed) => {
                self.listed_at = Some(Instant::now());
                observed
            }
            Err(error) => {
                warn!(%error, "cannot list the nftables table; rewriting it");
                None
            }
        }
    }

    /// The nftables table. Returns whether it is in force.
    async fn sync_policy(&mut self, view: &NodeView<'_>, policy: &PolicyPlan, report: &mut SyncReport) -> bool {
        let desired = ruleset(view, policy);
        report.sizes.rules = desired.chains.iter().map(|c| c.rules.len()).sum();
        report.sizes.set_elements = desired.elements().values().map(|e| e.len()).sum();
        let observed = self.observe(view).await;
        let trusted = self.trusted_rules.take().unwrap_or_default();
        let mut changed = BTreeSet::new();
        let (outcome, result) = match plan(&desired, observed.as_ref(), &trusted, self.applied.as_ref()) {
            Plan::UpToDate => (NftOutcome::UpToDate, Ok(())),
            Plan::Changes(delta) => {
                changed = delta.changed_chains();
                let outcome = if delta.is_structural() { NftOutcome::Incremental } else { NftOutcome::Elements };
                match self.nft.apply(NftChange::Delta(&delta)).await {
                    Ok(()) => (outcome, Ok(())),
                    Err(error) => {
                        warn!(%error, "incremental change failed; rewriting the table");
                        (NftOutcome::Rewrite, self.nft.apply(NftChange::Rewrite(&desired)).await)
                    }
                }
            }
            Plan::Rewrite => (NftOutcome::Rewrite, self.nft.apply(NftChange::Rewrite(&desired)).await),
        };
        match result {
            Ok(()) => {
                self.last.nft = outcome;
                // After a rewrite, list once to learn every chain's digest; after a delta, the
                // chains it changed are learned at the next listing, the rest stay trusted.
                self.trusted_rules = match (outcome, observed) {
                    (NftOutcome::Rewrite, _) | (_, None) => {
                        let listed = self.nft.list().await.ok().flatten();
                        self.listed_at = listed.is_some().then(Instant::now);
                        listed.map(|o| o.rule_digests)
                    }
                    (_, Some(seen)) => Some(trust(trusted, &seen, &changed)),
                };
                self.applied = Some(desired);
                true
            }
            Err(error) => {
                warn!(%error, "nftables change failed");
                report.errors.push(error.into());
                self.trusted_rules = Some(trusted);
                self.listed_at = None;
                self.last.nft = NftOutcome::Failed;
                false
            }
        }
    }
}

/// The device holding the node's underlay address of a family.
fn underlay<'a>(view: &NodeView<'_>, current: &'a KernelState, family: IpFamily) -> Option<&'a LinkState> {
    let node = match family {
        IpFamily::IPv4 => IpAddr::V4(view.plan.address?.addr()),
        IpFamily::IPv6 => IpAddr::V6(view.plan.address6?.addr()),
    };
    let device = current.addresses.iter().find(|a| a.address.addr() == node)?;
    current.link(&device.device)
}

/// Whether a failed change concerns an endpoint (its interface, or a route to one of its
/// addresses).
fn touches(op: &Op, interface: &str, addresses: &[IpAddr]) -> bool {
    match op {
        Op::ReplaceRoute(route) | Op::DeleteRoute(route) => {
            addresses.iter().any(|address| route.destination == IpNet::from(*address))
        }
        Op::SetLink { name, .. } => name == interface,
        Op::WriteSysctl(sysctl) => sysctl.path.split('/').any(|part| part == interface),
        _ => false,
    }
}

impl<N: Netlink, F: Nft> Dataplane for KernelDataplane<N, F> {
    async fn sync(&mut self, view: &NodeView<'_>) -> SyncReport {
        self.last = SyncStats::default();
        let capabilities = self.capabilities().await;
        let mut report = SyncReport { capabilities: capabilities.clone(), ..SyncReport::default() };
        let plumbed = self.sync_routes(view, &capabilities, &mut report).await;
        match &view.plan.policy {
            Some(policy) => {
                report.policy_programmed = self.sync_policy(view, policy, &mut report).await;
                if report.policy_programmed {
                    report.policy_endpoints =
                        dispatched(view, policy).map(|e| (e.name.clone(), e.uid.clone())).collect();
                    report.programmed_endpoints =
                        plumbed.into_iter().filter(|name| report.policy_endpoints.contains_key(name)).collect();
                }
            }
            // No endpoint counts as programmed, so the CNI plugin's `ready` waits for the span.
            None => {
                self.last.nft = NftOutcome::Untouched;
                report.errors.push(SyncError::span_unknown());
            }
        }
        if self.last.netlink_changes > 0 || !matches!(self.last.nft, NftOutcome::UpToDate | NftOutcome::Untouched) {
            info!(netlink_changes = self.last.netlink_changes, nft = ?self.last.nft, errors = report.errors.len(), "dataplane synced");
        }
        report
    }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
