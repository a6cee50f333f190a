//! Set members normalised to the form `nft` lists them in, so desired and listed elements compare
//! as plain strings. The members come decoded from the [`crate::dataplane::plan::NodePlan`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use gingham_crds::api::IpProtocol;
use ipnet::IpNet;

fn shown(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

/// Interval-set elements of one family: truncated to their network (`10.0.0.1` for a /32,
/// `fd00::5` for a /128, else the network `10.0.0.0/24`), and without members another member
/// already covers (nft refuses overlapping intervals). IPv6 addresses are written compressed
/// (RFC 5952), as nft lists them.
pub fn addresses(members: impl IntoIterator<Item = IpNet>) -> BTreeSet<String> {
    let mut nets: Vec<IpNet> = members.into_iter().map(|net| net.trunc()).collect();
    nets.sort();
    let mut kept: Vec<IpNet> = Vec::new();
    for net in nets {
        if !kept.last().is_some_and(|last| last.contains(&net)) {
            kept.push(net);
        }
    }
    kept.iter().map(shown).collect()
}

/// Named-port elements: `10.0.0.1 . tcp . 8080`, `fd00::5 . tcp . 8080`.
pub fn address_ports(members: impl IntoIterator<Item = (IpAddr, IpProtocol, u16)>) -> BTreeSet<String> {
    members.into_iter().map(|(ip, proto, port)| format!("{ip} . {proto} . {port}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn nets(texts: &[&str]) -> Vec<IpNet> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_are_normalised_and_covered_members_dropped() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["10.0.0.1/32", "10.0.0.7/32", "10.1.2.3/16", "10.1.5.0/24", "10.0.0.1/32"],
                &["10.0.0.1", "10.0.0.7", "10.1.0.0/16"],
            ),
            (
                &["fd00:0:0:0::5/128", "fd00:1::7/64", "fd00:1::/48", "fd00:0:0:1:0:0:0:1/128"],
                &["fd00:0:0:1::1", "fd00:1::/48", "fd00::5"],
            ),
        ];
        for (members, expected) in cases {
            assert_eq!(addresses(nets(members)).into_iter().collect::<Vec<_>>(), *expected);
        }
    }

    #[test]
    fn when_a_covering_cidr_goes_the_members_it_covered_come_back() {
        let before = addresses(nets(&["10.0.0.0/16", "10.0.1.0/24", "10.0.1.5/32", "10.2.0.0/16"]));
        let after = addresses(nets(&["10.0.1.0/24", "10.0.1.5/32", "10.2.0.0/16"]));
        let added: Vec<&str> = after.difference(&before).map(String::as_str).collect();
        let removed: Vec<&str> = before.difference(&after).map(String::as_str).collect();
        assert_eq!(
            (added, removed),
            (vec!["10.0.1.0/24"], vec!["10.0.0.0/16"]),
            "the /24 comes back, not the /32 it covers"
        );
    }

    #[test]
    fn named_ports_are_shown_as_nft_lists_them() {
        let got = address_ports([
            ("10.0.0.1".parse().unwrap(), IpProtocol::TCP, 8080),
            ("10.0.0.2".parse().unwrap(), IpProtocol::UDP, 53),
            ("fd00::0:2".parse().unwrap(), IpProtocol::TCP, 80),
        ]);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["10.0.0.1 . tcp . 8080", "10.0.0.2 . udp . 53", "fd00::2 . tcp . 80"]
        );
    }
}
