//! Netlink bytes that netlink-packet-route does not model: the raw framing of messages (to send
//! and read messages of any type), and nexthop objects (`struct nhmsg` and its attributes,
//! `RTM_NEWNEXTHOP`/`RTM_DELNEXTHOP`/`RTM_GETNEXTHOP`), encoded and decoded by hand.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Add or replace a nexthop object.
pub const RTM_NEWNEXTHOP: u16 = 104;
/// Delete a nexthop object.
pub const RTM_DELNEXTHOP: u16 = 105;
/// Read nexthop objects.
pub const RTM_GETNEXTHOP: u16 = 106;
/// The multicast group of nexthop notifications (above 31: joined by socket option).
pub const RTNLGRP_NEXTHOP: u32 = 32;

const NHA_ID: u16 = 1;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const RTNH_F_ONLINK: u32 = 4;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `struct nlmsghdr`.
const HEADER: usize = 16;
/// `struct nhmsg`.
const NHMSG: usize = 8;

/// Netlink messages and attributes start on 4-byte boundaries.
pub fn aligned(length: usize) -> usize {
    (length + 3) & !3
}

/// One netlink message of a datagram, undecoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raw<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_seq`.
    pub sequence: u32,
    /// The whole message, header included.
    pub bytes: &'a [u8],
    /// The payload after the header.
    pub payload: &'a [u8],
}

/// The messages of a datagram, in order; a truncated tail is ignored.
pub fn messages(datagram: &[u8]) -> Vec<Raw<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(header) = datagram.get(offset..offset + HEADER) {
        let length = u32_at(header, 0).unwrap_or(0) as usize;
        let (Some(bytes), true) = (datagram.get(offset..offset + length), length >= HEADER) else { break };
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        out.push(Raw { kind, sequence: u32_at(header, 8).unwrap_or(0), bytes, payload: &bytes[HEADER..] });
        offset += aligned(length);
    }
    out
}

/// Appends one message (header and payload) to a datagram.
pub fn append(datagram: &mut Vec<u8>, kind: u16, flags: u16, sequence: u32, payload: &[u8]) {
    let length = u32::try_from(HEADER + payload.len()).unwrap_or(u32::MAX);
    datagram.extend_from_slice(&length.to_ne_bytes());
    datagram.extend_from_slice(&kind.to_ne_bytes());
    datagram.extend_from_slice(&flags.to_ne_bytes());
    datagram.extend_from_slice(&sequence.to_ne_bytes());
    datagram.extend_from_slice(&0u32.to_ne_bytes());
    datagram.extend_from_slice(payload);
    datagram.resize(aligned(datagram.len()), 0);
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let length = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&length.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(aligned(out.len()), 0);
}

/// A nexthop object as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireNexthop {
    /// Its id.
    pub id: u32,
    /// Its owner's protocol number.
    pub protocol: u8,
    /// Its gateway, if it has one.
    pub gateway: Option<IpAddr>,
    /// Its output interface, if it has one.
    pub oif: Option<u32>,
}

/// The payload of `RTM_NEWNEXTHOP`: `id <id> via <gateway> dev <oif> onlink proto <protocol>`.
pub fn new_nexthop(id: u32, gateway: IpAddr, oif: u32, protocol: u8) -> Vec<u8> {
    let family = if gateway.is_ipv4() { AF_INET } else { AF_INET6 };
    let mut out = vec![family, 0, protocol, 0];
    out.extend_from_slice(&RTNH_F_ONLINK.to_ne_bytes());
    attribute(&mut out, NHA_ID, &id.to_ne_bytes());
    attribute(&mut out, NHA_OIF, &oif.to_ne_bytes());
    match gateway {
        IpAddr::V4(v4) => attribute(&mut out, NHA_GATEWAY, &v4.octets()),
        IpAddr::V6(v6) => attribute(&mut out, NHA_GATEWAY, &v6.octets()),
    }
    out
}

/// The payload of `RTM_DELNEXTHOP` for an id.
pub fn delete_nexthop(id: u32) -> Vec<u8> {
    let mut out = vec![AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0];
    attribute(&mut out, NHA_ID, &id.to_ne_bytes());
    out
}

/// The payload of an `RTM_GETNEXTHOP` dump of every family.
pub fn dump_nexthops() -> Vec<u8> {
    vec![AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0]
}

/// Decodes the payload of an `RTM_NEWNEXTHOP` or `RTM_DELNEXTHOP` message.
pub fn decode_nexthop(payload: &[u8]) -> Option<WireNexthop> {
    let protocol = *payload.get(2)?;
    let mut nexthop = WireNexthop { id: 0, protocol, gateway: None, oif: None };
    let mut offset = NHMSG;
    while let Some(head) = payload.get(offset..offset + 4) {
        let length = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let kind = u16::from_ne_bytes([head[2], head[3]]) & 0x3fff;
        let value = payload.get(offset + 4..offset + length.max(4))?;
        match (kind, value.len()) {
            (NHA_ID, 4) => nexthop.id = u32_at(value, 0)?,
            (NHA_OIF, 4) => nexthop.oif = u32_at(value, 0),
            (NHA_GATEWAY, 4) => nexthop.gateway = Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(value).ok()?))),
            (NHA_GATEWAY, 16) => {
                nexthop.gateway = Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(value).ok()?)));
            }
            _ => {}
        }
        if length < 4 {
            break;
        }
        offset += aligned(length);
    }
    (nexthop.id != 0).then_some(nexthop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_nexthop_decodes_to_what_was_encoded_and_frames_round_trip() {
        for gateway in [IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)), "fd00::1".parse().unwrap()] {
            let payload = new_nexthop(0x1234_5678, gateway, 7, 249);
            let mut datagram = Vec::new();
            append(&mut datagram, RTM_NEWNEXTHOP, 1, 41, &payload);
            append(&mut datagram, RTM_DELNEXTHOP, 1, 42, &delete_nexthop(0x1234_5678));
            let found = messages(&datagram);
            assert_eq!(found.iter().map(|m| (m.kind, m.sequence)).collect::<Vec<_>>(), [(104, 41), (105, 42)]);
            let decoded = decode_nexthop(found[0].payload).unwrap();
            assert_eq!(decoded, WireNexthop { id: 0x1234_5678, protocol: 249, gateway: Some(gateway), oif: Some(7) });
            assert_eq!(decode_nexthop(found[1].payload).map(|n| n.id), Some(0x1234_5678));
        }
    }

    #[test]
    fn a_truncated_datagram_yields_its_whole_messages_only() {
        let mut datagram = Vec::new();
        append(&mut datagram, RTM_NEWNEXTHOP, 1, 1, &delete_nexthop(5));
        let whole = datagram.len();
        append(&mut datagram, RTM_NEWNEXTHOP, 1, 2, &delete_nexthop(6));
        assert_eq!(messages(&datagram[..whole + 10]).len(), 1);
        assert_eq!(decode_nexthop(&[0, 0, 249]), None, "no id, no nexthop");
    }
}
