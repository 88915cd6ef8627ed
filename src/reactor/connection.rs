//! One TCP connection: its socket, its state, and the bytes still owed to it.
//!
//! The reactor calls [`Connection::on_readable`] and
//! [`Connection::on_writable`] when epoll reports readiness. They do the
//! reads and writes, turn each result into an [`Input`], and hand it to
//! `Connection::set_state`, the only place the state changes (so a
//! `RUST_LOG=trace` log shows every transition) and the one place the
//! state table's [`Action`]s are carried out. Each handler reports what
//! happened as a [`Turn`]; the reactor acts on it (removal after the batch,
//! another turn when the read budget ran out), so the loop's rules stay in
//! `reactor.rs`.
//!
//! # Memory
//! An idle connection owns no buffer at all. Reads go into the reactor's one
//! scratch buffer, lent through [`Ctx`]; replies are written straight from it.
//! Only when the kernel takes part of a reply does the remainder move into
//! [`Owed`], one pointer that is null again once flushed. The connection
//! remembers its last activity as a 4-byte [`Tick`], not a 16-byte
//! `Instant`. Its size is pinned by a compile-time assertion below.
//!
//! # Why every method takes `key`
//! A connection does not know its own slab key: the 24 bytes it is pinned
//! at hold the socket, the state, the transform, the owed pointer, the tick
//! and the EOF hint, with one byte to spare, and even a 4-byte key would
//! round it up to 32 (a third more per idle connection). The key is what
//! names a connection in the logs (`conn=7`, the number a `grep` follows
//! through its life), so the reactor hands it in with every call and the
//! methods pass it on. It is used for log lines only, never to decide
//! anything. (Keeping it in [`Ctx`] instead, set by the reactor before each
//! call, would save the parameter but hide an input that must be right for
//! every call: a store per event to make the code less plain.)

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use log::{debug, trace};
use mio::net::TcpStream;

use super::ctx::Ctx;
use super::deadlines::{Clock, Tick};
use super::hot_trace::hot_trace;
use super::owed::{HeldBytes, Owed};
use super::state::{Action, Input, State};
use super::turn::Turn;
use crate::close::CloseReason;
use crate::service::StreamTransform;
use crate::stats::Stats;
use crate::syscall::{self, Received, Sent};

#[cfg(test)]
mod tests;

/// How many reads one connection may do per readiness event before the
/// others get their turn. Without a cap, a peer that sends as fast as we echo
/// would keep the loop in its read loop forever (redis caps writes per event
/// for the same reason). 16 reads of 64 KiB is 1 MiB per turn.
const READ_BUDGET: usize = 16;

/// How long a connection waits for the peer's FIN after sending its own
/// (greet, shutdown) before closing anyway.
pub const LINGER: Duration = Duration::from_secs(1);

/// Linux only: a read that returns less than the buffer proves the socket
/// was drained at that moment, so the loop stops there instead of making one
/// more `read` that would only return `EAGAIN`: up to nearly one syscall per
/// message saved (the anchors table, `docs/benchmarks/anchors.md`: on 100
/// connections the C server makes [2.929](../../docs/benchmarks/anchors.md "epoll_echo") per message
/// reading until `EAGAIN`, and
/// [2.010](../../docs/benchmarks/anchors.md "epoll_echo --short-read") with this rule, as the reactor
/// does, [2.010](../../docs/benchmarks/anchors.md "reactor-echo serve"); on 1,000 connections the
/// extra `read` came on fewer messages,
/// [2.293](../../docs/benchmarks/anchors.md "epoll_echo") against
/// [2.002](../../docs/benchmarks/anchors.md "epoll_echo --short-read")).
///
/// Why it is safe on Linux: edge-triggered epoll queues a new event for
/// every arrival after our read, not only for the empty-to-non-empty
/// change, so bytes that come later are reported again (the primer,
/// `docs/event-loops.md`, reconciles this with "no new event for bytes
/// already there"). epoll(7) says as
/// much for stream sockets (Q9: "if you call read(2) by asking to read a
/// certain amount of data and read(2) returns a lower number of bytes, you
/// can be sure of having exhausted the read I/O space"). The exception is a
/// FIN that arrived before the read: it raised its event already, so when
/// the event says `read_closed` (or `error`) the loop reads on until `read`
/// itself returns 0 or the error.
///
/// Elsewhere the constant is false and the loop keeps mio's portable
/// contract, "read until `WouldBlock`": mio promises no more than that, and
/// other systems' notification (kqueue's) is not documented to fire for
/// every arrival the way epoll(7) describes. The portable path costs that
/// one extra `read` per wake-up of a connection.
const SHORT_READ_MEANS_DRAINED: bool = cfg!(target_os = "linux");

