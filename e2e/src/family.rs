//! The address families a lab runs (IPv4, IPv6, or both: dual-stack), as the contract's
//! [`IpFamily`], with what the lab needs of them.

use gingham_crds::api::IpFamily;

/// The family of an address or CIDR written as text (`fd00::1`, `10.0.0.1/24`).
pub fn family_of(address: &str) -> IpFamily {
    if address.contains(':') { IpFamily::IPv6 } else { IpFamily::IPv4 }
}

/// `ip`'s flag for a family: `-4` or `-6`.
pub fn ip_flag(family: IpFamily) -> &'static str {
    match family {
        IpFamily::IPv4 => "-4",
        IpFamily::IPv6 => "-6",
    }
}

/// The address of `family` in a list of addresses (each optionally with a prefix length), without
/// its prefix length.
pub fn address_of(addresses: &[String], family: IpFamily) -> Option<&str> {
    addresses.iter().find(|a| family_of(a) == family).and_then(|a| a.split('/').next())
}

/// `address:port`, with IPv6 addresses in brackets.
pub fn socket_text(address: &str, port: u16) -> String {
    match family_of(address) {
        IpFamily::IPv4 => format!("{address}:{port}"),
        IpFamily::IPv6 => format!("[{address}]:{port}"),
    }
}
