#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gingham_crds::api::common::EncapsulationMode::{Always, Never};
use gingham_crds::api::nodenetwork::NodeNetworkSpec;
use gingham_crds::api::span::NodeSpan;

use super::*;
use crate::dataplane::fake::FakeNetlink;
use crate::dataplane::fixtures::{
    NODE, TUNNEL, TUNNEL6, dual_stack, endpoint, ipv6_only, policy_span, policy_spec, pool, remote_blocks,
    remote_blocks_dual, rules,
};
use crate::dataplane::model::{AddressSpec, NexthopSpec, RouteTarget, VXLAN_DEVICE, VXLAN6_DEVICE};
use crate::dataplane::nexthop::preferred_id;
use crate::dataplane::nft::apply::FakeNft;
use crate::dataplane::nft::observe::Observed;
use crate::dataplane::observed::Notice;
use crate::dataplane::plan::NodePlan;
use crate::endpoint::LocalEndpoint;

fn host(endpoints: &[LocalEndpoint]) -> FakeNetlink {
    let mut netlink = FakeNetlink::host();
    netlink.capabilities.vxlan = true;
    netlink.addresses.insert(AddressSpec { device: "eth0".into(), address: "192.168.1.2/24".parse().unwrap() });
    for e in endpoints {
        netlink.add_link(&e.interface, false);
    }
    netlink
}

/// Syncs `spec` and `span` (`None`: not known yet) with the fixtures' remote blocks.
async fn sync<'a>(
    dataplane: &mut KernelDataplane<FakeNetlink, FakeNft>,
    spec: &NodeNetworkSpec,
    span: impl Into<Option<&'a NodeSpan>>,
    endpoints: &[LocalEndpoint],
) -> SyncReport {
    let plan = NodePlan::build(NODE, spec, span.into(), &remote_blocks());
    dataplane.sync(&NodeView { plan: &plan, endpoints, tunnel_address: TUNNEL, tunnel_address6: None }).await
}

fn pods() -> Vec<LocalEndpoint> {
    vec![endpoint("web", [10, 0, 0, 5]), endpoint("db", [10, 0, 0, 6])]
}

#[tokio::test]
async fn a_first_sync_programs_everything_and_a_second_changes_nothing() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert_eq!(report.errors, Vec::new());
    assert!(report.routes_programmed && report.policy_programmed);
    assert_eq!(report.programmed_endpoints, ["default/db".to_string(), "default/web".to_string()].into());
    assert_eq!(dataplane.last_sync().nft, NftOutcome::Rewrite);
    let kernel = dataplane.netlink_mut();
    assert!(kernel.links.iter().all(|l| l.up), "{:?}", kernel.links);
    let vxlan = kernel.links.iter().find(|l| l.name == VXLAN_DEVICE).unwrap();
    assert_eq!(vxlan.mtu, 1450, "underlay 1500 less 50");
    assert_eq!(kernel.routes.len(), 2 + 1 + 2, "two pods, one blackhole, two remote blocks");
    assert_eq!(
        kernel.sysctls.get(&format!("net/ipv4/conf/{}/proxy_arp", pods[0].interface)).map(String::as_str),
        Some("1")
    );

    let again = sync(&mut dataplane, &spec, &span, &pods).await;
    assert_eq!(again, report);
    let stats = dataplane.last_sync();
    assert_eq!((stats.netlink_changes, stats.nft), (0, NftOutcome::UpToDate));
    assert_eq!(
        (again.sizes.routes, again.sizes.set_elements),
        (5, 2 + 1 + 1 + 1 + 2 + 2),
        "two sets, two pool sets and two maps of two"
    );
    assert!(again.sizes.rules > 10, "{:?}", again.sizes);
}

#[tokio::test]
async fn a_restart_with_everything_right_changes_nothing() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut first = KernelDataplane::new(host(&pods), FakeNft::default());
    sync(&mut first, &spec, &span, &pods).await;
    let kernel = std::mem::take(first.netlink_mut());
    let table = std::mem::take(first.nft_mut());
    let mut second = KernelDataplane::new(FakeNetlink { applied: vec![], ..kernel }, FakeNft { rewrites: 0, ..table });
    let report = sync(&mut second, &spec, &span, &pods).await;
    assert!(report.errors.is_empty() && report.routes_programmed && report.policy_programmed);
    assert!(second.netlink_mut().applied.is_empty(), "{:?}", second.netlink_mut().applied);
    assert_eq!(second.nft_mut().rewrites, 0);
}

