//! A node's host endpoints: the HostEndpoint objects naming the node, and its automatic one
//! when the node's merged FelixConfiguration sets `hostEndpointAutoCreate: Enabled` (Calico's
//! kube-controllers `autoCreate`: `<node>-auto-hep`, all interfaces, the node's labels and
//! addresses, the profile `projectcalico-default-allow`). An object of the automatic one's name
//! replaces it.

use gingham_crds::api::hostendpoint::{ALL_INTERFACES, DEFAULT_ALLOW_PROFILE, auto_host_endpoint_name};
use gingham_crds::api::{FelixConfigurationSpec, HostEndpoint, IpFamily};
use gingham_crds::validate::validate_host_endpoint;

use super::ObjectProblem;
use super::compile::index::HostEndpointFacts;
use super::facts::NodeFacts;

/// The value of `hostEndpointAutoCreate` that turns automatic host endpoints on.
pub const AUTO_CREATE_ENABLED: &str = "Enabled";

/// Whether a node's merged FelixConfiguration asks for its automatic host endpoint.
pub fn auto_create(felix: &FelixConfigurationSpec) -> bool {
    felix.host_endpoint_auto_create.as_deref() == Some(AUTO_CREATE_ENABLED)
}

/// The node's automatic host endpoint.
pub fn auto_host_endpoint(node: &NodeFacts) -> HostEndpointFacts {
    HostEndpointFacts {
        name: auto_host_endpoint_name(&node.name),
        interface_name: Some(ALL_INTERFACES.to_string()),
        expected_ips: [IpFamily::IPv4, IpFamily::IPv6].into_iter().filter_map(|family| node.ip_of(family)).collect(),
        labels: node.labels.clone(),
        default_allow: true,
    }
}

/// A HostEndpoint object as the index holds it, with its problems: an object that does not
/// validate is not used (its node's interfaces stay unpoliced by it); a profile other than
/// `projectcalico-default-allow` is reported and ignored.
pub fn host_endpoint_facts(object: &HostEndpoint) -> (Option<HostEndpointFacts>, Vec<ObjectProblem>) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let problem = |reason: &str, message: String| ObjectProblem {
        kind: "HostEndpoint".into(),
        namespace: None,
        name: name.clone(),
        reason: reason.into(),
        message,
    };
    if let Err(errors) = validate_host_endpoint(object) {
        let problems = errors.iter().map(|e| problem("InvalidHostEndpoint", format!("{e}; not applied"))).collect();
        return (None, problems);
    }
    let spec = &object.spec;
    let problems = spec
        .profiles
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, profile)| *profile != DEFAULT_ALLOW_PROFILE)
        .map(|(index, profile)| {
            problem(
                "UnsupportedProfile",
                format!(
                    "spec.profiles[{index}]: gingham knows only the profile {DEFAULT_ALLOW_PROFILE}; {profile:?} is ignored (use a GlobalNetworkPolicy selecting the endpoint's labels)"
                ),
            )
        })
        .collect();
    let facts = HostEndpointFacts {
        name: name.clone(),
        interface_name: spec.interface_name.clone().filter(|i| !i.is_empty()),
        expected_ips: spec.expected_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect(),
        labels: object.metadata.labels.clone().unwrap_or_default(),
        default_allow: spec.default_allow(),
    };
    (Some(facts), problems)
}

/// A node's host endpoints: the objects' facts for the node, plus its automatic one when asked
/// for and no object takes its name.
pub fn node_host_endpoints(
    node: &NodeFacts,
    objects: &[(String, HostEndpointFacts)],
    auto: bool,
) -> Vec<HostEndpointFacts> {
    let mut endpoints: Vec<HostEndpointFacts> =
        objects.iter().filter(|(owner, _)| *owner == node.name).map(|(_, facts)| facts.clone()).collect();
    let automatic = auto_host_endpoint(node);
    if auto && !endpoints.iter().any(|e| e.name == automatic.name) {
        endpoints.push(automatic);
    }
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    endpoints
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;

    use gingham_crds::api::HostEndpointSpec;

    use super::*;

    fn node() -> NodeFacts {
        NodeFacts {
            name: "node-a".into(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            address: Some("10.0.0.1/24".parse().unwrap()),
            address6: None,
            router_id: None,
            as_number: None,
            rr_cluster_id: None,
        }
    }

    #[test]
    fn the_automatic_endpoint_is_all_interfaces_with_the_nodes_labels_and_default_allow() {
        let endpoints = node_host_endpoints(&node(), &[], true);
        assert_eq!(
            endpoints,
            [HostEndpointFacts {
                name: "node-a-auto-hep".into(),
                interface_name: Some("*".into()),
                expected_ips: vec!["10.0.0.1".parse().unwrap()],
                labels: node().labels,
                default_allow: true,
            }]
        );
        assert!(node_host_endpoints(&node(), &[], false).is_empty());
        let felix = FelixConfigurationSpec { host_endpoint_auto_create: Some("Enabled".into()), ..Default::default() };
        assert!(auto_create(&felix) && !auto_create(&FelixConfigurationSpec::default()));
    }

    #[test]
    fn objects_go_to_their_node_and_one_named_like_the_automatic_endpoint_replaces_it() {
        let mine = HostEndpointFacts { name: "node-a-auto-hep".into(), ..Default::default() };
        let other = HostEndpointFacts { name: "b-eth0".into(), ..Default::default() };
        let objects = [("node-a".to_string(), mine.clone()), ("node-b".to_string(), other)];
        assert_eq!(node_host_endpoints(&node(), &objects, true), [mine]);
    }

    #[test]
    fn an_invalid_object_is_not_used_and_unknown_profiles_are_reported() {
        let bad = HostEndpoint::new("bad", HostEndpointSpec { node: "node-a".into(), ..Default::default() });
        let (facts, problems) = host_endpoint_facts(&bad);
        assert!(facts.is_none());
        assert!(problems[0].message.contains("at least one of interfaceName and expectedIPs"), "{problems:?}");
        let spec = HostEndpointSpec {
            node: "node-a".into(),
            interface_name: Some("eth0".into()),
            profiles: Some(vec!["kns.default".into(), DEFAULT_ALLOW_PROFILE.into()]),
            ..Default::default()
        };
        let (facts, problems) = host_endpoint_facts(&HostEndpoint::new("eth0", spec));
        let facts = facts.unwrap();
        assert!(facts.default_allow && facts.interface_name.as_deref() == Some("eth0"));
        assert_eq!(problems.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(), ["UnsupportedProfile"]);
    }
}
