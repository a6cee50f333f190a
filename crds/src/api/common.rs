//! Small value types shared by several kinds: AS numbers, ports, protocols, secret references,
//! conditions and the encapsulation mode.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::protocol::IpProtocol;
#[cfg(doc)]
use super::protocol::PROTOCOLS;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A go-style duration such as `90s`, `1m30s` or `500ms` (the format Calico uses).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A BGP autonomous system number: plain (`64512`) or asdot (`1.10`), kept in the form it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsNumber {
    value: u32,
    dotted: bool,
}

impl AsNumber {
    /// An AS number written in plain notation.
    pub const fn new(value: u32) -> Self {
        Self { value, dotted: false }
    }

    /// The 32-bit value.
    pub const fn value(&self) -> u32 {
        self.value
    }

    /// Parses the string forms Calico accepts: `64512`, or asdot `X.Y` with two 16-bit halves.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "write a number from 0 to 4294967295, or asdot X.Y with X and Y from 0 to 65535";
        match text.split_once('.') {
            None => {
                text.parse::<u32>().map(Self::new).map_err(|_| format!("{text:?} is not a valid AS number: {hint}"))
            }
            Some((high, low)) => {
                let high = high.parse::<u16>();
                let low = low.parse::<u16>();
                match (high, low) {
                    (Ok(high), Ok(low)) => Ok(Self { value: (u32::from(high) << 16) | u32::from(low), dotted: true }),
                    _ => Err(format!("{text:?} is not a valid AS number: {hint}")),
                }
            }
        }
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dotted {
            write!(f, "{}.{}", self.value >> 16, self.value & 0xffff)
        } else {
            write!(f, "{}", self.value)
        }
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.dotted { serializer.serialize_str(&self.to_string()) } else { serializer.serialize_u32(self.value) }
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match IntOrString::deserialize(deserializer)? {
            IntOrString::Int(value) => u32::try_from(value).map(Self::new).map_err(|_| {
                serde::de::Error::custom(format!("AS number {value} is out of range: it must be from 0 to 4294967295"))
            }),
            IntOrString::String(text) => Self::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// The CEL rule that checks an AS number in the schema: [`AsNumber::parse`], and not 0 (reserved,
/// and refused by BIRD; the Rust validators check that too).
const AS_NUMBER_RULE: &str = "string(self).matches('^[0-9]{1,10}$') ? (int(string(self)) >= 1 && int(string(self)) <= 4294967295) : \
    (string(self).matches('^[0-9]{1,5}[.][0-9]{1,5}$') && int(string(self).split('.')[0]) <= 65535 && int(string(self).split('.')[1]) <= 65535 \
    && int(string(self).split('.')[0]) + int(string(self).split('.')[1]) >= 1)";

impl JsonSchema for AsNumber {
    fn schema_name() -> Cow<'static, str> {
        "AsNumber".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A BGP AS number: a number from 1 to 4294967295, or asdot notation X.Y.",
            "x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{
                "rule": AS_NUMBER_RULE,
                "message": "an AS number is a number from 1 to 4294967295 or asdot X.Y with X and Y from 0 to 65535 (not 0.0)",
            }],
        })
    }
}

/// A value that is either an integer or a string, as Kubernetes' int-or-string fields are.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// The integer form.
    Int(i64),
    /// The string form.
    String(String),
}

/// A port in a policy rule: a number, a range `"min:max"`, or a named port. Kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Port(pub IntOrString);

/// What a [`Port`] means once parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSpec {
    /// A port range, inclusive; a single port has `first == last`.
    Range {
        /// The first port of the range.
        first: u16,
        /// The last port of the range.
        last: u16,
    },
    /// A named port, resolved against each endpoint's container ports.
    Named(String),
}

impl Port {
    /// A single numeric port.
    pub fn number(port: u16) -> Self {
        Self(IntOrString::Int(i64::from(port)))
    }

    /// A named port.
    pub fn named(name: &str) -> Self {
        Self(IntOrString::String(name.to_string()))
    }

    /// Parses the port, or explains what is wrong with it.
    pub fn spec(&self) -> Result<PortSpec, String> {
        let hint = "use a number from 0 to 65535, a range \"min:max\", or a port name";
        match &self.0 {
            IntOrString::Int(n) => u16::try_from(*n)
                .map(|p| PortSpec::Range { first: p, last: p })
                .map_err(|_| format!("port {n} is out of range: {hint}")),
            IntOrString::String(text) => {
                parse_port_text(text).ok_or_else(|| format!("port {text:?} is invalid: {hint}"))
            }
        }
    }
}

fn parse_port_text(text: &str) -> Option<PortSpec> {
    if let Some((first, last)) = text.split_once(':') {
        let first = first.parse::<u16>().ok()?;
        let last = last.parse::<u16>().ok()?;
        return (first <= last).then_some(PortSpec::Range { first, last });
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let port = text.parse::<u16>().ok()?;
        return Some(PortSpec::Range { first: port, last: port });
    }
    let valid_name = !text.is_empty()
        && text.len() <= 15
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && text.bytes().any(|b| b.is_ascii_lowercase());
    valid_name.then(|| PortSpec::Named(text.to_string()))
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A port: a number, a range \"min:max\", or the name of a container port.",
            "x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{
                "rule": "string(self).matches('^([0-9]{1,5}(:[0-9]{1,5})?|[a-z0-9-]{1,15})$') && string(self).split(':').all(p, !p.matches('^[0-9]+$') || int(p) <= 65535)",
                "message": "a port is a number from 0 to 65535, a range \"min:max\" or a port name",
            }],
        })
    }
}

