//! One TCP connection of the proactor: the reactor's state machine, driven
//! by completions, and the operations it has in flight.
//!
//! The *protocol* is the reactor's, unchanged: the same [`State`], moved on
//! by the same pure [`State::next`], with the same [`Action`]s on its
//! transitions (echo, half-close, backpressure, greet's last word, the
//! grace period). What changes is who does the I/O and when the program
//! learns of it. A reactor connection *makes* the call when epoll says it
//! may; a proactor connection *has* operations in the kernel, and a
//! completion says one finished. So beside the state, a connection keeps
//! what it has in flight:
//!
//! * its **recv**: a multishot recv, [`Arm::Armed`] while the state reads
//!   (`Open`, `FinWait`); when the state stops reading (`Paused`, closing)
//!   it is cancelled ([`Arm::Cancelling`]) and counts as in flight until its
//!   last completion, which may bring bytes still;
//! * its **send**: at most one, so that bytes leave in order; replies made
//!   while it is in flight queue behind it (`queued`);
//! * its **cancels**: each cancel is an operation too, with a completion.
//!
//! [`Connection::drive`] is the one place that compares what the state
//! wants with what is in flight and submits the difference (arm the recv,
//! cancel it, lend the next send, cancel everything once closed). A
//! connection is **finished**, and its slot may be reused, only when it is
//! closed *and* nothing is in flight: until then the kernel may still hand
//! back a completion for it, or still hold its buffer.
//!
//! # Who owns the bytes
//! A received buffer belongs to the provided ring, and goes back to it as
//! soon as its reply has been made: the reply is copied into a buffer of
//! the connection's own (from the proactor's pool), which is lent to the
//! kernel for the send and comes back with its completion. So a peer that
//! never reads holds none of the shared ring, only its own bytes owed, and
//! those are bounded as in the reactor: past `--max-pending` the state
//! pauses, the recv is cancelled, and what a cancel lets through (at most
//! what the kernel had received) is the only excess.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::{debug, log_enabled, trace, warn};

use super::ring::{Outcome, ProvidedBuf, Ring};
use super::user_data::{Op, UserData};
use crate::close::CloseReason;
use crate::reactor::connection::LINGER;
use crate::reactor::deadlines::{Clock, Tick};
use crate::reactor::owed::HeldBytes;
use crate::reactor::state::{Action, Input, State};
use crate::service::{Service, StreamTransform};
use crate::stats::Stats;

#[cfg(test)]
mod tests;

/// Where a connection's recv is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    /// Not in the kernel.
    Idle,
    /// A multishot recv is armed.
    Armed,
    /// Asked to cancel; its last completion has not come yet.
    Cancelling,
}

/// What the connections share, lent to the one a completion is for.
#[derive(Debug)]
pub struct Ctx {
    /// What to do with the bytes.
    pub service: Service,
    /// The one buffer for replies that cannot be made in place (upper).
    pub reply: Vec<u8>,
    /// The counters.
    pub stats: Stats,
    /// The moment of this batch, as a connection's clock counts it.
    pub tick: Tick,
    /// Owed bytes above which a connection stops receiving.
    pub max_pending: usize,
    /// Buffers to lend for sends, reused.
    pub pool: BufferPool,
    /// Multishot recvs armed again after they ended (no `F_MORE`).
    pub rearms: u64,
    /// Whether the kernel takes a byte limit on a multishot recv.
    pub recv_limits: bool,
    /// The bytes owed over all connections, and their peak: the
    /// reactor's count (`reactor/owed.rs`), kept the same way, so that a
    /// subsided peak is given back to the system.
    pub held: HeldBytes,
    /// Whether `RUST_LOG` enables trace, decided once per turn (as the
    /// reactor's `Ctx::tracing`): the per-message trace lines test this
    /// plain flag, not the logger.
    pub tracing: bool,
}

