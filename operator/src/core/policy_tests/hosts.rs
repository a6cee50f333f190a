//! Host endpoints through compile: which GlobalNetworkPolicies land in which hook list of a host
//! endpoint, in which tier and with which default action; automatic host endpoints; and a
//! running engine taking a HostEndpoint in and out, as a full compute does.

use gingham_crds::api::hostpolicy::HostEndpointPolicy;
use gingham_crds::api::nodenetwork::TierPolicies;
use gingham_crds::api::tier::TierDefaultAction;
use gingham_crds::api::{FelixConfiguration, GlobalNetworkPolicy, HostEndpoint, Tier};
use serde_json::{Value, json};

use super::world::world;
use crate::core::engine::{
    Engine, Event,
    store::{Kind, Object},
};
use crate::core::testkit::meta;
use crate::core::{ClusterSnapshot, OperatorSettings, compute};

fn gnp(name: &str, spec: Value) -> GlobalNetworkPolicy {
    GlobalNetworkPolicy { metadata: meta(None, name), spec: serde_json::from_value(spec).unwrap() }
}

fn gateway() -> HostEndpoint {
    let mut metadata = meta(None, "a-eth0");
    metadata.labels = Some([("role".to_string(), "gateway".to_string())].into());
    let spec = json!({"node": "a", "interfaceName": "eth0", "expectedIPs": ["192.168.0.1"]});
    HostEndpoint { metadata, spec: serde_json::from_value(spec).unwrap() }
}

fn snapshot() -> ClusterSnapshot {
    let mut snapshot = world();
    snapshot.tiers =
        vec![Tier { metadata: meta(None, "security"), spec: serde_json::from_value(json!({"order": 100})).unwrap() }];
    snapshot.global_network_policies = vec![
        gnp(
            "security.deny-ssh",
            json!({"tier": "security", "selector": "role == 'gateway'", "ingress": [{"action": "Deny"}]}),
        ),
        gnp("allow-web", json!({"selector": "has(role)", "applyOnForward": true, "ingress": [{"action": "Allow"}]})),
        gnp(
            "pre",
            json!({"selector": "role == 'gateway'", "preDNAT": true, "applyOnForward": true, "ingress": [{"action": "Deny"}]}),
        ),
        gnp(
            "untracked",
            json!({"selector": "all()", "doNotTrack": true, "applyOnForward": true,
            "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}),
        ),
        gnp(
            "prod-only",
            json!({"namespaceSelector": "env == 'prod'", "selector": "all()", "egress": [{"action": "Allow"}]}),
        ),
        gnp("web-pods", json!({"selector": "app == 'web'", "ingress": [{"action": "Allow"}]})),
    ];
    snapshot.host_endpoints = vec![gateway()];
    snapshot
}

fn tier(name: &str, default_action: TierDefaultAction, policies: &[&str]) -> TierPolicies {
    TierPolicies { tier: name.into(), default_action, policies: policies.iter().map(|p| p.to_string()).collect() }
}

#[test]
fn each_policy_lands_in_its_hook_list_with_its_tier() {
    let desired = compute(&snapshot(), &OperatorSettings::default());
    let hosts = &desired.spans["a"].host_endpoints;
    let deny = TierDefaultAction::Deny;
    let pass = TierDefaultAction::Pass;
    let want = HostEndpointPolicy {
        name: "a-eth0".into(),
        interface_name: Some("eth0".into()),
        expected_ips: vec!["192.168.0.1".into()],
        default_allow: false,
        ingress: vec![
            tier("security", deny, &["global/security.deny-ssh"]),
            tier("default", deny, &["global/allow-web"]),
        ],
        egress: vec![],
        pre_dnat_ingress: vec![tier("default", pass, &["global/pre"])],
        untracked_ingress: vec![tier("default", pass, &["global/untracked"])],
        untracked_egress: vec![tier("default", pass, &["global/untracked"])],
        forward_ingress: vec![tier("default", deny, &["global/allow-web"])],
        forward_egress: vec![],
    };
    assert_eq!(hosts, &vec![want]);
    assert!(desired.spans["b"].host_endpoints.is_empty(), "node b has no host endpoint");
    // The span carries each policy once, shared; preDNAT and doNotTrack policies apply to no pod.
    let names: Vec<&str> = desired.spans["a"].policies.iter().map(|p| p.name.as_str()).collect();
    for policy in ["global/security.deny-ssh", "global/allow-web", "global/pre", "global/untracked"] {
        assert_eq!(names.iter().filter(|n| **n == policy).count(), 1, "{policy} in {names:?}");
    }
    for span in desired.spans.values() {
        for endpoint in &span.endpoints {
            let lists = endpoint.ingress.iter().chain(&endpoint.egress).flat_map(|t| &t.policies);
            assert!(lists.clone().all(|p| p != "global/pre" && p != "global/untracked"), "{}", endpoint.name);
        }
    }
}

#[test]
fn automatic_host_endpoints_cover_every_interface_with_the_nodes_labels() {
    let mut snapshot = snapshot();
    snapshot.host_endpoints.clear();
    snapshot.felix_configurations = vec![FelixConfiguration {
        metadata: meta(None, "default"),
        spec: serde_json::from_value(json!({"hostEndpointAutoCreate": "Enabled"})).unwrap(),
    }];
    let desired = compute(&snapshot, &OperatorSettings::default());
    for node in ["a", "b"] {
        let hosts = &desired.spans[node].host_endpoints;
        assert_eq!(hosts.len(), 1, "{node}");
        let auto = &hosts[0];
        assert_eq!(
            (auto.name.as_str(), auto.interface_name.as_deref(), auto.default_allow),
            (&*format!("{node}-auto-hep"), Some("*"), true)
        );
        assert_eq!(auto.expected_ips.len(), 2, "both of the node's addresses");
        // The node has no `role` label: only the all() untracked policy selects it.
        assert!(auto.ingress.is_empty() && auto.pre_dnat_ingress.is_empty(), "{auto:?}");
        assert_eq!(auto.untracked_ingress, vec![tier("default", TierDefaultAction::Pass, &["global/untracked"])]);
    }
}

#[test]
fn a_running_engine_takes_host_endpoints_in_and_out_as_a_full_compute_does() {
    let mut without = snapshot();
    without.host_endpoints.clear();
    let mut engine = Engine::from_snapshot(&without, OperatorSettings::default());
    assert!(engine.desired().spans["a"].host_endpoints.is_empty());
    engine.take_changes();
    engine.apply(Event::Upsert(Object::HostEndpoint(gateway())));
    assert!(engine.take_changes().spans.contains("a"), "node a's span changed");
    assert_eq!(engine.desired().spans, compute(&snapshot(), &OperatorSettings::default()).spans);
    // A policy that starts selecting the endpoint reaches it.
    let mut relabelled =
        gnp("web-pods", json!({"selector": "app == 'web' || role == 'gateway'", "ingress": [{"action": "Allow"}]}));
    engine.apply(Event::Upsert(Object::GlobalNetworkPolicy(relabelled.clone())));
    let ingress = &engine.desired().spans["a"].host_endpoints[0].ingress;
    assert!(ingress[1].policies.contains(&"global/web-pods".to_string()), "{ingress:?}");
    relabelled.spec.selector = Some("app == 'web'".into());
    engine.apply(Event::Upsert(Object::GlobalNetworkPolicy(relabelled)));
    engine.apply(Event::Delete(Kind::HostEndpoint, (String::new(), "a-eth0".into())));
    assert_eq!(engine.desired().spans, compute(&without, &OperatorSettings::default()).spans);
}