/// A restarted agent whose span has not arrived yet keeps the table it finds (it never lists,
/// rewrites or flushes it), programs routes, and vouches for no endpoint, so the CNI plugin's
/// `ready` waits; once the span arrives the table is brought to it.
#[tokio::test]
async fn until_the_span_arrives_nftables_is_untouched_and_routes_are_programmed() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut first = KernelDataplane::new(host(&pods), FakeNft::default());
    sync(&mut first, &spec, &span, &pods).await;
    let left = std::mem::take(first.nft_mut()).table;
    let mut stale = left.clone().unwrap();
    stale.elements.get_mut("s_clients").unwrap().insert("10.9.9.9".into());
    let table = FakeNft { table: Some(stale.clone()), ..FakeNft::default() };
    let mut restarted = KernelDataplane::new(host(&pods), table);

    let waiting = sync(&mut restarted, &spec, None, &pods).await;
    assert!(waiting.routes_programmed && !waiting.policy_programmed, "{waiting:?}");
    assert_eq!(waiting.errors, vec![SyncError::span_unknown()]);
    assert!(waiting.programmed_endpoints.is_empty() && waiting.policy_endpoints.is_empty());
    assert_eq!(restarted.last_sync().nft, NftOutcome::Untouched);
    let nft = restarted.nft_mut();
    assert_eq!((nft.lists, nft.rewrites, nft.deltas), (0, 0, 0), "not even listed");
    assert_eq!(nft.table.as_ref(), Some(&stale), "what the last agent left stays in force");
    assert_eq!(restarted.netlink_mut().routes.len(), 2 + 1 + 2, "two pods, one blackhole, two remote blocks");

    let arrived = sync(&mut restarted, &spec, &span, &pods).await;
    assert!(arrived.errors.is_empty() && arrived.policy_programmed, "{arrived:?}");
    assert_eq!(arrived.programmed_endpoints, ["default/db".to_string(), "default/web".to_string()].into());
    assert_eq!(restarted.last_sync().nft, NftOutcome::Elements, "only the stale member goes");
    assert_eq!(restarted.nft_mut().table, left);
}

/// A spec whose agent lists the nftables table on every sync.
fn always_listing(mut spec: NodeNetworkSpec) -> NodeNetworkSpec {
    spec.agent.nftables_refresh_seconds = 0;
    spec
}

#[tokio::test]
async fn drift_is_repaired_with_the_smallest_change() {
    let (spec, span, pods) = (always_listing(policy_spec()), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    sync(&mut dataplane, &spec, &span, &pods).await;
    let route = dataplane.netlink_mut().routes.iter().find(|r| r.target == RouteTarget::Blackhole).cloned().unwrap();
    dataplane.netlink_mut().delete_route_by_hand(&route);
    let table = dataplane.nft_mut().table.as_mut().unwrap();
    table.elements.get_mut("s_clients").unwrap().remove("10.0.0.9");
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(dataplane.netlink_mut().routes.contains(&route));
    assert!(dataplane.nft_mut().table.as_ref().unwrap().elements["s_clients"].contains("10.0.0.9"));
    assert_eq!((dataplane.last_sync().netlink_changes, dataplane.last_sync().nft), (1, NftOutcome::Elements));
    assert!(!dataplane.last_sync().dumped, "the route's deletion was learned from its notification");
    assert_eq!(dataplane.nft_mut().rewrites, 1);
}

#[tokio::test]
async fn endpoints_and_policies_come_and_go_without_rewriting_the_table() {
    let (spec, mut span, pods) = (policy_spec(), policy_span(), pods());
    let without_db = NodeSpan {
        endpoints: span.endpoints.iter().filter(|e| e.name != "default/db").cloned().collect(),
        ..span.clone()
    };
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    let before = sync(&mut dataplane, &spec, &without_db, &pods).await;
    assert!(!before.programmed_endpoints.contains("default/db"), "db's policy is not compiled yet");
    let expected = |spec: &NodeNetworkSpec, span: &NodeSpan, endpoints: &[LocalEndpoint]| {
        Observed::expected(&rules(spec, span, endpoints))
    };
    let with_db = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(with_db.programmed_endpoints.contains("default/db"));
    assert_eq!(dataplane.last_sync().nft, NftOutcome::Incremental, "db's allow-all chains are new");
    span.policies.retain(|p| p.name != "default/allow-http");
    span.endpoints[0].ingress.clear();
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert_eq!(dataplane.last_sync().nft, NftOutcome::Incremental, "a policy went away");
    assert_eq!(dataplane.nft_mut().table, Some(expected(&spec, &span, &pods)));
    assert_eq!((dataplane.nft_mut().rewrites, dataplane.nft_mut().deltas), (1, 2));

    dataplane.nft_mut().table.as_mut().unwrap().chains.insert("stray".into(), 1);
    let spec = always_listing(spec);
    sync(&mut dataplane, &spec, &span, &pods[..1]).await;
    assert_eq!(dataplane.last_sync().nft, NftOutcome::Rewrite, "a table gingham did not leave is rewritten");
    assert_eq!(dataplane.nft_mut().table, Some(expected(&spec, &span, &pods[..1])));
}

#[tokio::test]
async fn a_veth_appearing_for_compiled_policy_changes_no_nftables_state() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    sync(&mut dataplane, &spec, &span, &pods[..1]).await;
    let table = dataplane.nft_mut().table.clone();
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(report.programmed_endpoints.contains("default/db"));
    assert_eq!(dataplane.last_sync().nft, NftOutcome::UpToDate, "db's policy was in force before its veth");
    assert_eq!(dataplane.nft_mut().table, table);
}

