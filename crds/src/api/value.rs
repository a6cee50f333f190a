//! Typed values of the operator↔agent contract: CIDRs, addresses, MACs and set members, decoded
//! once when an object is read and written back as exactly the text they were read from.
//!
//! A field holds a [`Wire<T>`]: the text as written and what it decodes to. Decoding never fails
//! the whole object (one bad block must not stop a node's other blocks); instead the value carries
//! its error, and [`Wire::decoded`] reports it with its field path. The schema stays a plain
//! string, so the CRDs do not change. Every type is family-aware ([`IpNet`], [`IpAddr`]), and
//! [`IpFamily`] names the family where the contract keeps the two apart (IP sets, rules).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::protocol::IpProtocol;
use crate::validate::FieldError;

/// A value type of the contract: how it is decoded from its text and what valid text looks like.
/// Its `Display` writes text that decodes back to the same value.
pub trait Decode: Sized + fmt::Display {
    /// What a valid value looks like, for error messages: `an IPv4 address such as 10.0.0.1`.
    const EXPECTED: &'static str;

    /// The value the text stands for, or `None` when it stands for none.
    fn decode(text: &str) -> Option<Self>;
}

/// A field of the contract: the text as written and what it decoded to, once.
#[derive(Clone, Debug)]
pub struct Wire<T> {
    text: String,
    value: Option<T>,
}

impl<T: Decode> Wire<T> {
    /// Decodes `text`; the result is kept with it, valid or not.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let value = T::decode(&text);
        Self { text, value }
    }

    /// The decoded value, or the error naming the field at `path` (e.g. `spec.blocks[2]`).
    pub fn decoded(&self, path: &str) -> Result<&T, FieldError> {
        self.value.as_ref().ok_or_else(|| FieldError {
            path: path.to_string(),
            message: format!("{:?} is not {}", self.text, T::EXPECTED),
            hint: format!("write {}", T::EXPECTED),
        })
    }
}

impl<T> Wire<T> {
    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The decoded value, for code that reported [`Wire::decoded`]'s error already (or needs
    /// none: tests, and values the operator built itself).
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

impl<T: Decode> From<T> for Wire<T> {
    fn from(value: T) -> Self {
        Self { text: value.to_string(), value: Some(value) }
    }
}

impl<T: Decode> From<&str> for Wire<T> {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl<T: Decode> From<String> for Wire<T> {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl<T: Decode> Default for Wire<T> {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl<T> fmt::Display for Wire<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// Equality, order and hashing follow the text: two fields are the same when they say the same.
impl<T> PartialEq for Wire<T> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<T> Eq for Wire<T> {}

impl<T> PartialEq<str> for Wire<T> {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl<T> PartialEq<&str> for Wire<T> {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl<T> PartialOrd for Wire<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Wire<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl<T> std::hash::Hash for Wire<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl<T> Serialize for Wire<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de, T: Decode> Deserialize<'de> for Wire<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl<T> JsonSchema for Wire<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

/// An address family, written `IPv4` or `IPv6` (as Calico writes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum IpFamily {
    /// IPv4.
    #[default]
    IPv4,
    /// IPv6.
    IPv6,
}

impl IpFamily {
    /// Both families, IPv4 first.
    pub const BOTH: [Self; 2] = [Self::IPv4, Self::IPv6];

    /// The family of an address.
    pub fn of(address: IpAddr) -> Self {
        if address.is_ipv4() { Self::IPv4 } else { Self::IPv6 }
    }

    /// The family of a network.
    pub fn of_net(net: &IpNet) -> Self {
        Self::of(net.addr())
    }

    /// Calico's `ipVersion` for the family: 4 or 6.
    pub fn version(self) -> u8 {
        match self {
            Self::IPv4 => 4,
            Self::IPv6 => 6,
        }
    }

    /// The family of Calico's `ipVersion` (4 or 6), `None` for any other number.
    pub fn from_version(version: u8) -> Option<Self> {
        match version {
            4 => Some(Self::IPv4),
            6 => Some(Self::IPv6),
            _ => None,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IPv4 => "IPv4",
            Self::IPv6 => "IPv6",
        })
    }
}

/// Serialises an optional [`IpFamily`] as Calico's `ipVersion` number (4 or 6), for
/// `#[serde(with = ...)]`.
pub mod ip_version_number {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use super::IpFamily;

