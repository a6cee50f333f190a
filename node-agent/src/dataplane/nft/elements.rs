//! Set members normalised to the form `nft` lists them in, so desired and listed elements compare
//! as plain strings.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use tracing::warn;

/// An IPv4 address or CIDR as nft lists it: `10.0.0.1` for a /32, else the network `10.0.0.0/24`.
pub fn address(text: &str) -> Option<Ipv4Net> {
    let net = match text.parse::<Ipv4Net>() {
        Ok(net) => net.trunc(),
        Err(_) => Ipv4Net::from(text.parse::<Ipv4Addr>().ok()?),
    };
    Some(net)
}

fn shown(net: &Ipv4Net) -> String {
    if net.prefix_len() == 32 { net.addr().to_string() } else { net.to_string() }
}

/// Interval-set elements: parsed, truncated to their network, and without members another member
/// already covers (nft refuses overlapping intervals). IPv6 members are left out quietly (the
/// table is IPv4-only); anything else unparsable is left out with a warning.
pub fn addresses<'a>(members: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut nets: Vec<Ipv4Net> = members
        .into_iter()
        .filter(|m| !m.contains(':'))
        .filter_map(|m| {
            let parsed = address(m);
            if parsed.is_none() {
                warn!(member = m, "skipping a set member that is not an IPv4 address or CIDR");
            }
            parsed
        })
        .collect();
    nets.sort();
    let mut kept: Vec<Ipv4Net> = Vec::new();
    for net in nets {
        if !kept.last().is_some_and(|last| last.contains(&net)) {
            kept.push(net);
        }
    }
    kept.iter().map(shown).collect()
}

/// The protocol as nft lists it in a concatenation.
fn protocol(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let name = match lower.as_str() {
        "6" | "tcp" => "tcp",
        "17" | "udp" => "udp",
        "132" | "sctp" => "sctp",
        _ => return None,
    };
    Some(name.into())
}

/// Named-port elements from `address,protocol,port` members: `10.0.0.1 . tcp . 8080`.
pub fn address_ports<'a>(members: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    members
        .into_iter()
        .filter_map(|member| {
            let mut parts = member.split(',').map(str::trim);
            let (Some(ip), Some(proto), Some(port), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                warn!(member, "skipping a named-port member that is not address,protocol,port");
                return None;
            };
            let ip = ip.parse::<Ipv4Addr>().ok()?;
            let port = port.parse::<u16>().ok()?;
            Some(format!("{ip} . {} . {port}", protocol(proto)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_and_covered_members_dropped() {
        let got =
            addresses(["10.0.0.1/32", "10.0.0.7", "10.1.2.3/16", "10.1.5.0/24", "garbage", "10.0.0.1", "fd00::1"]);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec!["10.0.0.1", "10.0.0.7", "10.1.0.0/16"]);
    }

    #[test]
    fn named_ports_take_names_or_numbers() {
        let got = address_ports(["10.0.0.1,TCP,8080", "10.0.0.2,17,53", "10.0.0.3,icmp,1", "10.0.0.4,tcp", "x,tcp,1"]);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec!["10.0.0.1 . tcp . 8080", "10.0.0.2 . udp . 53"]);
    }
}
