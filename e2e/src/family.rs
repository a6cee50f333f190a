//! The address families a lab runs: IPv4, IPv6, or both (dual-stack).

use std::fmt;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address or CIDR written as text (`fd00::1`, `10.0.0.1/24`).
    pub fn of(address: &str) -> Self {
        if address.contains(':') { Self::V6 } else { Self::V4 }
    }

    /// `ip`'s flag for this family: `-4` or `-6`.
    pub fn ip_flag(self) -> &'static str {
        match self {
            Self::V4 => "-4",
            Self::V6 => "-6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// The address of `family` in a list of addresses (each optionally with a prefix length), without
/// its prefix length.
pub fn address_of(addresses: &[String], family: Family) -> Option<&str> {
    addresses.iter().find(|a| Family::of(a) == family).and_then(|a| a.split('/').next())
}

/// `address:port`, with IPv6 addresses in brackets.
pub fn socket_text(address: &str, port: u16) -> String {
    match Family::of(address) {
        Family::V4 => format!("{address}:{port}"),
        Family::V6 => format!("[{address}]:{port}"),
    }
}
