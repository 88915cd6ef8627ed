//! The proactor's UDP endpoint: one `recvmsg` in flight, one reply in
//! flight, and a bounded queue between them.
//!
//! UDP has no connections and no stream to keep in order, so it needs no
//! state machine: the rules are the reactor's (`reactor/udp.rs`): each
//! datagram converted on its own and answered to its sender; the guards of
//! `udp_guard.rs` (never a reply to a source that could reflect it back in
//! a loop, and exposed, no reply larger than its datagram and a rate per
//! source prefix); replies that
//! cannot go out at once queued up to [`MAX_QUEUED_DATAGRAMS`] and
//! [`MAX_QUEUED_BYTES`], past which they are dropped and counted. What the
//! completion model changes: the receive is an operation the kernel
//! finishes into the ring's own buffer ([`Ring::recv_datagram`]), re-armed
//! after each datagram, and a reply is a buffer lent until its completion.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use log::{debug, trace};

use super::connection::Ctx;
use super::ring::{Outcome, Ring};
use super::user_data::{Op, SERVER_SLOT, UserData};
use crate::udp_guard::UdpGuard;
use crate::udp_queue::ReplyQueue;
pub use crate::udp_queue::{MAX_QUEUED_BYTES, MAX_QUEUED_DATAGRAMS};

/// The UDP socket and its replies.
#[derive(Debug)]
pub struct UdpEndpoint {
    socket: UdpSocket,
    /// Replies waiting for the one in flight.
    queue: ReplyQueue<Vec<u8>>,
    receiving: bool,
    replying: bool,
    /// False once shutdown begins: queued replies still go out.
    is_reading: bool,
    /// Whether a datagram may be answered (`udp_guard.rs`).
    guard: UdpGuard,
}

const RECV: u32 = 0;

impl UdpEndpoint {
    /// The endpoint, with its first receive armed.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn new(socket: UdpSocket, guard: UdpGuard, ring: &mut Ring) -> io::Result<UdpEndpoint> {
        let mut udp = UdpEndpoint {
            socket,
            queue: ReplyQueue::default(),
            receiving: false,
            replying: false,
            is_reading: true,
            guard,
        };
        udp.arm(ring)?;
        Ok(udp)
    }

    /// The socket's address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether an operation or a reply is still pending.
    pub fn is_busy(&self) -> bool {
        self.replying || !self.queue.is_empty()
    }

    /// Whether a receive is still in the kernel.
    pub fn is_receiving(&self) -> bool {
        self.receiving
    }

    fn arm(&mut self, ring: &mut Ring) -> io::Result<()> {
        if self.is_reading && !self.receiving {
            ring.recv_datagram(self.socket.as_raw_fd(), UserData::new(Op::UdpRecv, RECV, 0))?;
            self.receiving = true;
        }
        Ok(())
    }

    /// Stops receiving (shutdown): the receive in flight is cancelled;
    /// queued replies still go out.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn stop_reading(&mut self, ring: &mut Ring) -> io::Result<()> {
        self.is_reading = false;
        if self.receiving {
            ring.cancel(
                UserData::new(Op::UdpRecv, RECV, 0),
                UserData::new(Op::Cancel, SERVER_SLOT, 0),
            )?;
        }
        Ok(())
    }

    /// A completion of the receive or of a reply.
    ///
    /// # Errors
    /// If the ring cannot take a new entry.
    pub fn on_completion(
        &mut self,
        op: Op,
        outcome: Outcome,
        now: Instant,
        ctx: &mut Ctx,
        ring: &mut Ring,
    ) -> io::Result<()> {
        match op {
            Op::UdpRecv => {
                self.receiving = false;
                match outcome {
                    Outcome::Datagram { len, from } => {
                        self.on_datagram(len, from, now, ctx, ring);
                    }
                    Outcome::Failed(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
                    // A pending error concerns an earlier datagram, not the
                    // server: reported once and cleared, as in the reactor.
                    Outcome::Failed(e) => debug!("udp recvmsg failed: {e}"),
                    other => debug!("udp: unexpected receive outcome {other:?}"),
                }
                self.arm(ring)?;
                self.send_next(ring)?;
            }
            Op::UdpSend => {
                self.replying = false;
                if let Outcome::SentTo { result, buf } = outcome {
                    match result {
                        Ok(_) => ctx.stats.udp_out += 1,
                        Err(e) => {
                            ctx.stats.udp_dropped += 1;
                            debug!("udp reply dropped: {e}");
                        }
                    }
                    ctx.pool.give(buf);
                }
                self.send_next(ring)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_datagram(
        &mut self,
        len: usize,
        from: SocketAddr,
        now: Instant,
        ctx: &mut Ctx,
        ring: &mut Ring,
    ) {
        ctx.stats.udp_in += 1;
        if ctx.tracing {
            trace!("udp datagram of {len} bytes from {from}");
        }
        let Some(input) = ring.datagram_mut(len) else {
            return;
        };
        let Some(reply) = self.guard.answer(
            &ctx.service,
            from,
            input,
            &mut ctx.reply,
            now,
            &mut ctx.stats,
        ) else {
            return;
        };
        if self.queue.has_room(reply.len(), &mut ctx.stats) {
            let mut buf = ctx.pool.take();
            buf.extend_from_slice(reply);
            self.queue.push(from, buf);
        }
    }

    /// Lends the next queued reply to the kernel, if none is in flight.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn send_next(&mut self, ring: &mut Ring) -> io::Result<()> {
        if self.replying {
            return Ok(());
        }
        let Some((to, buf)) = self.queue.pop() else {
            return Ok(());
        };
        self.replying = true;
        ring.send_to(
            self.socket.as_raw_fd(),
            UserData::new(Op::UdpSend, RECV, 0),
            buf,
            to,
        )
    }
}
