//! The CNI result: the one ADD prints and the `prevResult` a runtime hands back (CHECK), held in
//! the 1.x shape and written in the shape of the version the runtime asked for, as the reference
//! plugins' `types` conversion does. Before 1.0.0 each `ips[]` entry carries `version` ("4" or
//! "6"); from 1.0.0 it does not. 1.1.0's additions (route `mtu`, `table`, ...) gingham does not
//! emit, so 1.0.0 and 1.1.0 results differ only in `cniVersion`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CniError, CniVersion, codes};

/// A CNI result in the 1.x shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    /// The interfaces the chain made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// The addresses given.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// The routes in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings, passed through as given.
    #[serde(default)]
    pub dns: Map<String, Value>,
}

/// One entry of `interfaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Its MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network namespace path, for an interface inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One entry of `ips`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// "4" or "6": written only for versions before 1.0.0, dropped when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The index in `interfaces` of the interface holding the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One entry of `routes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

impl CniResult {
    /// gingham's ADD result: the host veth, the pod's interface holding each of `addresses` as a
    /// single-address network (/32, /128), and for each family the default route (`0.0.0.0/0`,
    /// `::/0`) via its gateway (`gateway_for`).
    pub fn attached(host: &str, pod: Interface, addresses: &[IpAddr], gateway_for: impl Fn(IpAddr) -> IpAddr) -> Self {
        let host = Interface { name: host.to_string(), mac: Some(super::HOST_MAC.to_string()), sandbox: None };
        let ips = addresses
            .iter()
            .map(|address| IpConfig {
                version: None,
                address: IpNet::from(*address),
                gateway: None,
                interface: Some(1),
            })
            .collect();
        let routes = addresses
            .iter()
            .map(|address| {
                let default = match address {
                    IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
                    IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
                };
                Route { dst: default, gw: Some(gateway_for(*address)) }
            })
            .collect();
        Self { interfaces: vec![host, pod], ips, routes, dns: Map::new() }
    }

    /// Reads a `prevResult` written in any supported version (code 6 when it does not decode).
    pub fn decode(value: &Value) -> Result<Self, CniError> {
        let mut result: Self = serde_json::from_value(value.clone()).map_err(|e| {
            CniError::new(
                codes::DECODE,
                format!("network configuration field prevResult is not a CNI result: {e}; pass the previous plugin's result unchanged"),
            )
        })?;
        for ip in &mut result.ips {
            ip.version = None;
        }
        Ok(result)
    }

    /// The result as `version` writes it.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut result = self.clone();
        for ip in &mut result.ips {
            ip.version = version.ips_carry_version().then(|| family(ip.address).to_string());
        }
        // Strings, numbers and addresses only: serialising cannot fail.
        let mut value = serde_json::to_value(result).unwrap_or_default();
        if let Value::Object(fields) = &mut value {
            fields.insert("cniVersion".to_string(), Value::from(version.as_str()));
        }
        value
    }
}

/// "4" or "6", as `ips[].version` spells the address family.
fn family(address: IpNet) -> &'static str {
    match address {
        IpNet::V4(_) => "4",
        IpNet::V6(_) => "6",
    }
}

#[cfg(test)]
#[path = "result_tests.rs"]
mod tests;
