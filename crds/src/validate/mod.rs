//! Rust validation: one `validate_*` function per kind returning every problem with its field path
//! and a hint. These hold the same rules as the CRD schema's CEL, plus what a schema cannot express
//! (selector syntax, pool overlap). The operator, its admission webhook and `gingham-operator
//! validate` all call them.

mod bgp;
pub mod bird;
mod felix;
mod hostendpoint;
mod ippool;
mod networkset;
mod nodenetwork;
mod policy;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::api::value::{Decode, Wire};
use crate::selector::Selector;

pub use bgp::{validate_bgp_configuration, validate_bgp_peer};
pub use felix::validate_felix_configuration;
pub use hostendpoint::validate_host_endpoint;
pub use ippool::{PoolOverlap, find_pool_overlaps, validate_ippool};
pub use networkset::validate_network_set;
pub use nodenetwork::{
    is_set_name, node_network_value_errors, set_member, span_value_errors, validate_bgp_session, validate_ipam_block,
    validate_node_bgp, validate_node_network, validate_node_network_structure,
};
pub use policy::{
    validate_global_network_policy, validate_network_policy, validate_policy_tier, validate_rule, validate_tier,
};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.ingress[0].destination.ports[1]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (fix: {})", self.hint)?;
        }
        Ok(())
    }
}

/// Collects [`FieldError`]s while walking an object.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Records a problem.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into(), hint: hint.into() });
    }

    /// Records a problem when `bad` holds.
    pub fn check(&mut self, bad: bool, path: &str, message: &str, hint: &str) {
        if bad {
            self.add(path, message, hint);
        }
    }

    /// Records the error of a value that did not decode (see [`Wire::decoded`]).
    pub fn decoded<T: Decode>(&mut self, path: &str, value: &Wire<T>) {
        if let Err(error) = value.decoded(path) {
            self.0.push(error);
        }
    }

    /// Records a problem found elsewhere.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Checks that a selector parses.
    pub fn selector(&mut self, path: &str, text: Option<&str>) {
        if let Some(text) = text
            && let Err(error) = Selector::parse(text)
        {
            self.add(path, error.to_string(), "write a Calico selector such as role == 'db' && has(app)");
        }
    }

    /// Checks that a string is a CIDR and returns it. Host bits are allowed (as in policy nets).
    pub fn cidr(&mut self, path: &str, text: &str) -> Option<IpNet> {
        match parse_cidr(text) {
            Ok(net) => Some(net),
            Err(message) => {
                self.add(path, message, "write an address range such as 10.0.0.0/16 or fd00::/64");
                None
            }
        }
    }

    /// Checks that a string is a CIDR with an explicit prefix length (`10.96.0.0/12`).
    pub fn network(&mut self, path: &str, text: &str) {
        self.check(
            text.parse::<IpNet>().is_err(),
            path,
            &format!("{text:?} is not a CIDR"),
            "write an address range with its prefix length, such as 10.96.0.0/12",
        );
    }

    /// The problems found, in the order found.
    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Parses a CIDR; a bare address counts as a single-address CIDR, as Calico accepts in `nets`.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("{text:?} is not a CIDR"))
}

/// Whether the CIDR has no host bits set.
pub fn is_strictly_masked(net: &IpNet) -> bool {
    net.trunc() == *net
}

/// Parses Calico's peer address forms: `IP`, `IPv4:port`, `[IPv6]:port`. Returns address and port.
pub fn parse_peer_address(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    let invalid = || format!("{text:?} is not an IP address, optionally with a port");
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok((addr, None));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once("]:").ok_or_else(invalid)?
    } else {
        text.rsplit_once(':').ok_or_else(invalid)?
    };
    let addr = host.parse::<IpAddr>().map_err(|_| invalid())?;
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    Ok((addr, Some(port)))
}

/// Parses a go-style duration (`90s`, `1m30s`, `500ms`) into seconds, rounding down.
pub fn parse_duration_seconds(text: &str) -> Result<f64, String> {
    let invalid = || format!("{text:?} is not a duration: write e.g. 90s, 1m30s or 500ms");
    let mut total = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let value: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    type PeerCase<'a> = (&'a str, Option<(&'a str, Option<u16>)>);

    #[test]
    fn peer_addresses_parse_in_calicos_forms() {
        let cases: &[PeerCase] = &[
            ("192.0.2.1", Some(("192.0.2.1", None))),
            ("192.0.2.1:1179", Some(("192.0.2.1", Some(1179)))),
            ("[ac13::57]:50", Some(("ac13::57", Some(50)))),
            ("ac13::57", Some(("ac13::57", None))),
            ("999.999.999.999", None),
            ("192.0.2.1:99999", None),
            ("[ac13::57]", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = parse_peer_address(text).ok();
            let expected = expected.map(|(a, p)| (a.parse::<IpAddr>().ok(), p));
            assert_eq!(got.map(|(a, p)| (Some(a), p)), expected, "{text}");
        }
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration_seconds("90s"), Ok(90.0));
        assert_eq!(parse_duration_seconds("1m30s"), Ok(90.0));
        assert_eq!(parse_duration_seconds("500ms"), Ok(0.5));
        assert!(parse_duration_seconds("90").is_err());
        assert!(parse_duration_seconds("").is_err());
        assert!(parse_duration_seconds("5 minutes").is_err());
    }

    #[test]
    fn field_errors_name_the_field_and_the_fix() {
        let error = FieldError { path: "spec.cidr".into(), message: "bad".into(), hint: "do this".into() };
        assert_eq!(error.to_string(), "spec.cidr: bad (fix: do this)");
    }
}
