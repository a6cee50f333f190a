//! FelixConfiguration: `default` merged with `node.<name>`, and where each field goes.
//!
//! | field | goes to | why |
//! |---|---|---|
//! | `vxlanVNI`, `vxlanPort`, `vxlanMTU`, `vxlanMTUV6`, `ipipMTU` | NodeNetwork `spec.tunnel` | per node, applied live by the agent |
//! | `routeRefreshInterval`, `nftablesRefreshInterval` | NodeNetwork `spec.agent` | per node, applied live |
//! | `logSeverityScreen` | NodeNetwork `spec.agent.logLevel` (per node) and the DaemonSet's `LOG_LEVEL` (from `default`, the level the agent starts with) | a `node.<name>` override can only reach one node through its NodeNetwork |
//! | `defaultEndpointToHostAction`, `failsafeInboundHostPorts`, `failsafeOutboundHostPorts` | NodeNetwork `spec.policy` | part of the node's ruleset |
//! | `healthEnabled`, `healthPort`, `prometheusMetricsEnabled`, `prometheusMetricsPort` | the DaemonSet (from `default`) | they change the pod: ports and probes |
//!
//! Everything else is accepted for Calico compatibility and not acted on.

use gingham_crds::api::felix::{
    DEFAULT_VXLAN_PORT, DEFAULT_VXLAN_VNI, default_failsafe_inbound, default_failsafe_outbound,
};
use gingham_crds::api::nodenetwork::{AgentSettings, EndpointToHostAction, NodePolicySpec, TunnelSpec};
use gingham_crds::api::{FelixConfiguration, FelixConfigurationSpec};
use gingham_crds::validate::parse_duration_seconds;

/// The name of the FelixConfiguration that applies to every node.
pub const DEFAULT_NAME: &str = "default";

/// The `default` FelixConfiguration, if any.
pub fn default_config(configs: &[FelixConfiguration]) -> Option<&FelixConfiguration> {
    configs.iter().find(|c| c.metadata.name.as_deref() == Some(DEFAULT_NAME))
}

/// The configuration in force on one node: `node.<name>` over `default`.
pub fn merged_for(configs: &[FelixConfiguration], node: &str) -> FelixConfigurationSpec {
    let base = default_config(configs).map(|c| c.spec.clone()).unwrap_or_default();
    let override_name = format!("node.{node}");
    match configs.iter().find(|c| c.metadata.name.as_deref() == Some(override_name.as_str())) {
        Some(config) => config.spec.merged_over(&base),
        None => base,
    }
}

