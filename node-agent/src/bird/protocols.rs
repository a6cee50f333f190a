//! `birdc show protocols` into the BGP session table of NodeNetwork.status.

use gingham_crds::api::nodenetwork::{BgpPeerSession, BgpSessionStatus};

/// The BGP rows of `birdc show protocols` output, with peer addresses from the span's sessions.
pub fn parse_protocols(output: &str, peers: &[BgpPeerSession]) -> Vec<BgpSessionStatus> {
    output
        .lines()
        .skip_while(|l| !l.starts_with("Name"))
        .skip(1)
        .filter_map(|row| {
            let mut words = row.split_whitespace();
            let (name, proto, _table, state) = (words.next()?, words.next()?, words.next()?, words.next()?);
            if proto != "BGP" {
                return None;
            }
            let rest: Vec<&str> = words.collect();
            // `Since` is a time, or a date and a time.
            let since_words = match rest.as_slice() {
                [date, time, ..] if date.contains('-') && time.contains(':') => 2,
                [] => 0,
                _ => 1,
            };
            let peer_address = peers.iter().find(|p| p.name == name).map(|p| p.address.to_string()).unwrap_or_default();
            Some(BgpSessionStatus {
                name: name.to_string(),
                peer_address,
                state: state.to_string(),
                since: rest[..since_words].join(" "),
                info: rest[since_words..].join(" "),
            })
        })
        .collect()
}

/// `established/total`.
pub fn summary(sessions: &[BgpSessionStatus]) -> String {
    let established = sessions.iter().filter(|s| is_established(s)).count();
    format!("{established}/{}", sessions.len())
}

/// Whether BIRD reports the session established.
pub fn is_established(session: &BgpSessionStatus) -> bool {
    session.info.starts_with("Established")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:13:14.123
gingham_kernel Kernel     master4    up     12:13:14.123
Mesh_10_0_0_2 BGP        ---        up     12:13:15.001  Established
Mesh_10_0_0_3 BGP        ---        start  2026-11-25 09:00:00  Active        Socket: Connection refused
";

    #[test]
    fn bgp_rows_become_sessions() {
        let peers =
            vec![BgpPeerSession { name: "Mesh_10_0_0_2".into(), address: "10.0.0.2".into(), ..Default::default() }];
        let sessions = parse_protocols(OUTPUT, &peers);
        assert_eq!(sessions.len(), 2);
        assert_eq!(
            sessions[0],
            BgpSessionStatus {
                name: "Mesh_10_0_0_2".into(),
                peer_address: "10.0.0.2".into(),
                state: "up".into(),
                info: "Established".into(),
                since: "12:13:15.001".into(),
            }
        );
        assert_eq!(sessions[1].since, "2026-11-25 09:00:00");
        assert_eq!(sessions[1].info, "Active Socket: Connection refused");
        assert_eq!(summary(&sessions), "1/2");
    }
}