/// One accepted TCP connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    state: State,
    transform: StreamTransform,
    /// Bytes of replies the kernel has not taken yet: nothing, with no
    /// allocation, almost always.
    owed: Owed,
    /// The last time bytes moved either way (or, in `FinWait`, when our FIN
    /// was sent): the idle and linger deadlines are measured from it.
    last_active: Tick,
    /// epoll's hint that the peer's FIN (or an error) has arrived: an event
    /// said `read_closed` or `error`. Kept, not passed along, so that every
    /// read loop honours it (a resume from `Paused`, another turn after the
    /// budget): such a FIN raises no further event, so a loop that knows of
    /// it reads on past a short read until `read` gives the verdict.
    peer_fin_hinted: bool,
}

/// The most a `Connection` may take: 24 bytes in a release build (a 4-byte
/// socket, a 1-byte state, a 5-byte transform, an 8-byte pointer to what is
/// owed, a 4-byte tick, the 1-byte hint, and one byte of padding: no room
/// for its own key, which the methods take instead). Debug builds of mio
/// add 12 bytes of checks to every socket. The slab slot is no bigger
/// (`tests.rs`), so an idle connection costs the server about this much.
const MAX_CONNECTION_SIZE: usize = if cfg!(debug_assertions) { 40 } else { 24 };
const _: () = assert!(std::mem::size_of::<Connection>() <= MAX_CONNECTION_SIZE);

impl Connection {
    /// A connection in the `Open` state, accepted at `now`.
    pub fn new(stream: TcpStream, transform: StreamTransform, now: Tick) -> Self {
        Connection {
            stream,
            state: State::Open,
            transform,
            owed: Owed::default(),
            last_active: now,
            peer_fin_hinted: false,
        }
    }

