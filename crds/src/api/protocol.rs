//! The one protocol table: IP protocol names and numbers, shared by policy validation, the
//! operator's named-port sets and the agent's nftables elements.

use std::fmt;

/// Every IP protocol with a name: the name as Calico writes it, and its IANA number.
pub const PROTOCOLS: [(&str, u8); 6] =
    [("TCP", 6), ("UDP", 17), ("ICMP", 1), ("ICMPv6", 58), ("SCTP", 132), ("UDPLite", 136)];

/// An IP protocol number (1-255). Written as its lower-case name when it has one (`tcp`, the form
/// nftables lists), else as the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(u8);

impl IpProtocol {
    /// TCP (6).
    pub const TCP: Self = Self(6);
    /// UDP (17).
    pub const UDP: Self = Self(17);
    /// SCTP (132).
    pub const SCTP: Self = Self(132);

    /// The protocol with this number; 0 is no protocol.
    pub const fn from_number(number: u8) -> Option<Self> {
        if number == 0 { None } else { Some(Self(number)) }
    }

    /// Parses a name of [`PROTOCOLS`] (any case) or a number from 1 to 255.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some((_, number)) = PROTOCOLS.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)) {
            return Some(Self(*number));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u8>().ok().and_then(Self::from_number)
    }

    /// The IANA number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The name as Calico writes it (`TCP`), when the protocol has one.
    pub fn name(self) -> Option<&'static str> {
        PROTOCOLS.iter().find(|(_, number)| *number == self.0).map(|(name, _)| *name)
    }

    /// Whether rules and named ports may name ports of this protocol (TCP, UDP and SCTP).
    pub fn supports_ports(self) -> bool {
        matches!(self, Self::TCP | Self::UDP | Self::SCTP)
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(&name.to_ascii_lowercase()),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_map_both_ways() {
        let cases: &[(&str, Option<u8>, &str)] = &[
            ("TCP", Some(6), "tcp"),
            ("tcp", Some(6), "tcp"),
            ("6", Some(6), "tcp"),
            ("icmpv6", Some(58), "icmpv6"),
            ("UDPLite", Some(136), "udplite"),
            ("47", Some(47), "47"),
            ("255", Some(255), "255"),
            ("0", None, ""),
            ("256", None, ""),
            ("+6", None, ""),
            ("HTTP", None, ""),
            ("", None, ""),
        ];
        for (text, number, shown) in cases {
            let parsed = IpProtocol::parse(text);
            assert_eq!(parsed.map(IpProtocol::number), *number, "{text}");
            if let Some(parsed) = parsed {
                assert_eq!(parsed.to_string(), *shown, "{text}");
                assert_eq!(IpProtocol::parse(&parsed.to_string()), Some(parsed), "{text} round trip");
            }
        }
    }

    #[test]
    fn only_tcp_udp_and_sctp_have_ports() {
        let with_ports: Vec<&str> =
            PROTOCOLS.iter().filter(|(_, n)| IpProtocol(*n).supports_ports()).map(|(name, _)| *name).collect();
        assert_eq!(with_ports, ["TCP", "UDP", "SCTP"]);
    }
}