/// Send buffers, kept for reuse: a message's reply goes into one, the kernel
/// borrows it, and its completion brings it back here.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    /// Buffers kept at most (the rest are freed).
    const KEEP: usize = 1024;
    /// The largest buffer kept: a reply's usual size. A larger one (a
    /// queue grown behind a slow peer) is freed, not hoarded, so the pool
    /// holds at most 4 MiB.
    const KEEP_CAPACITY: usize = 4096;

    /// An empty buffer.
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// A buffer back, emptied.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < Self::KEEP && buf.capacity() <= Self::KEEP_CAPACITY {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Frees every buffer kept. After a peak of owed bytes has subsided the
    /// pool may hold up to 4 MiB that the quiet server no longer needs; the
    /// next replies take fresh buffers and fill it again as far as the load
    /// asks.
    pub fn release(&mut self) {
        self.free = Vec::new();
    }
}

/// One accepted connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    generation: u32,
    state: State,
    transform: StreamTransform,
    recv: Arm,
    /// Bytes of the send in flight not yet reported sent (0: none in flight).
    sending: u32,
    /// Cancels in flight.
    cancels: u8,
    /// A cancel of everything has been asked for (closing).
    cancelled_all: bool,
    /// Replies not yet lent to the kernel, in order (see [`Queue`]).
    queued: Queue,
    /// The last time bytes moved (or our FIN went out, in `FinWait`).
    last_active: Tick,
}

/// The most a `Connection` may take: 40 bytes (a 4-byte socket, the 4-byte
/// generation, the 2-byte state, the transform's 5, the recv's 1, 4 bytes of
/// the send in flight, 2 of cancels, the queue's 8-byte pointer, a 4-byte
/// tick, and padding), so that an idle connection costs the proactor about
/// its slab slot (`tests::an_idle_connection_fits_its_budget` measures it).
const MAX_CONNECTION_SIZE: usize = 40;
const _: () = assert!(std::mem::size_of::<Connection>() <= MAX_CONNECTION_SIZE);