    /// Notes epoll's hint that the peer's FIN or an error has arrived (see
    /// `peer_fin_hinted`). A hint, not a verdict: the verdict comes from
    /// `read` returning 0 or an error.
    pub fn hint_peer_fin(&mut self) {
        self.peer_fin_hinted = true;
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Bytes owed to the peer.
    pub fn owed(&self) -> usize {
        self.owed.len()
    }

    /// Reads what the socket holds, in the way the state calls for: `Open`
    /// replies to it, `FinWait` reads only to reach the peer's FIN, and the
    /// other states do not read (a paused connection's input waits in the
    /// kernel, which is the backpressure).
    pub fn on_readable(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        match self.state {
            State::Open => self.read_and_reply(key, ctx),
            State::FinWait => self.read_and_discard(key, ctx),
            _ => self.turn(),
        }
    }

    /// `Open`: reads until the socket is drained (or the read budget is
    /// used), and sends the reply to each chunk as it is read.
    ///
    /// After a short read the loop stops (Linux: see
    /// `SHORT_READ_MEANS_DRAINED`) unless the peer's FIN was hinted; then
    /// it reads on until `recv` itself reports it, since no further event
    /// will come for it.
    fn read_and_reply(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        for _ in 0..READ_BUDGET {
            ctx.stats.reads += 1;
            let n = match syscall::recv(&self.stream, &mut ctx.scratch) {
                Received::Bytes(n) => n,
                // Events are hints: a spurious readable event reads nothing.
                Received::WouldBlock => {
                    ctx.stats.reads_wouldblock += 1;
                    return Turn::DONE;
                }
                Received::Eof => return self.on_eof(key, ctx),
                Received::Failed(e) => return self.fail(key, &e, ctx),
            };
            hot_trace!(ctx.tracing, "conn={key} read {n} bytes");
            ctx.stats.bytes_in += n as u64;
            self.last_active = ctx.tick;
            let reply =
                ctx.service
                    .on_bytes(&mut self.transform, &mut ctx.scratch[..n], &mut ctx.reply);
            let is_final = reply.is_final;
            if let Err(e) = self.send(key, reply.bytes, &mut ctx.stats, &mut ctx.held) {
                return self.fail(key, &e, ctx);
            }
            let owed = self.owed();
            let input = if is_final {
                Input::LastReply { owed }
            } else {
                Input::Received { owed }
            };
            self.set_state(key, input, ctx);
            match self.state {
                State::Open => {}
                // The last reply is out: what follows is only read to its end.
                State::FinWait => return self.read_and_discard(key, ctx),
                // Paused, finishing or closed: this turn is over.
                _ => return self.turn(),
            }
            if SHORT_READ_MEANS_DRAINED && n < ctx.scratch.len() && !self.peer_fin_hinted {
                return Turn::DONE;
            }
        }
        self.budget_used(key, ctx)
    }

    /// `FinWait`: our FIN is out, and input is read only so that closing
    /// cannot reset (closing a socket with unread input sends RST, which
    /// throws away the replies still in our send buffer, on their way to
    /// the peer). Reads until the peer's FIN, which ends the connection, or
    /// until the socket is drained.
    fn read_and_discard(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        for _ in 0..READ_BUDGET {
            ctx.stats.reads += 1;
            let n = match syscall::recv(&self.stream, &mut ctx.scratch) {
                Received::Bytes(n) => n,
                Received::WouldBlock => {
                    ctx.stats.reads_wouldblock += 1;
                    return self.turn();
                }
                Received::Eof => return self.on_eof(key, ctx),
                Received::Failed(e) => return self.fail(key, &e, ctx),
            };
            hot_trace!(
                ctx.tracing,
                "conn={key} read {n} bytes after our FIN; discarded"
            );
            ctx.stats.bytes_in += n as u64;
            if SHORT_READ_MEANS_DRAINED && n < ctx.scratch.len() && !self.peer_fin_hinted {
                return self.turn();
            }
        }
        self.budget_used(key, ctx)
    }

    /// The read budget ran out with input possibly still waiting, and epoll
    /// will not say so again: the reactor must come back.
    fn budget_used(&self, key: usize, ctx: &Ctx) -> Turn {
        hot_trace!(ctx.tracing, "conn={key} read budget used; will read again");
        Turn::READ_AGAIN.then(self.turn())
    }

    /// Writes what is owed. If that lets the connection read again (a paused
    /// one resumes, a finishing one reaches `FinWait`), reads at once: the
    /// input that was left in the socket will not raise a new event.
    #[inline]
    pub fn on_writable(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        if self.owed.is_empty() || self.state.is_closed() {
            // Writable with nothing owed: the common case, since every
            // readable event also reports writable (epoll hands over the
            // socket's whole readiness, and the send buffer has room), so
            // it stays inline. (A connection closed earlier in the batch
            // has reported it.)
            return Turn::DONE;
        }
        self.flush_and_resume(key, ctx)
    }

    /// `on_writable` with something owed.
    fn flush_and_resume(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        let before = self.owed();
        if let Err(e) = self.flush_owed(key, &mut ctx.stats, &mut ctx.held) {
            return self.fail(key, &e, ctx);
        }
        if self.owed() < before {
            self.last_active = ctx.tick;
        }
        let was_reading = self.state.is_reading();
        self.set_state(key, Input::Written { owed: self.owed() }, ctx);
        if !was_reading && self.state.is_reading() {
            return self.on_readable(key, ctx);
        }
        self.turn()
    }

    /// The server is shutting down: finish what is owed, then FIN (see
    /// [`Input::ShutdownBegun`]).
    pub fn begin_shutdown(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        self.set_state(key, Input::ShutdownBegun { owed: self.owed() }, ctx);
        self.turn()
    }

    /// The next idle or linger deadline of this connection, if it has one,
    /// seen from `now` (never early: see [`Clock::latest`]).
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

    /// Its deadline (from [`Connection::deadline`]) has passed: in `FinWait`
    /// the linger is over, in any other state the connection was idle too
    /// long.
    pub fn on_timer(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        let input = if self.state == State::FinWait {
            Input::LingerExpired
        } else {
            Input::IdleExpired
        };
        self.set_state(key, input, ctx);
        self.turn()
    }

    /// What the state leaves for the reactor at the end of a turn.
    #[inline]
    fn turn(&self) -> Turn {
        match self.state {
            State::FinWait => Turn::LINGERING,
            State::Closed(_) => Turn::CLOSED,
            _ => Turn::DONE,
        }
    }

    /// The one place the state changes: logs the transition and carries out
    /// its action from the state table ([`State::action`]). Inline, so that
    /// the common case (another message in `Open`, no change) costs only
    /// the pure `next` and one comparison on the path of every message.
    #[inline(always)]
    fn set_state(&mut self, key: usize, input: Input, ctx: &mut Ctx) {
        let next = self.state.next(input, ctx.max_pending);
        if next != self.state {
            self.change_state(key, next, input, ctx);
        }
    }

    /// `set_state` when the state does change.
    #[inline(never)]
    fn change_state(&mut self, key: usize, next: State, input: Input, ctx: &mut Ctx) {
        trace!("conn={key} state {}=>{next} on {input:?}", self.state);
        let action = self.state.action(next);
        self.state = next;
        match action {
            Action::None => {}
            Action::SendFinAndLinger => {
                // Our FIN, queued behind every byte still in the send
                // buffer; the socket stays open for reading, and is closed
                // only once the peer's FIN is read (or the linger is over),
                // so that no unread input turns the close into an RST. The
                // peer reads the rest, sees EOF, and closes; the linger
                // deadline is measured from now.
                self.shutdown_write(key);
                self.last_active = ctx.tick;
            }
            Action::SendFinAndClose => {
                // The peer's FIN has arrived and nothing is owed: send ours
                // now, explicitly. The socket itself is closed only when
                // its slab slot is removed, after the batch.
                self.shutdown_write(key);
                self.close(key, ctx);
            }
            Action::Close => self.close(key, ctx),
        }
    }

    /// Counts the close; the owed bytes (if any) can no longer be delivered.
    /// The reactor removes the connection after this batch.
    fn close(&mut self, key: usize, ctx: &mut Ctx) {
        let State::Closed(reason) = self.state else {
            return;
        };
        self.owed.clear(&mut ctx.held);
        ctx.stats.closed(reason);
        debug!("conn={key} closed: {reason}");
    }

    fn on_eof(&mut self, key: usize, ctx: &mut Ctx) -> Turn {
        trace!("conn={key} read EOF");
        if self.state != State::FinWait {
            // The transform may hold an incomplete UTF-8 tail: it is owed too.
            let tail = ctx.service.on_eof(&mut self.transform, &mut ctx.reply);
            if let Err(e) = self.send(key, tail, &mut ctx.stats, &mut ctx.held) {
                return self.fail(key, &e, ctx);
            }
        }
        self.set_state(key, Input::Eof { owed: self.owed() }, ctx);
        self.turn()
    }

    fn fail(&mut self, key: usize, err: &io::Error, ctx: &mut Ctx) -> Turn {
        if CloseReason::is_peer_reset(err) {
            debug!("conn={key} reset by peer: {err}");
        } else {
            debug!("conn={key} I/O error: {err}");
        }
        // Every error on an established stream counts as a reset (close.rs).
        self.set_state(key, Input::Failed(CloseReason::Reset), ctx);
        self.turn()
    }

    fn shutdown_write(&mut self, key: usize) {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            // The peer may already be gone; closing will finish the job.
            debug!("conn={key} shutdown(Write) failed: {e}");
        }
    }

