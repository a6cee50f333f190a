//! Kernel tests (root): pod plumbing, the route protocol tag, idempotence across restarts and
//! drift repair, in throwaway network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use gingham_crds::api::nodenetwork::NodeNetworkSpec;
use gingham_node_agent::dataplane::kernel::NftOutcome;
use kernel_support::{Netns, Node, assert_clean, endpoint, link, plumb_pod, require_root};

fn node(endpoints: Vec<gingham_node_agent::endpoint::LocalEndpoint>) -> Node {
    let spec = NodeNetworkSpec {
        address: Some("192.168.60.1/24".into()),
        blocks: vec!["10.60.0.0/26".into()],
        ..NodeNetworkSpec::default()
    };
    Node { name: "node-a".into(), spec, span: None, blocks: vec![], endpoints }.allow_all()
}

#[test]
fn pod_routes_carry_the_protocol_tag_and_a_restart_changes_nothing() {
    require_root();
    let host = Netns::new("routes", "node");
    let pod = Netns::new("routes", "pod");
    let peer = Netns::new("routes", "peer");
    link(&host, "eth0", "192.168.60.1/24", &peer, "eth0", "192.168.60.2/24");
    let web = endpoint("web", [10, 60, 0, 5]);
    plumb_pod(&host, &pod, &web);
    host.ip("route add default via 192.168.60.2");
    host.ip("route add 10.60.0.64/26 via 192.168.60.2 proto static");
    let node = node(vec![web.clone()]);

    let (report, stats) = host.sync(&node);
    assert_clean(&report);
    assert_eq!(report.programmed_endpoints, [web.key()].into());
    assert!(stats.netlink_changes > 0);
    assert_eq!(stats.nft, NftOutcome::Rewrite);

    let ours = host.ip("route show proto 249");
    assert!(ours.contains(&format!("10.60.0.5 dev {} scope link", web.interface)), "{ours}");
    assert!(ours.contains("blackhole 10.60.0.0/26"), "{ours}");
    assert!(host.ip("route show proto static").contains("10.60.0.64/26"), "foreign routes stay");
    assert!(host.ip(&format!("link show {}", web.interface)).contains("state UP"));
    let (_, sysctls) = host.sh(&format!(
        "cat /proc/sys/net/ipv4/conf/{0}/proxy_arp /proc/sys/net/ipv4/neigh/{0}/proxy_delay /proc/sys/net/ipv4/ip_forward",
        web.interface
    ));
    assert_eq!(sysctls.split_whitespace().collect::<Vec<_>>(), vec!["1", "0", "1"]);
    peer.ip("route add 10.60.0.0/16 via 192.168.60.1");
    let (reachable, output) = pod.sh("ping -c1 -W2 192.168.60.2");
    assert!(reachable, "the pod reaches beyond its node through proxy ARP and forwarding: {output}");
    let (reachable, _) = pod.sh("ping -c1 -W1 192.168.60.1");
    assert!(!reachable, "defaultEndpointToHostAction Drop keeps the pod off its node");

    let (again, stats) = host.sync(&node);
    assert_eq!(again, report, "a restarted agent reports the same");
    assert_eq!(stats.netlink_changes, 0, "a restart with everything right changes nothing");
    assert_eq!(stats.nft, NftOutcome::UpToDate, "and does not rewrite the table");
}

#[test]
fn drift_in_routes_and_set_elements_is_repaired() {
    require_root();
    let host = Netns::new("drift", "node");
    let pod = Netns::new("drift", "pod");
    let peer = Netns::new("drift", "peer");
    link(&host, "eth0", "192.168.61.1/24", &peer, "eth0", "192.168.61.2/24");
    let web = endpoint("web", [10, 60, 0, 5]);
    plumb_pod(&host, &pod, &web);
    let mut node = node(vec![web.clone()]);
    node.spec.address = Some("192.168.61.1/24".into());
    node.spec.pools = vec![gingham_crds::api::nodenetwork::PoolRouting {
        name: "default".into(),
        cidr: "10.60.0.0/16".into(),
        nat_outgoing: true,
        ..Default::default()
    }];
    assert_clean(&host.sync(&node).0);

    host.ip("route del 10.60.0.0/26 proto 249");
    host.sh("nft delete element inet gingham nat_pools { 10.60.0.0/16 }");
    host.ip(&format!("link set {} down", web.interface));
    assert!(!host.ip("route show proto 249").contains("blackhole"));

    let (report, stats) = host.sync(&node);
    assert_clean(&report);
    assert!(host.ip("route show proto 249").contains("blackhole 10.60.0.0/26"));
    let (_, set) = host.sh("nft list set inet gingham nat_pools");
    assert!(set.contains("10.60.0.0/16"), "{set}");
    assert!(host.ip(&format!("link show {}", web.interface)).contains("state UP"));
    assert_eq!(stats.nft, NftOutcome::Elements, "element drift is repaired without a rewrite");
    assert_eq!(stats.netlink_changes, 3, "the route, the link and the pod route the link took down");
}

#[test]
fn a_rule_edited_in_place_is_rewritten_by_the_running_agent() {
    require_root();
    let host = Netns::new("edited", "node");
    let pod = Netns::new("edited", "pod");
    let peer = Netns::new("edited", "peer");
    link(&host, "eth0", "192.168.62.1/24", &peer, "eth0", "192.168.62.2/24");
    let web = endpoint("web", [10, 60, 0, 5]);
    plumb_pod(&host, &pod, &web);
    let mut node = node(vec![web]);
    node.spec.address = Some("192.168.62.1/24".into());
    // List the table on every sync (the default trusts gingham's own changes for 90 s).
    node.spec.agent.nftables_refresh_seconds = 0;
    let outcomes = host.run(move || async move {
        use gingham_node_agent::dataplane::{Dataplane, KernelDataplane};
        let mut dataplane = KernelDataplane::connect().unwrap();
        let mut outcomes = Vec::new();
        for edit in [None, Some("accept"), None] {
            if let Some(verdict) = edit {
                let script = format!(
                    "nft replace rule inet gingham endpoint_to_host handle \
                     $(nft -a list chain inet gingham endpoint_to_host | awk '/drop # handle/ {{print $NF}}') {verdict}"
                );
                let status = std::process::Command::new("sh").args(["-c", &script]).status().unwrap();
                assert!(status.success(), "{script}");
            }
            assert_clean(&dataplane.sync(&node.view(&node.plan())).await);
            outcomes.push(dataplane.last_sync().nft);
        }
        outcomes
    });
    assert_eq!(outcomes, vec![NftOutcome::Rewrite, NftOutcome::Rewrite, NftOutcome::UpToDate]);
    let (_, chain) = host.sh("nft list chain inet gingham endpoint_to_host");
    let rules: Vec<&str> = chain.lines().map(str::trim).collect();
    assert!(rules.contains(&"drop") && !rules.contains(&"accept"), "the edited rule is a drop again: {chain}");
}