#[tokio::test]
async fn between_refreshes_the_table_is_trusted_and_not_listed() {
    let (spec, mut span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    sync(&mut dataplane, &spec, &span, &pods).await;
    let lists = dataplane.nft_mut().lists;
    span.ip_sets[0].members.push("10.0.3.3".into());
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert_eq!(dataplane.last_sync().nft, NftOutcome::Elements, "planned against what gingham left");
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert_eq!(dataplane.last_sync().nft, NftOutcome::UpToDate);
    assert_eq!(dataplane.nft_mut().lists, lists, "within nftablesRefreshSeconds (90) nothing is listed");

    dataplane.nft_mut().table.as_mut().unwrap().elements.get_mut("s_clients").unwrap().clear();
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert_eq!(dataplane.last_sync().nft, NftOutcome::UpToDate, "drift waits for the next listing");
    sync(&mut dataplane, &always_listing(spec), &span, &pods).await;
    assert_eq!(dataplane.last_sync().nft, NftOutcome::Elements, "the listing finds it and repairs it");
    assert_eq!(dataplane.nft_mut().lists, lists + 1);
}

#[tokio::test]
async fn a_failed_nft_transaction_is_reported_and_blocks_readiness() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft { fail: true, ..FakeNft::default() });
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(report.routes_programmed);
    assert!(!report.policy_programmed);
    assert!(report.programmed_endpoints.is_empty());
    assert!(report.policy_endpoints.is_empty(), "a failed transaction vouches for no endpoint's policy");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].message.contains("injected"), "{:?}", report.errors);
    assert_eq!(report.errors[0].label, "injected");
}

#[tokio::test]
async fn endpoints_wait_for_their_interface_and_their_policy() {
    let (spec, mut span, pods) = (policy_spec(), policy_span(), pods());
    span.endpoints.retain(|e| e.name != "default/db");
    let mut late_policy = span.endpoints[0].clone();
    late_policy.name = "default/late".into();
    span.endpoints.push(late_policy);
    let late = endpoint("late", [10, 0, 0, 7]);
    let mut all = pods.clone();
    all.push(late.clone());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    let report = sync(&mut dataplane, &spec, &span, &all).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.programmed_endpoints, ["default/web".to_string()].into(), "db lacks policy, late lacks its veth");
    assert_eq!(
        report.policy_endpoints,
        [("default/late".to_string(), None), ("default/web".to_string(), None)].into(),
        "late's policy is in force before its veth exists; db has none"
    );
    assert!(!dataplane.netlink_mut().routes.iter().any(|r| late.addresses().contains(&r.destination.addr())));
}

