//! Kernel tests (root): host endpoint policy on a node's `eth0` in a throwaway namespace. A
//! deny-all host policy leaves the failsafe port and the pods' forwarded traffic up; an
//! applyOnForward deny cuts the pods' traffic out of eth0; a preDNAT deny drops one port before
//! DNAT; an untracked allow lets a port through the deny-all, untracked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernel_support;

use gingham_crds::api::felix::ProtoPort;
use gingham_crds::api::hostpolicy::HostEndpointPolicy;
use gingham_crds::api::nodenetwork::{
    CompiledMatch, CompiledPolicy, CompiledRule, NodeNetworkSpec, PoolRouting, PortRange, TierPolicies,
};
use gingham_crds::api::policy::Action;
use gingham_crds::api::span::NodeSpan;
use gingham_crds::api::tier::TierDefaultAction;
use kernel_support::{Netns, Node, assert_clean, endpoint, link, plumb_pod, require_root};

const POD: [u8; 4] = [10, 81, 0, 5];
const NODE_IP: [u8; 4] = [192, 168, 81, 1];
const OUTSIDE_IP: [u8; 4] = [192, 168, 81, 2];

fn rule(action: Action, port: Option<(bool, u16)>) -> CompiledRule {
    let mut rule = CompiledRule { action, ..CompiledRule::default() };
    if let Some((destination, port)) = port {
        rule.protocol = Some(6);
        let side = CompiledMatch { ports: vec![PortRange { first: port, last: port }], ..Default::default() };
        if destination { rule.destination = side } else { rule.source = side }
    }
    rule
}

fn policy(
    name: &str,
    ingress: Vec<CompiledRule>,
    egress: Vec<CompiledRule>,
) -> gingham_crds::api::Shared<CompiledPolicy> {
    CompiledPolicy { name: name.into(), ingress, egress }.into()
}

fn tier(policy: &str, default_action: TierDefaultAction) -> Vec<TierPolicies> {
    vec![TierPolicies { tier: "default".into(), default_action, policies: vec![policy.into()] }]
}

/// A node with one pod (no pod policy) and a host endpoint on eth0 whose own traffic a deny-all
/// policy governs; SSH's port 22 is the inbound failsafe.
fn hep_node() -> Node {
    let spec = NodeNetworkSpec {
        address: Some("192.168.81.1/24".into()),
        blocks: vec!["10.81.0.0/26".into()],
        pools: vec![PoolRouting { name: "default".into(), cidr: "10.81.0.0/16".into(), ..Default::default() }],
        ..NodeNetworkSpec::default()
    };
    let mut spec = spec;
    spec.policy.failsafe_inbound = vec![ProtoPort { protocol: "TCP".into(), port: 22, net: None }];
    spec.policy.failsafe_outbound = Vec::new();
    let span = NodeSpan {
        policies: vec![
            policy("global/deny-all", vec![rule(Action::Deny, None)], vec![rule(Action::Deny, None)]),
            policy("global/forward-deny", vec![], vec![rule(Action::Deny, None)]),
            policy("global/pre-dnat", vec![rule(Action::Deny, Some((true, 9090)))], vec![]),
            policy(
                "global/untracked",
                vec![rule(Action::Allow, Some((true, 7070)))],
                vec![rule(Action::Allow, Some((false, 7070)))],
            ),
        ],
        endpoints: vec![gingham_crds::api::nodenetwork::EndpointPolicy {
            name: "default/pod".into(),
            ..Default::default()
        }],
        host_endpoints: vec![HostEndpointPolicy {
            name: "node-a-eth0".into(),
            interface_name: Some("eth0".into()),
            ingress: tier("global/deny-all", TierDefaultAction::Deny),
            egress: tier("global/deny-all", TierDefaultAction::Deny),
            ..HostEndpointPolicy::default()
        }],
        ..NodeSpan::default()
    };
    Node { name: "node-a".into(), spec, span: Some(span), blocks: vec![], endpoints: vec![endpoint("pod", POD)] }
}

fn host_mut(node: &mut Node) -> &mut HostEndpointPolicy {
    &mut node.span_mut().host_endpoints[0]
}