    /// Writes `bytes` after anything already owed. What the kernel does not
    /// take is kept in `owed`, the connection's only allocation.
    ///
    /// Inline, with the common case first: nothing owed, and the kernel
    /// takes the whole reply in one `send` (a reply is at most one read's
    /// worth, and the send buffer is far larger). Anything else, a partial
    /// write, a full buffer, an error, goes to `send_rest`.
    #[inline(always)]
    fn send(
        &mut self,
        key: usize,
        bytes: &[u8],
        stats: &mut Stats,
        held: &mut HeldBytes,
    ) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.owed.is_empty() {
            // Order matters: new bytes queue behind the old ones.
            self.owed.push(bytes, held);
            return self.flush_owed(key, stats, held);
        }
        stats.writes += 1;
        match syscall::send(&self.stream, bytes) {
            Sent::Bytes(n) if n == bytes.len() => {
                stats.bytes_out += n as u64;
                Ok(())
            }
            first => self.send_rest(key, bytes, first, stats, held),
        }
    }

    /// `send` when the first `send(2)` did not take everything: writes on
    /// until the kernel blocks, and keeps what it did not take in `owed`.
    #[inline(never)]
    fn send_rest(
        &mut self,
        key: usize,
        bytes: &[u8],
        first: Sent,
        stats: &mut Stats,
        held: &mut HeldBytes,
    ) -> io::Result<()> {
        let written = match first {
            Sent::Bytes(n) => {
                stats.bytes_out += n as u64;
                n + write_until_blocked(&self.stream, &bytes[n..], stats)?
            }
            Sent::WouldBlock => 0,
            Sent::Failed(e) => return Err(e),
        };
        trace!(
            "conn={key} partial write {written} of {} bytes",
            bytes.len()
        );
        self.owed.push(&bytes[written..], held);
        Ok(())
    }

    fn flush_owed(
        &mut self,
        key: usize,
        stats: &mut Stats,
        held: &mut HeldBytes,
    ) -> io::Result<()> {
        let written = write_until_blocked(&self.stream, self.owed.unsent(), stats)?;
        // Once all is written the block is freed: an idle connection owns
        // no memory.
        self.owed.consume(written, held);
        trace!(
            "conn={key} wrote {written} owed bytes, {} left",
            self.owed()
        );
        Ok(())
    }
}

/// Writes until everything is written or the socket would block; returns how
/// many bytes went out.
fn write_until_blocked(stream: &TcpStream, bytes: &[u8], stats: &mut Stats) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        stats.writes += 1;
        match syscall::send(stream, &bytes[written..]) {
            Sent::Bytes(n) => {
                written += n;
                stats.bytes_out += n as u64;
            }
            Sent::WouldBlock => break,
            Sent::Failed(e) => return Err(e),
        }
    }
    Ok(written)
}