#[tokio::test]
async fn ipip_without_kernel_support_is_reported_not_fatal() {
    let (mut spec, span) = (policy_spec(), policy_span());
    spec.pools = vec![pool("10.0.0.0/16", Never, Always)];
    let pods = pods();
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(!report.capabilities.ipip);
    assert!(!report.routes_programmed);
    assert!(report.policy_programmed);
    assert!(
        report.errors.iter().any(|e| e.message.contains("no IP-in-IP") && e.label == "unprogrammable"),
        "{:?}",
        report.errors
    );
    assert_eq!(dataplane.netlink_mut().routes.len(), 3, "pods and the blackhole are still programmed");
}

#[tokio::test]
async fn a_failed_netlink_change_is_reported_and_the_rest_still_applies() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut netlink = host(&pods);
    netlink.fail_matching = Some(format!("route {}/32", pods[0].address.unwrap()));
    let mut dataplane = KernelDataplane::new(netlink, FakeNft::default());
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(!report.routes_programmed);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.programmed_endpoints, ["default/db".to_string()].into());
    assert_eq!(dataplane.netlink_mut().routes.len(), 4);
}

#[tokio::test]
async fn switching_vxlan_off_replaces_routes_before_removing_the_device() {
    let (mut spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default()).with_vxlan_drain(Duration::ZERO);
    sync(&mut dataplane, &spec, &span, &pods).await;
    spec.pools[0].vxlan_mode = gingham_crds::api::common::EncapsulationMode::CrossSubnet;
    sync(&mut dataplane, &spec, &span, &pods).await;
    spec.pools[0].vxlan_mode = Never;
    dataplane.netlink_mut().applied.clear();
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let kernel = dataplane.netlink_mut();
    assert!(kernel.link(VXLAN_DEVICE).is_none());
    assert!(kernel.routes.iter().all(|r| !matches!(&r.target, RouteTarget::Via { .. })), "{:?}", kernel.routes);
    assert!(
        matches!(kernel.applied.last(), Some(Op::DeleteLink(name)) if name == VXLAN_DEVICE),
        "{:?}",
        kernel.applied
    );
}

