//! HostEndpoint validation.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{FieldError, Problems};
use crate::api::HostEndpoint;
use crate::api::hostendpoint::{ALL_INTERFACES, DEFAULT_ALLOW_PROFILE};

/// The longest interface name Linux takes (`IFNAMSIZ` less the terminating NUL).
const MAX_INTERFACE_NAME: usize = 15;

/// Checks a HostEndpoint: a node; at least one of `interfaceName` and `expectedIPs`; an
/// interface name Linux can take, or exactly `*` (no other wildcard); addresses that are
/// addresses; named ports with a name, TCP, UDP or SCTP and a port from 1; profiles that are names.
pub fn validate_host_endpoint(endpoint: &HostEndpoint) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let spec = &endpoint.spec;
    problems.check(
        spec.node.trim().is_empty(),
        "spec.node",
        "node must name the node the interface belongs to",
        "set spec.node to the node's name",
    );
    let interface = spec.interface_name.as_deref().filter(|name| !name.is_empty());
    let expected = spec.expected_ips.as_deref().unwrap_or_default();
    problems.check(
        interface.is_none() && expected.is_empty(),
        "spec.interfaceName",
        "at least one of interfaceName and expectedIPs must be set",
        "set interfaceName to an interface (or * for all of them), or list the interface's expectedIPs",
    );
    if let Some(name) = interface {
        check_interface(&mut problems, name);
    }
    for (index, address) in expected.iter().enumerate() {
        problems.check(
            address.parse::<IpAddr>().is_err(),
            &format!("spec.expectedIPs[{index}]"),
            &format!("{address:?} is not an IP address"),
            "write an address such as 192.168.0.1 or fd00::1, without a prefix length",
        );
    }
    for (index, profile) in spec.profiles.iter().flatten().enumerate() {
        problems.check(
            profile.trim().is_empty(),
            &format!("spec.profiles[{index}]"),
            "a profile name is empty",
            &format!("remove it, or name a profile such as {DEFAULT_ALLOW_PROFILE}"),
        );
    }
    let mut names = BTreeSet::new();
    for (index, port) in spec.ports.iter().flatten().enumerate() {
        let path = format!("spec.ports[{index}]");
        problems.check(
            port.name.is_empty() || !names.insert(port.name.as_str()),
            &format!("{path}.name"),
            &format!("port name {:?} is empty or used twice", port.name),
            "give every port its own name",
        );
        problems.check(
            !port.protocol.supports_ports(),
            &format!("{path}.protocol"),
            "a named port's protocol must be TCP, UDP or SCTP",
            "set protocol to TCP, UDP or SCTP",
        );
        problems.check(port.port == 0, &format!("{path}.port"), "port 0 is not a port", "use a port from 1 to 65535");
    }
    problems.into_result()
}

/// An interface name: `*`, or a name Linux takes (1-15 bytes, no `/`, whitespace or `*`).
fn check_interface(problems: &mut Problems, name: &str) {
    if name == ALL_INTERFACES {
        return;
    }
    let hint = "write an interface name such as eth0, or * alone for all of the node's interfaces";
    problems.check(
        name.contains('*'),
        "spec.interfaceName",
        &format!("interfaceName {name:?}: * stands alone for all interfaces; prefixes such as eth* are not supported"),
        hint,
    );
    problems.check(
        name.len() > MAX_INTERFACE_NAME || name.contains(['/', ':']) || name.contains(char::is_whitespace),
        "spec.interfaceName",
        &format!("interfaceName {name:?} is not an interface name (at most 15 characters, no '/', ':' or spaces)"),
        hint,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api::common::Protocol;
    use crate::api::hostendpoint::{EndpointPort, HostEndpointSpec};

    fn endpoint(spec: HostEndpointSpec) -> HostEndpoint {
        HostEndpoint::new("hep", spec)
    }

    fn paths(spec: HostEndpointSpec) -> Vec<String> {
        validate_host_endpoint(&endpoint(spec)).err().unwrap_or_default().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn each_rule_names_its_field() {
        let base = || HostEndpointSpec { node: "node-a".into(), ..HostEndpointSpec::default() };
        let cases: Vec<(HostEndpointSpec, Vec<&str>)> = vec![
            (HostEndpointSpec { interface_name: Some("eth0".into()), ..base() }, vec![]),
            (HostEndpointSpec { interface_name: Some("*".into()), ..base() }, vec![]),
            (HostEndpointSpec { expected_ips: Some(vec!["10.0.0.1".into(), "fd00::1".into()]), ..base() }, vec![]),
            (base(), vec!["spec.interfaceName"]),
            (HostEndpointSpec { interface_name: Some(String::new()), ..base() }, vec!["spec.interfaceName"]),
            (HostEndpointSpec { interface_name: Some("eth*".into()), ..base() }, vec!["spec.interfaceName"]),
            (
                HostEndpointSpec { interface_name: Some("a-very-long-interface".into()), ..base() },
                vec!["spec.interfaceName"],
            ),
            (
                HostEndpointSpec { node: String::new(), interface_name: Some("eth0".into()), ..base() },
                vec!["spec.node"],
            ),
            (
                HostEndpointSpec { expected_ips: Some(vec!["10.0.0.0/24".into()]), ..base() },
                vec!["spec.expectedIPs[0]"],
            ),
            (
                HostEndpointSpec {
                    interface_name: Some("eth0".into()),
                    ports: Some(vec![
                        EndpointPort { name: "web".into(), protocol: Protocol::named("TCP"), port: 80 },
                        EndpointPort { name: "web".into(), protocol: Protocol::named("ICMP"), port: 0 },
                    ]),
                    profiles: Some(vec![String::new()]),
                    ..base()
                },
                vec!["spec.profiles[0]", "spec.ports[1].name", "spec.ports[1].protocol", "spec.ports[1].port"],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(paths(spec.clone()), want, "{spec:?}");
        }
    }
}
