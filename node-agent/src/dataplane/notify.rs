//! The kernel's rtnetlink notifications: a socket in the multicast groups of links, IPv4 and IPv6
//! addresses and routes, neighbours (ARP, NDP and FDB: one group) and nexthops, read without
//! waiting. Datagrams are
//! kept as they come; [`super::rtnl`] decodes them.

use std::io;

use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};

use super::wire::RTNLGRP_NEXTHOP;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// Every group below 32 the socket binds to.
const GROUPS: [u32; 6] =
    [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE];

/// The receive buffer asked for (the kernel caps it at `net.core.rmem_max`); the socket is also
/// drained after every chunk of a batch, so the agent's own changes do not overflow it.
const RECEIVE_BUFFER: usize = 4 << 20;

/// What was read from the socket.
#[derive(Debug, Default)]
pub struct Received {
    /// Whole datagrams, in order.
    pub datagrams: Vec<Vec<u8>>,
    /// The kernel dropped notifications (ENOBUFS) or the socket failed.
    pub lost: bool,
}

/// A socket subscribed to the groups the dataplane watches.
pub struct Notifications {
    socket: Socket,
    received: Received,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").field("queued", &self.received.datagrams.len()).finish_non_exhaustive()
    }
}

impl Notifications {
    /// Opens the socket in the current network namespace and joins the groups. Also the start
    /// of nexthop support: joining the nexthop group fails on a kernel without it, which then
    /// gets the other groups only.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        let groups = GROUPS.iter().fold(0u32, |mask, group| mask | (1 << (group - 1)));
        socket.bind(&SocketAddr::new(0, groups))?;
        // Best effort: an older kernel has no nexthop group, and no nexthop objects to watch.
        let _ = socket.add_membership(RTNLGRP_NEXTHOP);
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER);
        socket.set_non_blocking(true)?;
        Ok(Self { socket, received: Received::default() })
    }

    /// Reads every datagram waiting, without blocking, and keeps them.
    pub fn drain(&mut self) {
        loop {
            let mut buffer = Vec::with_capacity(1 << 16);
            match self.socket.recv(&mut buffer, 0) {
                Ok(0) => return,
                Ok(_) => self.received.datagrams.push(buffer),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // ENOBUFS: the kernel dropped some (what is still queued is read next time).
                    self.received.lost = true;
                    return;
                }
            }
        }
    }

    /// Everything read since the last call (after reading what is waiting).
    pub fn take(&mut self) -> Received {
        self.drain();
        std::mem::take(&mut self.received)
    }
}
