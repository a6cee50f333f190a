//! FelixConfiguration rules.

use std::net::Ipv4Addr;

use super::{FieldError, Problems, parse_duration_seconds};
use crate::api::felix::FelixConfiguration;

const LOG_LEVELS: [&str; 7] = ["", "trace", "debug", "info", "warning", "error", "fatal"];

/// Checks a FelixConfiguration (its name matters: `default` and `node.*` may not set nodeSelector).
pub fn validate_felix_configuration(config: &FelixConfiguration) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();
    let spec = &config.spec;
    let name = config.metadata.name.as_deref().unwrap_or_default();
    problems.check(
        spec.node_selector.is_some() && (name == "default" || name.starts_with("node.")),
        "spec.nodeSelector",
        "nodeSelector must not be set on the 'default' or a 'node.<name>' FelixConfiguration",
        "remove nodeSelector",
    );
    problems.selector("spec.nodeSelector", spec.node_selector.as_deref());
    for (field, level) in
        [("logSeverityScreen", &spec.log_severity_screen), ("logSeverityFile", &spec.log_severity_file)]
    {
        if let Some(level) = level {
            problems.check(
                !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()),
                &format!("spec.{field}"),
                &format!("{level:?} is not a log level"),
                "use Trace, Debug, Info, Warning, Error or Fatal",
            );
        }
    }
    if let Some(action) = &spec.default_endpoint_to_host_action {
        problems.check(
            !["", "drop", "accept", "return"].contains(&action.to_ascii_lowercase().as_str()),
            "spec.defaultEndpointToHostAction",
            &format!("{action:?} is not an action"),
            "use Drop, Accept or Return",
        );
    }
    if let Some(address) = &spec.nat_outgoing_address {
        problems.check(
            address.parse::<Ipv4Addr>().is_err(),
            "spec.natOutgoingAddress",
            &format!("{address:?} is not an IPv4 address"),
            "write an IPv4 address such as 192.0.2.10",
        );
    }
    if let Some(range) = &spec.route_table_range {
        problems.check(
            range.min < 1 || range.max > 250 || range.min > range.max,
            "spec.routeTableRange",
            &format!("{}..{} is not a range of route tables within 1..250", range.min, range.max),
            "use min >= 1, max <= 250 and min <= max",
        );
    }
    for (field, interval) in [
        ("routeRefreshInterval", &spec.route_refresh_interval),
        ("nftablesRefreshInterval", &spec.nftables_refresh_interval),
        ("reportingInterval", &spec.reporting_interval),
    ] {
        if let Some(Err(message)) = interval.as_deref().map(parse_duration_seconds) {
            problems.add(format!("spec.{field}"), message, "write a duration such as 90s");
        }
    }
    for (field, ports) in [
        ("failsafeInboundHostPorts", &spec.failsafe_inbound_host_ports),
        ("failsafeOutboundHostPorts", &spec.failsafe_outbound_host_ports),
    ] {
        for (index, port) in ports.iter().flatten().enumerate() {
            port.decode(&format!("spec.{field}[{index}]")).err().into_iter().flatten().for_each(|e| problems.push(e));
        }
    }
    problems.into_result()
}