fn seconds(value: Option<&str>, default: u32) -> u32 {
    value
        .and_then(|text| parse_duration_seconds(text).ok())
        .map_or(default, |s| s.floor().clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// The agent settings a node's NodeNetwork carries. Unparsable durations fall back to the
/// defaults (the configuration's own validation reports them).
pub fn agent_settings(spec: &FelixConfigurationSpec) -> AgentSettings {
    let defaults = AgentSettings::default();
    AgentSettings {
        route_refresh_seconds: seconds(spec.route_refresh_interval.as_deref(), defaults.route_refresh_seconds),
        nftables_refresh_seconds: seconds(spec.nftables_refresh_interval.as_deref(), defaults.nftables_refresh_seconds),
        log_level: spec.log_severity_screen.clone().filter(|l| !l.is_empty()).unwrap_or(defaults.log_level),
    }
}

/// The tunnel settings (without the node's tunnel blocks and MAC, which come from its blocks).
/// An MTU of 0 means "detect", as in Calico.
pub fn tunnel_settings(spec: &FelixConfigurationSpec) -> TunnelSpec {
    TunnelSpec {
        vxlan_vni: spec.vxlan_vni.unwrap_or(DEFAULT_VXLAN_VNI),
        vxlan_port: spec.vxlan_port.unwrap_or(DEFAULT_VXLAN_PORT),
        blocks: Vec::new(),
        blocks6: Vec::new(),
        vtep_mac: None,
        vtep_mac_v6: None,
        vxlan_mtu: spec.vxlan_mtu.filter(|m| *m > 0),
        vxlan_mtu_v6: spec.vxlan_mtu_v6.filter(|m| *m > 0),
        ipip_mtu: spec.ipip_mtu.filter(|m| *m > 0),
    }
}

/// The node's own policy settings: endpoint-to-host action and failsafe ports.
pub fn policy_settings(spec: &FelixConfigurationSpec) -> NodePolicySpec {
    let action = match spec.default_endpoint_to_host_action.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("accept") => EndpointToHostAction::Accept,
        Some("return") => EndpointToHostAction::Return,
        _ => EndpointToHostAction::Drop,
    };
    NodePolicySpec {
        default_endpoint_to_host_action: action,
        failsafe_inbound: spec.failsafe_inbound_host_ports.clone().unwrap_or_else(default_failsafe_inbound),
        failsafe_outbound: spec.failsafe_outbound_host_ports.clone().unwrap_or_else(default_failsafe_outbound),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use gingham_crds::api::felix::ProtoPort;

    use super::*;
    use crate::core::testkit::meta;

    fn config(name: &str, spec: FelixConfigurationSpec) -> FelixConfiguration {
        FelixConfiguration { metadata: meta(None, name), spec }
    }

    #[test]
    fn node_overrides_win_over_default_field_by_field() {
        let configs = [
            config(
                "default",
                FelixConfigurationSpec {
                    vxlan_vni: Some(5000),
                    route_refresh_interval: Some("1m".into()),
                    log_severity_screen: Some("Debug".into()),
                    ..FelixConfigurationSpec::default()
                },
            ),
            config("node.a", FelixConfigurationSpec { vxlan_vni: Some(6000), ..FelixConfigurationSpec::default() }),
        ];
        let a = merged_for(&configs, "a");
        let b = merged_for(&configs, "b");
        assert_eq!((tunnel_settings(&a).vxlan_vni, tunnel_settings(&b).vxlan_vni), (6000, 5000));
        assert_eq!(agent_settings(&a).route_refresh_seconds, 60, "inherited from default");
        assert_eq!(agent_settings(&a).log_level, "Debug");
    }

    #[test]
    fn unset_fields_take_gingham_defaults() {
        let spec = FelixConfigurationSpec::default();
        assert_eq!(agent_settings(&spec), AgentSettings::default());
        let tunnel = tunnel_settings(&spec);
        assert_eq!((tunnel.vxlan_vni, tunnel.vxlan_port, tunnel.vxlan_mtu), (4096, 4789, None));
        let header = policy_settings(&spec);
        assert_eq!(header.default_endpoint_to_host_action, EndpointToHostAction::Drop);
        assert_eq!(header.failsafe_inbound, default_failsafe_inbound());
        assert_eq!(header.failsafe_outbound, default_failsafe_outbound());
    }

    #[test]
    fn policy_settings_follows_the_configuration() {
        let ports = vec![ProtoPort { protocol: "TCP".into(), port: 22, net: None }];
        let spec = FelixConfigurationSpec {
            default_endpoint_to_host_action: Some("ACCEPT".into()),
            failsafe_inbound_host_ports: Some(ports.clone()),
            vxlan_mtu: Some(0),
            vxlan_mtu_v6: Some(1430),
            ipip_mtu: Some(1480),
            ..FelixConfigurationSpec::default()
        };
        let header = policy_settings(&spec);
        assert_eq!(header.default_endpoint_to_host_action, EndpointToHostAction::Accept);
        assert_eq!(header.failsafe_inbound, ports);
        assert_eq!((tunnel_settings(&spec).vxlan_mtu, tunnel_settings(&spec).ipip_mtu), (None, Some(1480)));
        assert_eq!(tunnel_settings(&spec).vxlan_mtu_v6, Some(1430));
    }
}
