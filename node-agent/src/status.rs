//! NodeNetwork.status from what the agent knows (pure), and the comparison that keeps the agent
//! from rewriting an unchanged status.

use std::net::IpAddr;

use gingham_crds::api::NodeNetworkStatus;
use gingham_crds::api::common::{Condition, condition_status, conditions_equivalent};
use gingham_crds::api::nodenetwork::{
    BgpSessionStatus, IpamUsage, LocalEndpoint as StatusEndpoint, StreamStatus, conditions,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::bird::{is_established, summary};
use crate::dataplane::{SyncError, SyncReport};
use crate::endpoint::LocalEndpoint;

/// Everything status is built from.
#[derive(Clone, Debug, Default)]
pub struct StatusInputs<'a> {
    /// The generation of the spec in force.
    pub generation: Option<i64>,
    /// Why the current spec was rejected (or is missing).
    pub spec_error: Option<&'a str>,
    /// The last sync's report, if a spec was ever in force.
    pub report: Option<&'a SyncReport>,
    /// BGP is configured for this node.
    pub bgp_enabled: bool,
    /// The node's span is not known yet: policy and BGP sessions wait for it (nftables and BIRD
    /// are left as they are).
    pub waiting_for_span: bool,
    /// The sessions BIRD reports.
    pub sessions: &'a [BgpSessionStatus],
    /// Why BIRD is unhappy.
    pub bird_error: Option<&'a str>,
    /// BGP sessions left out of BIRD's config (values BIRD refuses), each with the reason.
    pub bgp_left_out: &'a [String],
    /// Why the last IPAM call of the loop failed (the endpoints last read stay programmed).
    pub ipam_error: Option<&'a str>,
    /// The endpoints whose veth exists (programmed or not: the operator compiles their policy
    /// from this list, and the dataplane programs an endpoint only once its policy is known).
    pub endpoints: &'a [LocalEndpoint],
    /// IPAM usage.
    pub ipam: IpamUsage,
    /// The IPv4 tunnel address IPAM holds for this node.
    pub tunnel_address: Option<std::net::Ipv4Addr>,
    /// The IPv6 tunnel (VTEP) address IPAM holds for this node.
    pub tunnel_address6: Option<std::net::Ipv6Addr>,
    /// How the operator's stream stands, when the agent follows it.
    pub stream: Option<&'a StreamStatus>,
}

