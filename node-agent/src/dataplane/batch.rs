//! Many rtnetlink requests per datagram. The kernel handles the requests of one datagram in order
//! and answers each failure; only the last request of a chunk asks for an acknowledgement, which
//! therefore also confirms every request before it that reported nothing. N changes cost about
//! N / [`CHUNK`] system calls instead of one round trip each through the rtnetlink connection task.

use std::fmt;
use std::io;
use std::time::Duration;

use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_core::{NLMSG_DONE, NLMSG_ERROR};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

use super::wire::aligned;

/// Requests per datagram: few enough that the kernel's answers fit the receive buffer even when
/// every request of a chunk fails (an answer takes well under 1 KiB of the default 208 KiB).
pub const CHUNK: usize = 128;

/// How long the kernel may take to answer one chunk (it answers while handling the send).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The receive buffer asked for (the kernel caps it at `net.core.rmem_max`).
const RECEIVE_BUFFER: usize = 1 << 20;

/// One request of a batch.
#[derive(Debug)]
pub enum Request {
    /// A message netlink-packet-route models.
    Route(NetlinkMessage<RouteNetlinkMessage>),
    /// A message it does not (nexthop objects): type, flags and payload ([`super::wire`]).
    Raw {
        /// `nlmsg_type`.
        kind: u16,
        /// `nlmsg_flags` (without `NLM_F_ACK`, which the batch sets).
        flags: u16,
        /// The payload after the header.
        payload: Vec<u8>,
    },
}

/// Why a request of a batch has no successful outcome.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The kernel refused the request.
    #[error(transparent)]
    Refused(rtnetlink::Error),
    /// The socket failed or the kernel's answer was lost: the request may or may not be in force.
    #[error("no answer from the kernel ({0}); the next sync checks again")]
    Unconfirmed(String),
}

/// A netlink socket for batches, bound to the network namespace of the thread that opened it.
pub struct Batch {
    socket: TokioSocket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("sequence", &self.sequence).finish_non_exhaustive()
    }
}

impl Batch {
    /// Opens the socket (needs a tokio runtime).
    pub fn open() -> io::Result<Self> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        let raw = socket.socket_mut();
        raw.bind_auto()?;
        raw.connect(&SocketAddr::new(0, 0))?;
        // Failures are answered with the failed request's header only, not the whole request.
        raw.set_cap_ack(true)?;
        // Best effort: a larger buffer only adds headroom over what CHUNK needs.
        let _ = raw.set_rx_buf_sz(RECEIVE_BUFFER);
        Ok(Self { socket, sequence: 0, buffer: Vec::with_capacity(1 << 16) })
    }

    /// Sends the requests in order (their flags as built, acknowledgements set here) and returns
    /// one outcome per request. A failed request does not stop the ones after it. `between` runs
    /// after each chunk (the caller drains its notifications there, before they overflow).
    pub async fn send(&mut self, requests: Vec<Request>, mut between: impl FnMut()) -> Vec<Result<(), BatchError>> {
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            let chunk: Vec<_> = requests.by_ref().take(CHUNK).collect();
            outcomes.extend(self.send_chunk(chunk).await);
            between();
        }
        outcomes
    }

    /// Dumps objects of a type netlink-packet-route does not model: the messages of the answer,
    /// each whole (header included). An error answer fails the dump.
    pub async fn dump(&mut self, kind: u16, payload: &[u8]) -> Result<Vec<Vec<u8>>, BatchError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut datagram = Vec::new();
        super::wire::append(&mut datagram, kind, NLM_F_REQUEST | NLM_F_DUMP, sequence, payload);
        self.socket.send(&datagram).await.map_err(|e| BatchError::Unconfirmed(format!("send failed: {e}")))?;
        let mut found = Vec::new();
        loop {
            self.buffer.clear();
            self.buffer.reserve(1 << 16);
            match tokio::time::timeout(ANSWER_TIMEOUT, self.socket.recv(&mut self.buffer)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(BatchError::Unconfirmed(format!("receive failed: {error}"))),
                Err(_) => return Err(BatchError::Unconfirmed(format!("no answer within {ANSWER_TIMEOUT:?}"))),
            }
            for message in super::wire::messages(&self.buffer).into_iter().filter(|m| m.sequence == sequence) {
                match message.kind {
                    NLMSG_DONE => return Ok(found),
                    NLMSG_ERROR => {
                        if let Some((_, Err(error))) = answers(message.bytes).pop() {
                            return Err(error);
                        }
                    }
                    _ => found.push(message.bytes.to_vec()),
                }
            }
        }
    }

    async fn send_chunk(&mut self, chunk: Vec<Request>) -> Vec<Result<(), BatchError>> {
        let count = chunk.len();
        let first = self.sequence.wrapping_add(1);
        self.sequence = self.sequence.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
        let last = self.sequence;
        let datagram = encode(chunk, first);
        let mut outcomes: Vec<Option<Result<(), BatchError>>> = (0..count).map(|_| None).collect();
        let unconfirmed = |outcomes: Vec<Option<Result<(), BatchError>>>, why: &str| {
            outcomes.into_iter().map(|o| o.unwrap_or_else(|| Err(BatchError::Unconfirmed(why.to_string())))).collect()
        };
        if let Err(error) = self.socket.send(&datagram).await {
            return unconfirmed(outcomes, &format!("send failed: {error}"));
        }
        loop {
            self.buffer.clear();
            self.buffer.reserve(1 << 16);
            match tokio::time::timeout(ANSWER_TIMEOUT, self.socket.recv(&mut self.buffer)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return unconfirmed(outcomes, &format!("receive failed: {error}")),
                Err(_) => return unconfirmed(outcomes, &format!("no answer within {ANSWER_TIMEOUT:?}")),
            }
            let mut done = false;
            for (sequence, answer) in answers(&self.buffer) {
                let Some(index) = usize::try_from(sequence.wrapping_sub(first)).ok().filter(|i| *i < count) else {
                    continue; // an answer to an earlier chunk that gave up waiting
                };
                if let Some(slot) = outcomes.get_mut(index) {
                    *slot = Some(answer);
                }
                done |= sequence == last;
            }
            if done {
                // Handled in order: whatever reported nothing before the last one succeeded.
                return outcomes.into_iter().map(|o| o.unwrap_or(Ok(()))).collect();
            }
        }
    }
}