impl Connection {
    /// A connection in the `Open` state, accepted at `now`; nothing in
    /// flight yet (the first [`Connection::drive`] arms its recv).
    pub fn new(stream: TcpStream, generation: u32, transform: StreamTransform, now: Tick) -> Self {
        Connection {
            stream,
            generation,
            state: State::Open,
            transform,
            recv: Arm::Idle,
            sending: 0,
            cancels: 0,
            cancelled_all: false,
            queued: Queue::default(),
            last_active: now,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The generation of the slot this connection holds.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Bytes owed to the peer: the send in flight and those queued.
    pub fn owed(&self) -> usize {
        self.sending as usize + self.queued.len()
    }

    /// Closed, and nothing of it is left in the kernel: the slot may go.
    pub fn is_finished(&self) -> bool {
        self.state.is_closed() && self.recv == Arm::Idle && self.sending == 0 && self.cancels == 0
    }

    fn token(&self, op: Op, slot: usize) -> UserData {
        UserData::new(op, slot as u32, self.generation)
    }

    /// A completion of one of this connection's operations.
    ///
    /// # Errors
    /// Only if the ring cannot take a new entry (the loop stops).
    pub fn on_completion(
        &mut self,
        slot: usize,
        op: Op,
        outcome: Outcome,
        more: bool,
        ctx: &mut Ctx,
        ring: &mut Ring,
    ) -> io::Result<()> {
        match op {
            Op::Recv => {
                if !more {
                    self.recv = Arm::Idle;
                }
                self.on_recv(slot, outcome, ctx, ring)?;
            }
            Op::Send => self.on_sent(slot, outcome, ctx, ring)?,
            Op::Cancel => self.cancels = self.cancels.saturating_sub(1),
            _ => debug!("conn={slot} unexpected completion {op:?}"),
        }
        self.drive(slot, ctx, ring)
    }

    /// A recv completion: bytes (in a provided buffer), end of stream, or
    /// an error. Every provided buffer goes back to the ring here.
    fn on_recv(
        &mut self,
        slot: usize,
        outcome: Outcome,
        ctx: &mut Ctx,
        ring: &mut Ring,
    ) -> io::Result<()> {
        ctx.stats.reads += 1;
        match outcome {
            Outcome::Received(buf) if buf.is_empty() => {
                ring.recycle(buf);
                self.on_eof(slot, ctx);
            }
            Outcome::Received(buf) => self.on_bytes(slot, buf, ctx, ring),
            Outcome::Done(0) => self.on_eof(slot, ctx),
            Outcome::Done(_) => {}
            // The provided ring ran dry in this batch: not an error. The
            // recv has ended; `drive` arms it again, after this batch's
            // buffers have gone back.
            Outcome::Failed(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                ctx.stats.reads_wouldblock += 1;
                trace!("conn={slot} recv found no provided buffer; re-armed");
            }
            // We cancelled it (backpressure, closing).
            Outcome::Failed(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
            // This kernel has no multishot byte limit: arm without it from
            // now on (backpressure then rests on the cancel alone).
            Outcome::Failed(e) if e.raw_os_error() == Some(libc::EINVAL) && ctx.recv_limits => {
                warn!(
                    "this kernel has no multishot recv byte limit (Linux 6.16+): a peer that does not read may make the server owe it more than --max-pending before the cancel lands"
                );
                ctx.recv_limits = false;
            }
            Outcome::Failed(e) => self.fail(slot, &e, ctx),
            other => debug!("conn={slot} unexpected recv outcome {other:?}"),
        }
        Ok(())
    }

    /// Bytes received: the reply is made and owed, or, once the state no
    /// longer takes requests, the bytes are only counted (read to reach the
    /// peer's FIN, as the reactor's `FinWait` does).
    fn on_bytes(&mut self, slot: usize, buf: ProvidedBuf, ctx: &mut Ctx, ring: &mut Ring) {
        let n = buf.len();
        ctx.stats.bytes_in += n as u64;
        self.last_active = ctx.tick;
        if !matches!(self.state, State::Open | State::Paused) {
            if ctx.tracing {
                trace!(
                    "conn={slot} received {n} bytes in {}; discarded",
                    self.state
                );
            }
            ring.recycle(buf);
            return;
        }
        if ctx.tracing {
            trace!("conn={slot} received {n} bytes");
        }
        let input = ring.bytes_mut(&buf);
        let reply = ctx
            .service
            .on_bytes(&mut self.transform, input, &mut ctx.reply);
        let is_final = reply.is_final;
        ctx.held.grew(reply.bytes.len());
        self.queued.owe(reply.bytes, &mut ctx.pool);
        // The reply is copied out: the provided buffer goes back at once.
        ring.recycle(buf);
        let owed = self.owed();
        let input = if is_final {
            Input::LastReply { owed }
        } else {
            Input::Received { owed }
        };
        self.set_state(slot, input, ctx);
    }

    /// The peer's FIN: the transform's tail (an incomplete UTF-8 sequence)
    /// is owed too.
    fn on_eof(&mut self, slot: usize, ctx: &mut Ctx) {
        trace!("conn={slot} received EOF");
        if self.state != State::FinWait {
            let tail = ctx.service.on_eof(&mut self.transform, &mut ctx.reply);
            ctx.held.grew(tail.len());
            self.queued.owe(tail, &mut ctx.pool);
        }
        self.set_state(slot, Input::Eof { owed: self.owed() }, ctx);
    }

    /// A send completion: its buffer is back. Bytes the kernel did not take
    /// are sent again from where it stopped; a finished buffer goes back to
    /// the pool.
    fn on_sent(
        &mut self,
        slot: usize,
        outcome: Outcome,
        ctx: &mut Ctx,
        ring: &mut Ring,
    ) -> io::Result<()> {
        let Outcome::Sent { result, buf } = outcome else {
            debug!("conn={slot} unexpected send outcome {outcome:?}");
            self.sending = 0;
            return Ok(());
        };
        match result {
            Ok(n) => {
                ctx.stats.bytes_out += n as u64;
                ctx.held.freed(n);
                if n > 0 {
                    self.last_active = ctx.tick;
                }
                self.sending = self.sending.saturating_sub(n as u32);
                if self.sending > 0 && !self.state.is_closed() {
                    // A short send: the rest of the same buffer, in order,
                    // before anything queued.
                    ctx.stats.writes += 1;
                    let start = buf.len() - self.sending as usize;
                    let fd = self.stream.as_raw_fd();
                    return ring.send(fd, self.token(Op::Send, slot), buf, start);
                }
                self.sending = 0;
                ctx.pool.give(buf);
                self.set_state(slot, Input::Written { owed: self.owed() }, ctx);
            }
            Err(e) => {
                ctx.held.freed(self.sending as usize);
                self.sending = 0;
                ctx.pool.give(buf);
                if e.raw_os_error() != Some(libc::ECANCELED) {
                    self.fail(slot, &e, ctx);
                }
            }
        }
        Ok(())
    }

    /// The one place that compares what the state wants with what is in
    /// flight, and submits the difference.
    ///
    /// # Errors
    /// Only if the ring cannot take a new entry.
    pub fn drive(&mut self, slot: usize, ctx: &mut Ctx, ring: &mut Ring) -> io::Result<()> {
        let fd = self.stream.as_raw_fd();
        if self.state.is_closed() {
            // Closed: whatever is still in the kernel is cancelled, once;
            // the slot is freed when the last completion is in.
            let in_kernel = self.recv != Arm::Idle || self.sending > 0;
            if in_kernel && !self.cancelled_all {
                self.cancelled_all = true;
                self.cancels += 1;
                ring.cancel_all_on(fd, self.token(Op::Cancel, slot))?;
            }
            return Ok(());
        }
        match (self.state.is_reading(), self.recv) {
            (true, Arm::Idle) => {
                // The most the kernel may deliver before this recv ends: one
                // byte past the bound, so that reaching it pauses the state
                // as in the reactor (owed > max_pending), and never more.
                // (`FinWait` discards what it reads: no bound needed.)
                let limit = (self.state == State::Open && ctx.recv_limits)
                    .then(|| (ctx.max_pending + 1).saturating_sub(self.owed()))
                    .map(|allowed| allowed.clamp(1, u32::MAX as usize) as u32);
                ring.recv_multishot(fd, self.token(Op::Recv, slot), limit)?;
                self.recv = Arm::Armed;
                ctx.rearms += 1;
            }
            (false, Arm::Armed) => {
                // Backpressure (Paused), or no more requests: stop the
                // kernel from receiving for us. Bytes it already took may
                // still come, in the recv's last completions.
                self.recv = Arm::Cancelling;
                self.cancels += 1;
                let recv = self.token(Op::Recv, slot);
                ring.cancel(recv, self.token(Op::Cancel, slot))?;
            }
            _ => {}
        }
        if self.sending == 0 && !self.queued.is_empty() {
            // The queue itself is lent: no copy, and the connection keeps
            // no buffer while the kernel has it.
            let buf = self.queued.take();
            self.sending = buf.len() as u32;
            ctx.stats.writes += 1;
            ring.send(fd, self.token(Op::Send, slot), buf, 0)?;
        }
        Ok(())
    }

    /// The server is shutting down: finish what is owed, then FIN.
    pub fn begin_shutdown(&mut self, slot: usize, ctx: &mut Ctx) {
        self.set_state(slot, Input::ShutdownBegun { owed: self.owed() }, ctx);
    }

    /// The next idle or linger deadline, seen from `now` (as the reactor's).
    pub fn deadline(
        &self,
        idle_timeout: Option<Duration>,
        clock: &Clock,
        now: Instant,
    ) -> Option<Instant> {
        let wait = match self.state {
            State::Closed(_) => return None,
            State::FinWait => LINGER,
            _ => idle_timeout?,
        };
        Some(clock.latest(self.last_active, now) + wait)
    }

    /// Its deadline passed: the linger is over (`FinWait`), or it was idle
    /// too long.
    pub fn on_timer(&mut self, slot: usize, ctx: &mut Ctx) {
        let input = if self.state == State::FinWait {
            Input::LingerExpired
        } else {
            Input::IdleExpired
        };
        self.set_state(slot, input, ctx);
    }

    fn fail(&mut self, slot: usize, err: &io::Error, ctx: &mut Ctx) {
        if CloseReason::is_peer_reset(err) {
            debug!("conn={slot} reset by peer: {err}");
        } else {
            debug!("conn={slot} I/O error: {err}");
        }
        self.set_state(slot, Input::Failed(CloseReason::Reset), ctx);
    }

    /// The one place the state changes, as in the reactor's connection:
    /// the pure `next`, then the transition's action. Inline, so that the
    /// common case (another message in `Open`, no change) costs only the
    /// pure `next` and one comparison.
    #[inline(always)]
    fn set_state(&mut self, slot: usize, input: Input, ctx: &mut Ctx) {
        let next = self.state.next(input, ctx.max_pending);
        if next != self.state {
            self.change_state(slot, next, input, ctx);
        }
    }

    /// `set_state` when the state does change.
    #[inline(never)]
    fn change_state(&mut self, slot: usize, next: State, input: Input, ctx: &mut Ctx) {
        if log_enabled!(log::Level::Trace) {
            trace!("conn={slot} state {}=>{next} on {input:?}", self.state);
        }
        let action = self.state.action(next);
        self.state = next;
        match action {
            Action::None => {}
            Action::SendFinAndLinger => {
                self.shutdown_write(slot);
                self.last_active = ctx.tick;
            }
            Action::SendFinAndClose => {
                self.shutdown_write(slot);
                self.closed(slot, ctx);
            }
            Action::Close => self.closed(slot, ctx),
        }
    }

    /// Counts the close. Owed bytes can no longer be delivered; the
    /// descriptor closes when the slot is freed (nothing in flight).
    fn closed(&mut self, slot: usize, ctx: &mut Ctx) {
        let State::Closed(reason) = self.state else {
            return;
        };
        ctx.held.freed(self.queued.len());
        ctx.pool.give(self.queued.take());
        ctx.stats.closed(reason);
        debug!("conn={slot} closed: {reason}");
    }

    /// Our FIN, sent at once with `shutdown(2)`: once per connection, so a
    /// plain syscall, not an operation to track.
    fn shutdown_write(&mut self, slot: usize) {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            debug!("conn={slot} shutdown(Write) failed: {e}");
        }
    }
}

/// Replies made and not yet lent to the kernel, in order: 8 bytes of a
/// connection, null until its first reply (an idle connection owns no
/// buffer and no box). The box then stays with the connection, so that a
/// reply costs no allocation: the bytes go into a buffer from the pool, and
/// the buffer itself is what the send lends the kernel.
#[derive(Debug, Default)]
// The box is the point: 8 bytes in every connection where a `Vec` takes 24,
// the extra allocation made once per connection that ever replies.
#[allow(clippy::box_collection)]
struct Queue(Option<Box<Vec<u8>>>);

impl Queue {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Owes `bytes` to the peer, behind what is already owed: the one copy
    /// of a reply, out of the provided buffer (or the transform's output)
    /// into a buffer of the connection's own, taken from the pool when it
    /// had none.
    fn owe(&mut self, bytes: &[u8], pool: &mut BufferPool) {
        if bytes.is_empty() {
            return;
        }
        let queued = self.0.get_or_insert_with(Box::default);
        if queued.capacity() == 0 {
            **queued = pool.take();
        }
        queued.extend_from_slice(bytes);
    }

    /// The queued bytes' buffer, to lend (the queue is left empty, with no
    /// buffer).
    fn take(&mut self) -> Vec<u8> {
        self.0
            .as_mut()
            .map(|q| std::mem::take(&mut **q))
            .unwrap_or_default()
    }
}