/// Builds the status; conditions get `now` as their transition time (see [`carry_times`]).
pub fn build(inputs: &StatusInputs<'_>, now: &Time) -> NodeNetworkStatus {
    let condition = |type_: &str, ok: Option<bool>, reason: &str, message: String| Condition {
        type_: type_.to_string(),
        status: match ok {
            Some(true) => condition_status::TRUE,
            Some(false) => condition_status::FALSE,
            None => condition_status::UNKNOWN,
        }
        .to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: inputs.generation,
        last_transition_time: now.clone(),
    };
    let sync_errors = inputs
        .report
        .map(|r| r.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        .unwrap_or_default();
    let programmed = |flag: fn(&SyncReport) -> bool, what: &str, type_: &str| match inputs.report {
        None => condition(type_, None, "NoSpec", "no valid NodeNetwork spec has been applied yet".into()),
        Some(report) if flag(report) => condition(type_, Some(true), "Programmed", format!("{what} match the spec")),
        Some(_) => condition(type_, Some(false), "SyncFailed", format!("{what} do not match the spec: {sync_errors}")),
    };
    let routes = programmed(|r| r.routes_programmed, "routes, devices and neighbours", conditions::ROUTES_PROGRAMMED);
    let policy = match inputs.report {
        Some(_) if inputs.waiting_for_span => {
            condition(conditions::POLICY_PROGRAMMED, Some(false), "WaitingForSpan", SyncError::span_unknown().message)
        }
        _ => programmed(|r| r.policy_programmed, "the nftables rules", conditions::POLICY_PROGRAMMED),
    };
    let down: Vec<&str> = inputs.sessions.iter().filter(|s| !is_established(s)).map(|s| s.name.as_str()).collect();
    let bgp = match (inputs.bgp_enabled, inputs.bird_error) {
        (false, _) => condition(
            conditions::BGP_ESTABLISHED,
            Some(true),
            "BGPDisabled",
            "BGP is off for this node (the spec has no bgp, or the agent runs with --no-bird)".into(),
        ),
        (true, _) if inputs.waiting_for_span => condition(
            conditions::BGP_ESTABLISHED,
            Some(false),
            "WaitingForSpan",
            "BGP sessions wait for this node's span (from the operator's stream or --span-file); BIRD is left as it is"
                .into(),
        ),
        (true, Some(error)) => condition(conditions::BGP_ESTABLISHED, Some(false), "BirdFailed", error.to_string()),
        (true, None) if !inputs.bgp_left_out.is_empty() => {
            condition(conditions::BGP_ESTABLISHED, Some(false), "SessionsLeftOut", inputs.bgp_left_out.join("; "))
        }
        (true, None) if down.is_empty() => condition(
            conditions::BGP_ESTABLISHED,
            Some(true),
            "Established",
            format!("{} BGP sessions established", summary(inputs.sessions)),
        ),
        (true, None) => condition(
            conditions::BGP_ESTABLISHED,
            Some(false),
            "NotEstablished",
            format!("not established: {}", down.join(", ")),
        ),
    };
    let failing = [&routes, &policy, &bgp].into_iter().find(|c| c.status != condition_status::TRUE);
    let ready = match (inputs.spec_error, failing) {
        (Some(error), _) => {
            let reason = if inputs.report.is_none() { "NoSpec" } else { "SpecRejected" };
            condition(conditions::READY, Some(false), reason, error.to_string())
        }
        (None, Some(c)) => condition(conditions::READY, Some(false), &format!("{}NotTrue", c.type_), c.message.clone()),
        (None, None) => condition(conditions::READY, Some(true), "Ready", "the node's network matches its spec".into()),
    };
    let errors: Vec<&str> = [inputs.spec_error, Some(sync_errors.as_str()), inputs.bird_error, inputs.ipam_error]
        .into_iter()
        .flatten()
        .chain(inputs.bgp_left_out.iter().map(String::as_str))
        .filter(|e| !e.is_empty())
        .collect();
    NodeNetworkStatus {
        observed_generation: inputs.generation,
        conditions: vec![ready, routes, policy, bgp],
        bgp_summary: inputs.bgp_enabled.then(|| summary(inputs.sessions)),
        bgp_sessions: inputs.sessions.to_vec(),
        endpoint_count: u32::try_from(inputs.endpoints.len()).unwrap_or(u32::MAX),
        endpoints: inputs.endpoints.iter().filter_map(status_endpoint).collect(),
        ipam: inputs.ipam.clone(),
        tunnel_address: inputs.tunnel_address.map(|a| IpAddr::V4(a).into()),
        tunnel_address6: inputs.tunnel_address6.map(|a| IpAddr::V6(a).into()),
        capabilities: inputs.report.map(|r| r.capabilities.clone()).unwrap_or_default(),
        last_error: (!errors.is_empty()).then(|| errors.join("; ")),
        stream: inputs.stream.cloned(),
    }
}

/// An endpoint as status lists it: `address` the primary (IPv4 when the pod has one), and
/// `addresses` every address when it has more than one (absent, `address` says it all, as an
/// IPv4 pod's status was written before dual-stack). `None` for an endpoint without addresses.
fn status_endpoint(endpoint: &LocalEndpoint) -> Option<StatusEndpoint> {
    let addresses = endpoint.addresses();
    let primary = *addresses.first()?;
    Some(StatusEndpoint {
        name: endpoint.key(),
        uid: endpoint.uid.clone(),
        address: primary.into(),
        addresses: if addresses.len() > 1 { addresses.into_iter().map(Into::into).collect() } else { Vec::new() },
        interface: endpoint.interface.clone(),
    })
}

/// Keeps the transition time of every condition whose status did not change.
pub fn carry_times(status: &mut NodeNetworkStatus, previous: Option<&NodeNetworkStatus>) {
    let Some(previous) = previous else { return };
    for condition in &mut status.conditions {
        if let Some(old) =
            previous.conditions.iter().find(|c| c.type_ == condition.type_ && c.status == condition.status)
        {
            condition.last_transition_time = old.last_transition_time.clone();
        }
    }
}

/// Whether two statuses say the same thing (timestamps aside).
pub fn equivalent(a: &NodeNetworkStatus, b: &NodeNetworkStatus) -> bool {
    conditions_equivalent(&a.conditions, &b.conditions)
        && NodeNetworkStatus { conditions: Vec::new(), ..a.clone() }
            == NodeNetworkStatus { conditions: Vec::new(), ..b.clone() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Inputs, the condition type, its expected (status, reason), and the expected lastError.
    type Case<'a> = (StatusInputs<'a>, &'a str, (&'a str, &'a str), Option<&'a str>);

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn session(name: &str, info: &str) -> BgpSessionStatus {
        BgpSessionStatus { name: name.into(), state: "up".into(), info: info.into(), ..Default::default() }
    }

    fn reason(status: &NodeNetworkStatus, type_: &str) -> (String, String) {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn conditions_follow_the_inputs() {
        let good = SyncReport { routes_programmed: true, policy_programmed: true, ..Default::default() };
        let failed = SyncReport {
            routes_programmed: false,
            policy_programmed: true,
            errors: vec![crate::dataplane::SyncError::unprogrammable("boom".into())],
            ..Default::default()
        };
        let up = [session("Mesh_a", "Established")];
        let down = [session("Mesh_a", "Established"), session("Mesh_b", "Active")];
        let left_out =
            ["BGP session \"peer_x\" left out of BIRD's config: keepaliveSeconds 0 is out of range".to_string()];
        let base = StatusInputs { generation: Some(3), report: Some(&good), ..Default::default() };
        let cases: Vec<Case<'_>> = vec![
            (base.clone(), conditions::READY, ("True", "Ready"), None),
            (StatusInputs { report: None, ..base.clone() }, conditions::ROUTES_PROGRAMMED, ("Unknown", "NoSpec"), None),
            (
                StatusInputs { report: Some(&failed), ..base.clone() },
                conditions::READY,
                ("False", "RoutesProgrammedNotTrue"),
                Some("boom"),
            ),
            (
                StatusInputs { spec_error: Some("bad spec"), ..base.clone() },
                conditions::READY,
                ("False", "SpecRejected"),
                Some("bad spec"),
            ),
            (
                StatusInputs { bgp_enabled: true, sessions: &up, ..base.clone() },
                conditions::BGP_ESTABLISHED,
                ("True", "Established"),
                None,
            ),
            (
                StatusInputs { bgp_enabled: true, sessions: &down, ..base.clone() },
                conditions::BGP_ESTABLISHED,
                ("False", "NotEstablished"),
                None,
            ),
            (
                StatusInputs { bgp_enabled: true, bird_error: Some("BIRD exited"), ..base.clone() },
                conditions::READY,
                ("False", "BGPEstablishedNotTrue"),
                Some("BIRD exited"),
            ),
            (base.clone(), conditions::BGP_ESTABLISHED, ("True", "BGPDisabled"), None),
            (
                StatusInputs { bgp_enabled: true, sessions: &up, bgp_left_out: &left_out, ..base.clone() },
                conditions::BGP_ESTABLISHED,
                ("False", "SessionsLeftOut"),
                Some("BGP session \"peer_x\" left out of BIRD's config: keepaliveSeconds 0 is out of range"),
            ),
            // Before the span arrives, policy and BGP wait for it: the node is not ready.
            (
                StatusInputs { waiting_for_span: true, ..base.clone() },
                conditions::POLICY_PROGRAMMED,
                ("False", "WaitingForSpan"),
                None,
            ),
            (
                StatusInputs { waiting_for_span: true, ..base.clone() },
                conditions::READY,
                ("False", "PolicyProgrammedNotTrue"),
                None,
            ),
            (
                StatusInputs { waiting_for_span: true, bgp_enabled: true, ..base.clone() },
                conditions::BGP_ESTABLISHED,
                ("False", "WaitingForSpan"),
                None,
            ),
            (
                StatusInputs { waiting_for_span: true, report: None, ..base.clone() },
                conditions::POLICY_PROGRAMMED,
                ("Unknown", "NoSpec"),
                None,
            ),
            // Routes and policy stay programmed for the endpoints last read: reported, not unready.
            (
                StatusInputs { ipam_error: Some("IPAM lock held"), ..base.clone() },
                conditions::READY,
                ("True", "Ready"),
                Some("IPAM lock held"),
            ),
        ];
        for (inputs, type_, (status, why), error) in cases {
            let built = build(&inputs, &time(0));
            assert_eq!(reason(&built, type_), (status.to_string(), why.to_string()), "{inputs:?}");
            assert_eq!(built.last_error.as_deref(), error, "{inputs:?}");
            assert_eq!(built.observed_generation, Some(3));
        }
        let with_bgp = build(&StatusInputs { bgp_enabled: true, sessions: &down, ..base }, &time(0));
        assert_eq!(with_bgp.bgp_summary.as_deref(), Some("1/2"));
    }

    #[test]
    fn timestamps_alone_do_not_make_a_new_status() {
        let report = SyncReport { routes_programmed: true, policy_programmed: true, ..Default::default() };
        let inputs = StatusInputs { generation: Some(1), report: Some(&report), ..Default::default() };
        let first = build(&inputs, &time(100));
        let mut second = build(&inputs, &time(200));
        assert!(equivalent(&first, &second));
        carry_times(&mut second, Some(&first));
        assert_eq!(second.conditions[0].last_transition_time, time(100), "an unchanged condition keeps its time");
        let changed = build(&StatusInputs { spec_error: Some("x"), ..inputs }, &time(300));
        assert!(!equivalent(&first, &changed));
    }

    /// Each endpoint's primary address is its IPv4 one when it has one; `addresses` lists both of a
    /// dual-stack pod and is absent otherwise (an IPv4 pod's status is written as before); both
    /// tunnel addresses are reported.
    #[test]
    fn endpoints_list_their_addresses_and_both_tunnel_addresses_are_reported() {
        let endpoint = |pod: &str, v4: Option<&str>, v6: Option<&str>| LocalEndpoint {
            namespace: "ns".into(),
            pod: pod.into(),
            uid: None,
            container_id: format!("c-{pod}"),
            interface: format!("gh-{pod}"),
            address: v4.map(|a| a.parse().unwrap()),
            address6: v6.map(|a| a.parse().unwrap()),
        };
        let endpoints = [
            endpoint("v4", Some("10.0.0.1"), None),
            endpoint("dual", Some("10.0.0.2"), Some("fd00::2")),
            endpoint("v6", None, Some("fd00::3")),
        ];
        let inputs = StatusInputs {
            endpoints: &endpoints,
            tunnel_address: Some("10.0.0.0".parse().unwrap()),
            tunnel_address6: Some("fd00::".parse().unwrap()),
            ..Default::default()
        };
        let status = build(&inputs, &time(1));
        let listed: Vec<(&str, Vec<&str>)> = status
            .endpoints
            .iter()
            .map(|e| (e.address.as_str(), e.addresses.iter().map(|a| a.as_str()).collect()))
            .collect();
        assert_eq!(listed, [("10.0.0.1", vec![]), ("10.0.0.2", vec!["10.0.0.2", "fd00::2"]), ("fd00::3", vec![])]);
        let tunnels =
            (status.tunnel_address.as_ref().map(|a| a.as_str()), status.tunnel_address6.as_ref().map(|a| a.as_str()));
        assert_eq!(tunnels, (Some("10.0.0.0"), Some("fd00::")));
    }
}