/// An IP protocol: a name (`TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, `UDPLite`) or a number 1-255.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Protocol(pub IntOrString);

impl Protocol {
    /// A protocol given by name.
    pub fn named(name: &str) -> Self {
        Self(IntOrString::String(name.to_string()))
    }

    /// The protocol, or why the value is not one (names and numbers from [`PROTOCOLS`]).
    pub fn decode(&self) -> Result<IpProtocol, String> {
        let hint = "use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number from 1 to 255";
        match &self.0 {
            IntOrString::Int(n) => u8::try_from(*n)
                .ok()
                .and_then(IpProtocol::from_number)
                .ok_or_else(|| format!("protocol {n} is invalid: {hint}")),
            IntOrString::String(name) => IpProtocol::parse(name)
                .filter(|_| !name.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("protocol {name:?} is invalid: {hint}")),
        }
    }

    /// The IANA protocol number, or why the value is not a protocol.
    pub fn number(&self) -> Result<u8, String> {
        self.decode().map(IpProtocol::number)
    }

    /// Whether rules with this protocol may name ports (TCP, UDP and SCTP).
    pub fn supports_ports(&self) -> bool {
        self.decode().is_ok_and(IpProtocol::supports_ports)
    }
}

impl JsonSchema for Protocol {
    fn schema_name() -> Cow<'static, str> {
        "Protocol".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An IP protocol: TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite, or a number from 1 to 255.",
            "x-kubernetes-int-or-string": true,
            "x-kubernetes-validations": [{
                "rule": "string(self).matches('^[0-9]+$') ? (int(string(self)) >= 1 && int(string(self)) <= 255) : string(self).lowerAscii() in ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'udplite']",
                "message": "protocol must be TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number from 1 to 255",
            }],
        })
    }
}

/// A reference to one key of a Secret in the operator's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// The name of the Secret.
    pub name: String,
    /// The key within the Secret whose value is used.
    pub key: String,
    /// Whether a missing Secret or key is tolerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Where a BGP password comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPassword {
    /// The Secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// How a pool's traffic between nodes is encapsulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum EncapsulationMode {
    /// Never encapsulate: routes are learned over BGP.
    #[default]
    Never,
    /// Always encapsulate traffic to other nodes.
    Always,
    /// Encapsulate only traffic to nodes on another subnet.
    CrossSubnet,
}

impl EncapsulationMode {
    /// Whether this mode encapsulates any traffic.
    pub fn is_enabled(self) -> bool {
        self != Self::Never
    }
}

/// Condition status strings, as Kubernetes spells them.
pub mod condition_status {
    /// The condition holds.
    pub const TRUE: &str = "True";
    /// The condition does not hold.
    pub const FALSE: &str = "False";
    /// It is not known whether the condition holds.
    pub const UNKNOWN: &str = "Unknown";
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether two condition lists say the same thing, ignoring transition times (so that status is not
/// rewritten when nothing changed).
pub fn conditions_equivalent(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn as_numbers_parse_like_calico() {
        let cases: &[(&str, Option<u32>)] = &[
            ("64512", Some(64512)),
            ("0", Some(0)),
            ("4294967295", Some(u32::MAX)),
            ("4294967296", None),
            ("1.10", Some(65546)),
            ("65535.65535", Some(u32::MAX)),
            ("65536.65535", None),
            ("1.1.1", None),
            ("", None),
            ("-1", None),
            ("abc", None),
        ];
        for (text, expected) in cases {
            assert_eq!(AsNumber::parse(text).ok().map(|a| a.value()), *expected, "{text}");
        }
    }

    #[test]
    fn as_numbers_keep_their_written_form() {
        let dotted: AsNumber = serde_json::from_str("\"1.10\"").unwrap();
        assert_eq!(serde_json::to_string(&dotted).unwrap(), "\"1.10\"");
        let plain: AsNumber = serde_json::from_str("64512").unwrap();
        assert_eq!(serde_json::to_string(&plain).unwrap(), "64512");
    }

    #[test]
    fn ports_parse_numbers_ranges_and_names() {
        let cases: &[(IntOrString, Option<PortSpec>)] = &[
            (IntOrString::Int(80), Some(PortSpec::Range { first: 80, last: 80 })),
            (IntOrString::Int(70000), None),
            (IntOrString::String("53".into()), Some(PortSpec::Range { first: 53, last: 53 })),
            (IntOrString::String("100:200".into()), Some(PortSpec::Range { first: 100, last: 200 })),
            (IntOrString::String("200:100".into()), None),
            (IntOrString::String("http-alt".into()), Some(PortSpec::Named("http-alt".into()))),
            (IntOrString::String("Bad_Name".into()), None),
            (IntOrString::String("".into()), None),
        ];
        for (value, expected) in cases {
            assert_eq!(Port(value.clone()).spec().ok(), *expected, "{value:?}");
        }
    }

    #[test]
    fn protocols_map_to_numbers() {
        assert_eq!(Protocol::named("TCP").number(), Ok(6));
        assert_eq!(Protocol::named("icmpv6").number(), Ok(58));
        assert!(Protocol::named("HTTP").number().is_err());
        assert!(Protocol(IntOrString::Int(0)).number().is_err());
        assert!(Protocol::named("SCTP").supports_ports());
        assert!(!Protocol::named("ICMP").supports_ports());
    }
}
