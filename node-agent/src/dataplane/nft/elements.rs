//! Set members normalised to the form `nft` lists them in, so desired and listed elements compare
//! as plain strings. The members come decoded from the [`crate::dataplane::plan::NodePlan`].

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use gingham_crds::api::IpProtocol;
use ipnet::Ipv4Net;

fn shown(net: &Ipv4Net) -> String {
    if net.prefix_len() == 32 { net.addr().to_string() } else { net.to_string() }
}

/// Interval-set elements: truncated to their network (`10.0.0.1` for a /32, else the network
/// `10.0.0.0/24`), and without members another member already covers (nft refuses overlapping
/// intervals).
pub fn addresses(members: impl IntoIterator<Item = Ipv4Net>) -> BTreeSet<String> {
    let mut nets: Vec<Ipv4Net> = members.into_iter().map(|net| net.trunc()).collect();
    nets.sort();
    let mut kept: Vec<Ipv4Net> = Vec::new();
    for net in nets {
        if !kept.last().is_some_and(|last| last.contains(&net)) {
            kept.push(net);
        }
    }
    kept.iter().map(shown).collect()
}

/// Named-port elements: `10.0.0.1 . tcp . 8080`.
pub fn address_ports(members: impl IntoIterator<Item = (Ipv4Addr, IpProtocol, u16)>) -> BTreeSet<String> {
    members.into_iter().map(|(ip, proto, port)| format!("{ip} . {proto} . {port}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(texts: &[&str]) -> Vec<Ipv4Net> {
        texts.iter().filter_map(|t| t.parse().ok()).collect()
    }

    #[test]
    fn addresses_are_normalised_and_covered_members_dropped() {
        let got = addresses(nets(&["10.0.0.1/32", "10.0.0.7/32", "10.1.2.3/16", "10.1.5.0/24", "10.0.0.1/32"]));
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec!["10.0.0.1", "10.0.0.7", "10.1.0.0/16"]);
    }

    #[test]
    fn named_ports_are_shown_as_nft_lists_them() {
        let got = address_ports([
            (Ipv4Addr::new(10, 0, 0, 1), IpProtocol::TCP, 8080),
            (Ipv4Addr::new(10, 0, 0, 2), IpProtocol::UDP, 53),
        ]);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec!["10.0.0.1 . tcp . 8080", "10.0.0.2 . udp . 53"]);
    }
}