/// The chunk as one datagram: consecutive sequence numbers from `first`, an acknowledgement asked
/// for by the last request only.
fn encode(chunk: Vec<Request>, first: u32) -> Vec<u8> {
    let count = chunk.len();
    let mut datagram = Vec::new();
    for (i, request) in chunk.into_iter().enumerate() {
        let sequence = first.wrapping_add(u32::try_from(i).unwrap_or(u32::MAX));
        let ack = if i + 1 == count { NLM_F_ACK } else { 0 };
        match request {
            Request::Route(mut message) => {
                message.header.sequence_number = sequence;
                message.header.flags = (message.header.flags & !NLM_F_ACK) | ack;
                message.finalize();
                let start = datagram.len();
                datagram.resize(start + aligned(message.buffer_len()), 0);
                message.serialize(&mut datagram[start..start + message.buffer_len()]);
            }
            Request::Raw { kind, flags, payload } => {
                super::wire::append(&mut datagram, kind, (flags & !NLM_F_ACK) | ack, sequence, &payload);
            }
        }
    }
    datagram
}

/// The (sequence number, outcome) of every acknowledgement and error in a received datagram.
fn answers(datagram: &[u8]) -> Vec<(u32, Result<(), BatchError>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(rest) = datagram.get(offset..).filter(|r| !r.is_empty()) {
        let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) else { break };
        let length = aligned(message.header.length as usize);
        if let NetlinkPayload::Error(error) = message.payload {
            let outcome = match error.code {
                None => Ok(()),
                Some(_) => Err(BatchError::Refused(rtnetlink::Error::NetlinkError(error))),
            };
            out.push((message.header.sequence_number, outcome));
        }
        if length == 0 {
            break;
        }
        offset += length;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::num::NonZeroI32;

    use rtnetlink::packet_core::{ErrorMessage, NLM_F_REQUEST, NetlinkHeader};
    use rtnetlink::packet_route::route::RouteMessage;

    use super::*;

    fn route() -> Request {
        let mut message = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(RouteMessage::default()));
        message.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        Request::Route(message)
    }

    fn answer(sequence: u32, code: i32) -> Vec<u8> {
        let mut error = ErrorMessage::default();
        error.code = NonZeroI32::new(code);
        error.header = vec![0; 16];
        let mut message =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::<RouteNetlinkMessage>::Error(error));
        message.header.sequence_number = sequence;
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn only_the_last_request_of_a_chunk_asks_for_an_acknowledgement() {
        let datagram = encode(vec![route(), Request::Raw { kind: 104, flags: 1, payload: vec![0; 8] }, route()], 7);
        let seen: Vec<(u32, u16, bool)> = super::super::wire::messages(&datagram)
            .iter()
            .map(|m| (m.sequence, m.kind, u16::from_ne_bytes([m.bytes[6], m.bytes[7]]) & NLM_F_ACK != 0))
            .collect();
        assert_eq!(seen, [(7, 24, false), (8, 104, false), (9, 24, true)]);
    }

    #[test]
    fn acknowledgements_and_errors_are_matched_by_sequence_number() {
        let mut datagram = answer(3, -19);
        datagram.extend(answer(4, 0));
        let found: Vec<(u32, Option<String>)> =
            answers(&datagram).into_iter().map(|(s, o)| (s, o.err().map(|e| e.to_string()))).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, 3);
        assert!(found[0].1.as_deref().is_some_and(|e| e.contains("No such device")), "{found:?}");
        assert_eq!(found[1], (4, None));
    }
}