#[test]
fn host_endpoint_policy_on_every_hook() {
    require_root();
    let mut node = hep_node();
    let host = Netns::new("hep", "node");
    let outside = Netns::new("hep", "out");
    link(&host, "eth0", "192.168.81.1/24", &outside, "eth0", "192.168.81.2/24");
    // The pods' gateway 169.254.1.1 is answered by proxy ARP, which needs a route off the node.
    host.ip("route add default via 192.168.81.2");
    outside.ip("route add 10.81.0.0/16 via 192.168.81.1");
    let pod = Netns::new("hep", "pod");
    plumb_pod(&host, &pod, &node.endpoints[0]);
    for port in [22, 8080, 9090, 7070] {
        host.serve_peer_address(port);
    }
    pod.serve_peer_address(8080);
    outside.serve_peer_address(8080);
    let mut plain = hep_node();
    plain.span_mut().host_endpoints.clear();
    assert_clean(&host.sync(&plain).0);
    assert_eq!(outside.connect(POD.into(), 8080).as_deref(), Some("192.168.81.2"), "without host endpoints");
    let (report, _) = host.sync(&node);
    assert_clean(&report);

    let (node_ip, outside_ip) = (NODE_IP.into(), OUTSIDE_IP.into());
    // Deny-all on eth0: the failsafe stays open, the host's other ports close, forwarded pod
    // traffic is untouched (no applyOnForward policy).
    assert_eq!(outside.connect(node_ip, 22).as_deref(), Some("192.168.81.2"), "failsafe SSH");
    assert_eq!(outside.connect(node_ip, 8080), None, "deny-all to the host");
    assert_eq!(outside.connect(POD.into(), 8080).as_deref(), Some("192.168.81.2"), "forwarded in to the pod");
    assert_eq!(pod.connect(outside_ip, 8080).as_deref(), Some("10.81.0.5"), "forwarded out from the pod");

    // applyOnForward: a deny of forwarded traffic out of eth0 cuts the pod's traffic out, not in.
    host_mut(&mut node).forward_egress = tier("global/forward-deny", TierDefaultAction::Deny);
    assert_clean(&host.sync(&node).0);
    assert_eq!(pod.connect(outside_ip, 8080), None, "applyOnForward egress deny");
    assert_eq!(outside.connect(POD.into(), 8080).as_deref(), Some("192.168.81.2"), "ingress has no forward policy");
    host_mut(&mut node).forward_egress.clear();

    // preDNAT: a deny of port 9090 in through eth0, with a default-allow profile for the rest.
    host_mut(&mut node).default_allow = true;
    host_mut(&mut node).ingress.clear();
    host_mut(&mut node).pre_dnat_ingress = tier("global/pre-dnat", TierDefaultAction::Pass);
    assert_clean(&host.sync(&node).0);
    assert_eq!(outside.connect(node_ip, 9090), None, "preDNAT deny");
    assert_eq!(outside.connect(node_ip, 8080).as_deref(), Some("192.168.81.2"), "preDNAT decides nothing else");
    assert_eq!(outside.connect(POD.into(), 8080).as_deref(), Some("192.168.81.2"), "forwarded traffic passes it");

    // doNotTrack: an untracked allow of port 7070 both ways gets through the deny-all, untracked.
    let restore = hep_node();
    *host_mut(&mut node) = restore.span.unwrap().host_endpoints[0].clone();
    host_mut(&mut node).untracked_ingress = tier("global/untracked", TierDefaultAction::Pass);
    host_mut(&mut node).untracked_egress = tier("global/untracked", TierDefaultAction::Pass);
    assert_clean(&host.sync(&node).0);
    assert_eq!(outside.connect(node_ip, 8080), None, "still deny-all");
    assert_eq!(outside.connect(node_ip, 7070).as_deref(), Some("192.168.81.2"), "untracked allow");
    let (_, table) = host.sh("nft list chain inet gingham hep_raw_prerouting");
    assert!(table.contains("notrack"), "{table}");
    let (ok, conntrack) = host.sh("cat /proc/net/nf_conntrack 2>/dev/null || conntrack -L 2>/dev/null");
    if ok && !conntrack.is_empty() {
        assert!(!conntrack.contains("dport=7070"), "port 7070 is not tracked: {conntrack}");
    }
}