#[tokio::test]
async fn after_vxlan_is_switched_off_the_device_stays_to_receive_from_nodes_not_switched_yet() {
    let (mut spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(!dataplane.netlink_mut().neighbours.is_empty(), "VXLAN is in use before the switch");
    spec.pools[0].vxlan_mode = Never;
    let report = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let kernel = dataplane.netlink_mut();
    assert!(kernel.link(VXLAN_DEVICE).is_some(), "the device drains for VXLAN_DRAIN");
    assert!(kernel.addresses.iter().all(|a| a.device != VXLAN_DEVICE), "{:?}", kernel.addresses);
    assert!(kernel.neighbours.is_empty() && kernel.fdb.is_empty(), "nothing is sent through it any more");
    assert!(kernel.routes.iter().all(|r| !matches!(&r.target, RouteTarget::Via { .. })), "{:?}", kernel.routes);
}

#[tokio::test]
async fn the_real_dataplane_sync_can_be_spawned_on_a_multithreaded_runtime() {
    fn assert_send<T: Send>(_: &T) {}
    let mut dataplane = KernelDataplane::connect().unwrap();
    let plan = NodePlan::build(NODE, &policy_spec(), Some(&policy_span()), &[]);
    let view = NodeView { plan: &plan, endpoints: &[], tunnel_address: TUNNEL, tunnel_address6: None };
    let future = dataplane.sync(&view);
    assert_send(&future);
}

/// Syncs with the fixtures' remote blocks changed by `change`.
async fn sync_blocks(
    dataplane: &mut KernelDataplane<FakeNetlink, FakeNft>,
    spec: &NodeNetworkSpec,
    change: impl FnOnce(&mut Vec<gingham_crds::api::IPAMBlockSpec>),
) -> SyncReport {
    let mut blocks = remote_blocks();
    change(&mut blocks);
    let plan = NodePlan::build(NODE, spec, Some(&policy_span()), &blocks);
    dataplane.sync(&NodeView { plan: &plan, endpoints: &[], tunnel_address: TUNNEL, tunnel_address6: None }).await
}

fn nexthop_of(node: &str, gateway: &str) -> NexthopSpec {
    let id = preferred_id(node, IpFamily::IPv4);
    NexthopSpec { id, gateway: gateway.parse().unwrap(), device: VXLAN_DEVICE.into() }
}

#[tokio::test]
async fn remote_blocks_route_through_one_nexthop_per_node_and_an_idle_sync_dumps_nothing() {
    let spec = policy_spec();
    let mut dataplane = KernelDataplane::new(host(&[]), FakeNft::default());
    let report = sync_blocks(&mut dataplane, &spec, |_| {}).await;
    assert!(report.errors.is_empty() && report.capabilities.nexthops, "{report:?}");
    assert!(dataplane.last_sync().dumped);
    let (b, c) = (nexthop_of("node-b", "10.0.1.0"), nexthop_of("node-c", "10.0.2.0"));
    let kernel = dataplane.netlink_mut();
    assert_eq!(kernel.nexthops, [b.clone(), c.clone()].into());
    let remote: Vec<_> = kernel.routes.iter().filter(|r| r.target != RouteTarget::Blackhole).collect();
    assert_eq!(
        remote.iter().map(|r| (r.destination.to_string(), r.target.clone())).collect::<Vec<_>>(),
        [("10.0.1.0/26".into(), RouteTarget::Nexthop(b.id)), ("10.0.2.0/26".into(), RouteTarget::Nexthop(c.id))]
    );
    let dumps = kernel.dumps;
    for _ in 0..3 {
        sync_blocks(&mut dataplane, &spec, |_| {}).await;
        assert_eq!((dataplane.last_sync().dumped, dataplane.last_sync().netlink_changes), (false, 0));
    }
    assert_eq!(dataplane.netlink_mut().dumps, dumps, "idle syncs learn from notifications only");
}

#[tokio::test]
async fn moving_a_node_rewrites_its_nexthop_and_no_route() {
    let spec = policy_spec();
    let mut dataplane = KernelDataplane::new(host(&[]), FakeNft::default());
    sync_blocks(&mut dataplane, &spec, |_| {}).await;
    dataplane.netlink_mut().applied.clear();
    // node-b's VTEP moves (a new tunnel address), and so does its underlay address.
    let report = sync_blocks(&mut dataplane, &spec, |blocks| {
        blocks[1].tunnel_address = Some("10.0.1.1".into());
        blocks[1].node_address = "192.168.1.33/24".into();
    })
    .await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let applied = &dataplane.netlink_mut().applied;
    let moved = nexthop_of("node-b", "10.0.1.1");
    assert!(applied.contains(&Op::ReplaceNexthop(moved)), "{applied:?}");
    assert!(!applied.iter().any(|op| matches!(op, Op::ReplaceRoute(_) | Op::DeleteRoute(_))), "{applied:?}");
    assert!(!dataplane.last_sync().dumped);
}

#[tokio::test]
async fn a_restarted_agent_adopts_its_nexthops_and_leaves_foreign_ones_alone() {
    let spec = policy_spec();
    let mut kernel = host(&[]);
    let b = preferred_id("node-b", IpFamily::IPv4);
    kernel.foreign_nexthops.insert(b);
    let mut first = KernelDataplane::new(kernel, FakeNft::default());
    sync_blocks(&mut first, &spec, |_| {}).await;
    let kernel = std::mem::take(first.netlink_mut());
    assert!(kernel.nexthops.iter().any(|n| n.id == b + 1), "the foreign id is skipped: {:?}", kernel.nexthops);
    assert!(kernel.foreign_nexthops.contains(&b));

    let mut restarted = KernelDataplane::new(FakeNetlink { applied: vec![], ..kernel }, FakeNft::default());
    let report = sync_blocks(&mut restarted, &spec, |_| {}).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(restarted.last_sync().dumped);
    assert_eq!(restarted.netlink_mut().applied, Vec::new(), "the same plan gives the same ids");
}

#[tokio::test]
async fn without_nexthop_objects_remote_blocks_are_plain_routes() {
    let spec = policy_spec();
    let mut kernel = host(&[]);
    kernel.capabilities.nexthops = false;
    let mut dataplane = KernelDataplane::new(kernel, FakeNft::default());
    let report = sync_blocks(&mut dataplane, &spec, |_| {}).await;
    assert!(report.errors.is_empty() && !report.capabilities.nexthops, "{report:?}");
    let kernel = dataplane.netlink_mut();
    assert!(kernel.nexthops.is_empty());
    let gateway = "10.0.1.0".parse().unwrap();
    let plain = RouteTarget::Via { gateway, device: Some(VXLAN_DEVICE.into()) };
    assert!(kernel.routes.iter().any(|r| r.target == plain), "{:?}", kernel.routes);
    sync_blocks(&mut dataplane, &spec, |_| {}).await;
    assert_eq!((dataplane.last_sync().dumped, dataplane.last_sync().netlink_changes), (false, 0));
}

#[tokio::test]
async fn silent_changes_wait_for_the_full_check_and_lost_notifications_force_one() {
    let mut spec = policy_spec();
    let mut dataplane = KernelDataplane::new(host(&[]), FakeNft::default());
    sync_blocks(&mut dataplane, &spec, |_| {}).await;
    let route = dataplane.netlink_mut().routes.iter().find(|r| r.target == RouteTarget::Blackhole).cloned().unwrap();
    dataplane.netlink_mut().routes.remove(&route);
    sync_blocks(&mut dataplane, &spec, |_| {}).await;
    assert_eq!((dataplane.last_sync().dumped, dataplane.last_sync().netlink_changes), (false, 0), "not told");
    spec.agent.route_refresh_seconds = 0;
    sync_blocks(&mut dataplane, &spec, |_| {}).await;
    assert_eq!((dataplane.last_sync().dumped, dataplane.last_sync().netlink_changes), (true, 1), "the full check");
    assert!(dataplane.netlink_mut().routes.contains(&route));

    spec.agent.route_refresh_seconds = 90;
    dataplane.netlink_mut().routes.remove(&route);
    dataplane.netlink_mut().pending.push(Notice::Lost);
    sync_blocks(&mut dataplane, &spec, |_| {}).await;
    assert_eq!((dataplane.last_sync().dumped, dataplane.last_sync().netlink_changes), (true, 1), "lost: a dump");
}

/// A dual-stack host: `eth0` holds both underlay addresses.
fn dual_host() -> FakeNetlink {
    let mut netlink = host(&[]);
    netlink.addresses.insert(AddressSpec { device: "eth0".into(), address: "fd00:10::2/64".parse().unwrap() });
    netlink
}

async fn sync_dual(
    dataplane: &mut KernelDataplane<FakeNetlink, FakeNft>,
    spec: &NodeNetworkSpec,
    tunnel_address: Option<std::net::Ipv4Addr>,
) -> SyncReport {
    let plan = NodePlan::build(NODE, spec, Some(&policy_span()), &remote_blocks_dual());
    dataplane.sync(&NodeView { plan: &plan, endpoints: &[], tunnel_address, tunnel_address6: TUNNEL6 }).await
}

#[tokio::test]
async fn both_families_route_through_nexthops_of_their_family_and_a_second_sync_changes_nothing() {
    use gingham_crds::api::common::EncapsulationMode::CrossSubnet;
    for (name, spec, tunnel) in
        [("dual-stack", dual_stack(CrossSubnet), TUNNEL), ("IPv6-only", ipv6_only(CrossSubnet), None)]
    {
        let mut dataplane = KernelDataplane::new(dual_host(), FakeNft::default());
        let report = sync_dual(&mut dataplane, &spec, tunnel).await;
        assert!(report.errors.is_empty() && report.routes_programmed, "{name}: {:?}", report.errors);
        let kernel = dataplane.netlink_mut();
        let (b6, c6) = (preferred_id("node-b", IpFamily::IPv6), preferred_id("node-c", IpFamily::IPv6));
        let hops: Vec<String> =
            kernel.nexthops.iter().filter(|n| n.gateway.is_ipv6()).map(ToString::to_string).collect();
        let mut expected = vec![
            format!("id {b6} via fd00:10::3 dev eth0 onlink"),
            format!("id {c6} via fd00:100:0:2:: dev vxlan6.gingham onlink"),
        ];
        expected.sort_by_key(|h| h.split(' ').nth(1).map(|id| id.parse::<u32>().unwrap()));
        assert_eq!(hops, expected, "{name}");
        let remote6: Vec<String> = kernel
            .routes
            .iter()
            .filter(|r| r.destination.addr().is_ipv6() && r.target != RouteTarget::Blackhole)
            .filter(|r| r.destination.prefix_len() < 128)
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            remote6,
            [format!("fd00:100:0:1::/122 nhid {b6}"), format!("fd00:100:0:2::/122 nhid {c6}")],
            "{name}"
        );
        let vxlan6 = kernel.link(VXLAN6_DEVICE).unwrap();
        assert_eq!(vxlan6.mtu, 1430, "{name}: underlay 1500 less 70");
        assert_eq!(kernel.link(VXLAN_DEVICE).is_some(), tunnel.is_some(), "{name}");
        assert_eq!(kernel.sysctls.get("net/ipv6/conf/all/forwarding").map(String::as_str), Some("1"));
        let ipv4_routes = kernel.routes.iter().filter(|r| r.destination.addr().is_ipv4()).count();
        assert_eq!(ipv4_routes, if tunnel.is_some() { 3 } else { 0 }, "{name}");

        sync_dual(&mut dataplane, &spec, tunnel).await;
        assert_eq!((dataplane.last_sync().dumped, dataplane.last_sync().netlink_changes), (false, 0), "{name}");
    }
}

