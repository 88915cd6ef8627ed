//! The UDP endpoint: one reply datagram per datagram, on the same reactor.
//!
//! UDP has no connections, so there is no state machine: each datagram is
//! converted on its own and answered to its sender. The endpoint is lent the
//! reactor's [`Ctx`] like a connection, and makes its calls through
//! [`syscall`]'s `recv_from` and `send_to`, matching their
//! named outcomes as a connection matches `recv`'s and `send`'s. Two things
//! need care in a non-blocking server:
//!
//! * `send_to` can fail with `WouldBlock` when the socket's send buffer is
//!   full. The reply is then queued (bounded by [`MAX_QUEUED_DATAGRAMS`] and
//!   [`MAX_QUEUED_BYTES`]) and sent when the socket becomes writable; past the
//!   bound it is dropped and counted, because UDP promises no delivery and a
//!   flood must not grow memory without limit. Any other send error (a reply
//!   too large after uppercasing, say) drops that one reply, never the server.
//! * Reflection, amplification and floods: a forged datagram "from"
//!   another host's echo (port 7) or chargen (19) service would make two
//!   servers answer each other forever, so datagrams from ports 0, 7, 13,
//!   17 and 19 are never answered; exposed, more sources are refused, no
//!   reply outgrows its datagram and each source prefix has a rate. Those
//!   rules are the same for every server, so they live in
//!   [`UdpGuard`] (`src/udp_guard.rs`), which each datagram meets
//!   before its reply is made and again before it is sent.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use log::debug;
use mio::net::UdpSocket;
use mio::{Interest, Registry};

use super::ctx::Ctx;
use super::hot_trace::hot_trace;
use super::token::UDP;
use super::turn::Turn;
use crate::stats::Stats;
use crate::syscall::{self, ReceivedFrom, Sent};
use crate::udp_guard::UdpGuard;
use crate::udp_queue::ReplyQueue;
pub use crate::udp_queue::{MAX_QUEUED_BYTES, MAX_QUEUED_DATAGRAMS};

/// Datagrams handled per readiness event before TCP gets its turn.
const RECV_BUDGET: usize = 256;

/// The UDP socket and its queue of unsent replies.
#[derive(Debug)]
pub struct UdpEndpoint {
    socket: UdpSocket,
    /// Replies waiting for the socket to become writable (`udp_queue.rs`).
    queue: ReplyQueue<Box<[u8]>>,
    /// False once shutdown begins: queued replies are still sent.
    is_reading: bool,
    /// Whether a datagram may be answered (`udp_guard.rs`).
    guard: UdpGuard,
}

impl UdpEndpoint {
    /// Registers the socket for both directions, once.
    ///
    /// # Errors
    /// If the registration fails.
    pub fn new(mut socket: UdpSocket, registry: &Registry, guard: UdpGuard) -> io::Result<Self> {
        registry.register(&mut socket, UDP, Interest::READABLE | Interest::WRITABLE)?;
        Ok(UdpEndpoint {
            socket,
            queue: ReplyQueue::default(),
            is_reading: true,
            guard,
        })
    }

    /// The socket's address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether replies are waiting to be sent.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Stops reading (shutdown); queued replies still go out.
    pub fn stop_reading(&mut self) {
        self.is_reading = false;
    }

    /// Receives and answers datagrams until the socket is drained. Returns
    /// a turn with `read_again` set if the budget ran out first, so the
    /// reactor must call again without waiting for an event. (UDP has no
    /// end-of-stream: only `recv_from`'s `WouldBlock` ends the loop, never a
    /// short datagram.)
    pub fn on_readable(&mut self, ctx: &mut Ctx, now: Instant) -> Turn {
        for _ in 0..RECV_BUDGET {
            if !self.is_reading {
                return Turn::DONE;
            }
            let (n, from) = match syscall::recv_from(&self.socket, &mut ctx.scratch) {
                ReceivedFrom::Datagram(n, from) => (n, from),
                ReceivedFrom::WouldBlock => return Turn::DONE,
                ReceivedFrom::Failed(e) => {
                    // A pending socket error is reported once and cleared;
                    // it concerns an earlier datagram, not the server.
                    debug!("udp recv_from failed: {e}");
                    continue;
                }
            };
            ctx.stats.udp_in += 1;
            hot_trace!(ctx.tracing, "udp datagram of {n} bytes from {from}");
            let answer = self.guard.answer(
                &ctx.service,
                from,
                &mut ctx.scratch[..n],
                &mut ctx.reply,
                now,
                &mut ctx.stats,
            );
            if let Some(bytes) = answer {
                self.send_or_queue(bytes, from, &mut ctx.stats);
            }
        }
        Turn::READ_AGAIN
    }

    /// Sends queued replies until the socket would block.
    pub fn on_writable(&mut self, ctx: &mut Ctx) {
        while let Some((to, bytes)) = self.queue.front() {
            match syscall::send_to(&self.socket, bytes, *to) {
                Sent::Bytes(_) => ctx.stats.udp_out += 1,
                Sent::WouldBlock => return,
                Sent::Failed(e) => {
                    ctx.stats.udp_dropped += 1;
                    debug!("udp reply to {to} dropped: {e}");
                }
            }
            self.queue.pop();
        }
    }

    fn send_or_queue(&mut self, bytes: &[u8], to: SocketAddr, stats: &mut Stats) {
        if self.queue.is_empty() {
            match syscall::send_to(&self.socket, bytes, to) {
                Sent::Bytes(_) => {
                    stats.udp_out += 1;
                    return;
                }
                Sent::WouldBlock => {}
                Sent::Failed(e) => {
                    stats.udp_dropped += 1;
                    debug!("udp reply of {} bytes to {to} dropped: {e}", bytes.len());
                    return;
                }
            }
        }
        if self.queue.has_room(bytes.len(), stats) {
            self.queue.push(to, bytes.into());
        }
    }
}