    /// Writes 4 or 6 (nothing for `None`; pair with `skip_serializing_if`).
    pub fn serialize<S: Serializer>(family: &Option<IpFamily>, serializer: S) -> Result<S::Ok, S::Error> {
        match family {
            Some(family) => serializer.serialize_u8(family.version()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads 4 or 6; any other number is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<IpFamily>, D::Error> {
        match Option::<u8>::deserialize(deserializer)? {
            None => Ok(None),
            Some(version) => IpFamily::from_version(version)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("ipVersion {version} is neither 4 nor 6"))),
        }
    }
}

/// An IP network with an explicit prefix length (`10.0.0.0/26`, `192.168.10.2/24`, `fd00::/64`).
/// Host bits are kept: a node's address is its address and its subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// The IPv4 network, when it is one.
    pub fn v4(self) -> Option<Ipv4Net> {
        match self.0 {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }

    /// The IPv6 network, when it is one.
    pub fn v6(self) -> Option<Ipv6Net> {
        match self.0 {
            IpNet::V4(_) => None,
            IpNet::V6(net) => Some(net),
        }
    }

    /// Its address family.
    pub fn family(self) -> IpFamily {
        IpFamily::of_net(&self.0)
    }
}

impl Decode for Cidr {
    const EXPECTED: &'static str = "a CIDR with its prefix length, such as 10.0.0.0/26 or fd00::/64";

    fn decode(text: &str) -> Option<Self> {
        text.parse().ok().map(Self)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An address or a network, as policy `nets` and set members take it: a bare address is a
/// single-address network, and is written bare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Net(pub IpNet);

impl Net {
    /// The IPv4 network, when it is one.
    pub fn v4(self) -> Option<Ipv4Net> {
        Cidr(self.0).v4()
    }

    /// Its address family.
    pub fn family(self) -> IpFamily {
        IpFamily::of_net(&self.0)
    }
}

impl From<IpAddr> for Net {
    fn from(address: IpAddr) -> Self {
        Self(IpNet::from(address))
    }
}

impl Decode for Net {
    const EXPECTED: &'static str = "an IP address or CIDR, such as 10.0.0.1 or 10.0.0.0/24";

    fn decode(text: &str) -> Option<Self> {
        match text.parse::<IpNet>() {
            Ok(net) => Some(Self(net)),
            Err(_) => text.parse::<IpAddr>().ok().map(Self::from),
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() { self.0.addr().fmt(f) } else { self.0.fmt(f) }
    }
}

impl Decode for IpAddr {
    const EXPECTED: &'static str = "an IP address, such as 10.0.0.1 or fd00::1";

    fn decode(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Decode for Ipv4Addr {
    const EXPECTED: &'static str = "an IPv4 address, such as 10.0.0.1";

    fn decode(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// A 48-bit Ethernet address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Decode for Mac {
    const EXPECTED: &'static str = "a MAC address such as ee:ee:ee:ee:ee:01";

    fn decode(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut bytes {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Self(bytes))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A named-port member: an endpoint's address, protocol and port, written `10.0.0.1,tcp,8080`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetMember {
    /// The endpoint's address.
    pub addr: IpAddr,
    /// The protocol: one that has ports (TCP, UDP or SCTP).
    pub proto: IpProtocol,
    /// The port.
    pub port: u16,
}

impl Decode for SetMember {
    const EXPECTED: &'static str = "address,protocol,port with a protocol that has ports, such as 10.0.0.1,tcp,8080";

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(',').map(str::trim);
        let (Some(addr), Some(proto), Some(port), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let proto = IpProtocol::parse(proto).filter(|p| p.supports_ports())?;
        Some(Self { addr: addr.parse().ok()?, proto, port: port.parse().ok()? })
    }
}

impl fmt::Display for SetMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.addr, self.proto, self.port)
    }
}

/// A member of an IP set: an address or network (`Addresses` sets) or a named-port triple
/// (`AddressPorts` sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpSetMember {
    /// An address or network.
    Address(Net),
    /// An address, protocol and port.
    Port(SetMember),
}

impl IpSetMember {
    /// The family of its address.
    pub fn family(&self) -> IpFamily {
        match self {
            Self::Address(net) => net.family(),
            Self::Port(member) => IpFamily::of(member.addr),
        }
    }
}

impl Decode for IpSetMember {
    const EXPECTED: &'static str = "an IP address or CIDR, or address,protocol,port such as 10.0.0.1,tcp,8080";

    fn decode(text: &str) -> Option<Self> {
        if text.contains(',') { SetMember::decode(text).map(Self::Port) } else { Net::decode(text).map(Self::Address) }
    }
}

impl fmt::Display for IpSetMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(net) => net.fmt(f),
            Self::Port(member) => member.fmt(f),
        }
    }
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