#[tokio::test]
async fn without_nexthop_objects_ipv6_remote_blocks_are_plain_routes() {
    let mut kernel = dual_host();
    kernel.capabilities.nexthops = false;
    let mut dataplane = KernelDataplane::new(kernel, FakeNft::default());
    let report = sync_dual(&mut dataplane, &dual_stack(Always), TUNNEL).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let kernel = dataplane.netlink_mut();
    assert!(kernel.nexthops.is_empty());
    let gateway = "fd00:100:0:1::".parse().unwrap();
    let plain = RouteTarget::Via { gateway, device: Some(VXLAN6_DEVICE.into()) };
    assert!(kernel.routes.iter().any(|r| r.target == plain), "{:?}", kernel.routes);
}

#[tokio::test]
async fn an_idle_sync_computes_nothing_until_an_input_or_the_kernel_changes() {
    let (spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut dataplane = KernelDataplane::new(host(&pods), FakeNft::default());
    let first = sync(&mut dataplane, &spec, &span, &pods).await;
    sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(!dataplane.last_sync().unchanged, "the notifications of the first sync's changes are read");
    let idle = sync(&mut dataplane, &spec, &span, &pods).await;
    assert!(dataplane.last_sync().unchanged);
    assert_eq!(idle, first, "the same outcome, vouched for again");

    let one = sync(&mut dataplane, &spec, &span, &pods[..1]).await;
    assert!(!dataplane.last_sync().unchanged && dataplane.last_sync().netlink_changes > 0, "an endpoint went");
    assert_eq!(one.programmed_endpoints, ["default/web".to_string()].into());
    sync(&mut dataplane, &spec, &span, &pods[..1]).await;
    sync(&mut dataplane, &spec, &span, &pods[..1]).await;
    assert!(dataplane.last_sync().unchanged);

    let mut moved = spec.clone();
    moved.tunnel.vxlan_mtu = Some(1400);
    sync(&mut dataplane, &moved, &span, &pods[..1]).await;
    assert_eq!(
        (dataplane.last_sync().unchanged, dataplane.last_sync().netlink_changes),
        (false, 1),
        "the plan changed"
    );

    let blackhole =
        dataplane.netlink_mut().routes.iter().find(|r| r.target == RouteTarget::Blackhole).cloned().unwrap();
    sync(&mut dataplane, &moved, &span, &pods[..1]).await;
    dataplane.netlink_mut().delete_route_by_hand(&blackhole);
    sync(&mut dataplane, &moved, &span, &pods[..1]).await;
    assert_eq!((dataplane.last_sync().unchanged, dataplane.last_sync().netlink_changes), (false, 1), "a notification");
    assert!(dataplane.netlink_mut().routes.contains(&blackhole));
}

#[tokio::test]
async fn no_sync_is_skipped_while_a_vxlan_device_drains_or_after_a_failure() {
    let (mut spec, span, pods) = (policy_spec(), policy_span(), pods());
    let mut netlink = host(&pods);
    netlink.fail_matching = Some(format!("route {}/32", pods[0].addresses()[0]));
    let mut dataplane = KernelDataplane::new(netlink, FakeNft::default());
    for _ in 0..3 {
        sync(&mut dataplane, &spec, &span, &pods).await;
        assert!(!dataplane.last_sync().unchanged, "a failed change is tried again at every sync");
    }
    dataplane.netlink_mut().fail_matching = None;
    sync(&mut dataplane, &spec, &span, &pods).await;
    spec.pools[0].vxlan_mode = Never;
    for _ in 0..3 {
        sync(&mut dataplane, &spec, &span, &pods).await;
        assert!(!dataplane.last_sync().unchanged, "the device drains for VXLAN_DRAIN");
    }
}
