//! The proactor: one thread, one io_uring, every operation on it.
//!
//! The reactor ([`crate::reactor`]) asks the kernel "which sockets are
//! ready?" and then makes the calls itself: one `recv` and one `send` per
//! echoed message, each a trip into the kernel, plus a share of
//! `epoll_wait`. The proactor (POSA2's name for the completion pattern)
//! asks the kernel to *do* the operations, recv, send, accept, and is told
//! when each is done. Its loop submits every operation of a turn and
//! collects every completion of the turn in one `io_uring_enter`, so the
//! trips into the kernel per message fall far below one. The contract is
//! the reactor's, unchanged: the same flags, `listening` line, modes,
//! half-close, backpressure, limits, idle timeout, grace period and stats
//! line; each connection runs the reactor's own state machine
//! ([`crate::reactor::state`]).
//!
//! [`Proactor::run`] is the loop, in four phases, each a method:
//!
//! 1. **before enter** (`Proactor::before_enter`): free the slots whose
//!    connections are finished (closed, nothing in flight), arm a paused
//!    accept again, work out how long the wait may last;
//! 2. **enter** (`Ring::submit_and_wait`): one `io_uring_enter` submits
//!    everything queued in the last turn and waits for a completion or the
//!    next deadline;
//! 3. **complete** (`Proactor::complete`): each completion goes to the
//!    owner its token names ([`user_data`]); the owner moves its state on
//!    and queues the operations that follow (a reply's send, a recv armed
//!    again), which the next enter submits;
//! 4. **timers** (`Proactor::timers`): the grace period's end, idle and
//!    linger deadlines (the reactor's sweep, [`Sweeper`]), the periodic
//!    stats line.
//!
//! Timers use the wait's own timeout (`IORING_ENTER_EXT_ARG`) rather than
//! the ring's timeout operations: a timeout operation per connection would
//! need a cancel and a new submission on every message to move it, where
//! the sweep moves a deadline by writing 4 bytes; and one timed wait per
//! turn is what the reactor's `poll` timeout already is.
//!
//! What the completion model adds, and the modules that hold it:
//! [`ring`] (buffer ownership: the only `unsafe` in the crate),
//! [`user_data`] (the token table, with generations against late
//! completions), [`connection`] (the state machine with operations in
//! flight), [`listener`], [`udp`], [`signals`], [`stats`] (the stats line's own
//! counters). `docs/proactor.md` tells
//! the whole story, with what each choice cost or saved.

pub mod connection;
pub mod listener;
pub mod ring;
pub mod signals;
pub mod stats;
pub mod udp;
pub mod user_data;

use std::io;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use slab::Slab;

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::fd_limit;
use crate::listening::Listening;
use crate::net::{SocketCalls, Sockets};
use crate::reactor::deadlines::{Clock, Sweeper};
use crate::reactor::shutdown::GRACE_PERIOD;
use crate::source_limit::SourceLimit;
use crate::stats::Stats;
use crate::udp_guard::UdpGuard;
use connection::{BufferPool, Connection, Ctx};
use listener::Acceptor;
use ring::{Completion, Outcome, Ring, RingSize};
use signals::SignalPipe;
use udp::UdpEndpoint;
use user_data::{Op, UserData, next_generation};

pub use crate::reactor::Options;
pub use stats::ProactorStats;

/// The ring's sizes: room for a turn's submissions, completions for tens of
/// thousands of connections, and provided buffers shared by all of them.
pub const RING_SIZE: RingSize = RingSize {
    submissions: 4096,
    completions: 65_536,
    // 16 MiB in 64 KiB buffers, consumed incrementally: one buffer takes
    // many small messages one after another, and a bulk recv fills up to
    // 64 KiB at once (docs/proactor.md, "What each choice cost or saved").
    // Before Linux 6.16 (no recv byte limit to keep large buffers within
    // --max-pending), the same 16 MiB as 4,096 whole buffers of 4 KiB.
    buffers: 256,
    buffer_size: 65_536,
    incremental: true,
};

/// Runs the proactor server until SIGINT or SIGTERM, then prints the stats
/// line. This is `reactor-echo proactor`.
///
/// # Errors
/// A [`ServerError`] if io_uring is unavailable, a socket cannot be bound,
/// the signal handlers cannot be installed, or the ring fails.
pub fn serve(config: &ServerConfig) -> Result<ProactorStats, ServerError> {
    let limits = fd_limit::raise_to_hard_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| limits.default_max_connections());
    // The ring first: where io_uring is unavailable, that is the one thing
    // to say, before any address is taken.
    let ring = Ring::new(RING_SIZE).map_err(|e| {
        ServerError::new(
            "io_uring is unavailable here (an old kernel, kernel.io_uring_disabled, or a seccomp profile); `reactor-echo serve` runs the same server on epoll",
            e,
        )
    })?;
    let sockets = Sockets::bind(config, SocketCalls::Blocking)?;
    limits.log();
    info!("io_uring: {}; {}", ring.setup(), ring.buffers());
    let signals =
        SignalPipe::install().map_err(|e| ServerError::new("cannot install signal handlers", e))?;
    let options = Options::from_config(config, max_connections);
    let proactor = Proactor::new(ring, sockets, signals, options)
        .map_err(|e| ServerError::new("cannot arm the ring", e))?;
    config.log_service();
    proactor
        .listening()
        .and_then(|line| line.announce())
        .map_err(|e| ServerError::new("cannot announce the listening addresses", e))?;
    let stats = proactor.run(&mut print_stats)?;
    print_stats(&stats);
    info!("stopped");
    Ok(stats)
}

fn print_stats(stats: &ProactorStats) {
    if let Err(e) = stats.print_line() {
        warn!("cannot print the stats line: {e}");
    }
}

/// The proactor and everything it owns.
#[derive(Debug)]
pub struct Proactor {
    ring: Ring,
    acceptor: Option<Acceptor>,
    max_connections: usize,
    /// `--max-per-source`: connections held per source address.
    per_source: Option<SourceLimit>,
    udp: Option<UdpEndpoint>,
    signals: SignalPipe,
    conns: Slab<Connection>,
    /// Each slot's generation: bumped when its connection is freed, so a
    /// late completion can never reach the next one (see [`user_data`]).
    generations: Vec<u32>,
    ctx: Ctx,
    idle_timeout: Option<Duration>,
    sweeper: Sweeper,
    clock: Clock,
    /// Slots whose connection reported itself finished in this batch.
    finished: Vec<usize>,
    /// The grace period's end, once a signal came.
    grace_until: Option<Instant>,
    stats_interval: Option<Duration>,
    next_stats: Option<Instant>,
    /// The most completions one enter brought.
    max_batch: u64,
}

impl Proactor {
    /// Arms the first operations: the multishot accept, the UDP receive, the
    /// signal pipe's poll.
    ///
    /// # Errors
    /// If the ring cannot take the entries.
    pub fn new(
        mut ring: Ring,
        sockets: Sockets,
        signals: SignalPipe,
        options: Options,
    ) -> io::Result<Proactor> {
        let acceptor = sockets
            .tcp
            .map(|listener| Acceptor::new(listener, &mut ring))
            .transpose()?;
        let udp = match sockets.udp {
            Some(socket) => {
                let guard = UdpGuard::new(&options.guards, socket.local_addr()?, Instant::now());
                Some(UdpEndpoint::new(socket, guard, &mut ring)?)
            }
            None => None,
        };
        ring.poll_readable(signals.fd(), UserData::new(Op::Signal, 0, 0))?;
        let started = Instant::now();
        let clock = Clock::starting_at(started);
        Ok(Proactor {
            ring,
            acceptor,
            max_connections: options.max_connections,
            per_source: options.guards.max_per_source.map(SourceLimit::new),
            udp,
            signals,
            conns: Slab::new(),
            generations: Vec::new(),
            ctx: Ctx {
                service: options.service,
                reply: Vec::new(),
                stats: Stats::default(),
                tick: clock.tick(started),
                max_pending: options.max_pending,
                pool: BufferPool::default(),
                rearms: 0,
                recv_limits: true,
                held: crate::reactor::owed::HeldBytes::default(),
                tracing: log::log_enabled!(log::Level::Trace),
            },
            idle_timeout: options.idle_timeout,
            sweeper: Sweeper::default(),
            clock,
            finished: Vec::new(),
            grace_until: None,
            stats_interval: options.stats_interval,
            next_stats: options.stats_interval.map(|every| started + every),
            max_batch: 0,
        })
    }

    /// The addresses, for the `listening` line.
    ///
    /// # Errors
    /// If an address cannot be read back.
    pub fn listening(&self) -> io::Result<Listening> {
        Ok(Listening {
            tcp: self
                .acceptor
                .as_ref()
                .map(Acceptor::local_addr)
                .transpose()?,
            udp: self.udp.as_ref().map(UdpEndpoint::local_addr).transpose()?,
        })
    }

    /// The loop, until a signal's grace period is over (or every connection
    /// has finished within it). `report` gets the counters every
    /// `stats_interval`; the final ones are returned.
    ///
    /// # Errors
    /// Only if the ring fails.
    pub fn run(
        mut self,
        report: &mut dyn FnMut(&ProactorStats),
    ) -> Result<ProactorStats, ServerError> {
        let mut batch: Vec<Completion> = Vec::new();
        let mut now = Instant::now();
        loop {
            let timeout = self
                .before_enter(now)
                .map_err(|e| ServerError::new("the ring failed", e))?;
            self.ring
                .submit_and_wait(timeout)
                .map_err(|e| ServerError::new("io_uring_enter failed", e))?;
            now = Instant::now();
            self.ctx.tick = self.clock.tick(now);
            self.ctx.tracing = log::log_enabled!(log::Level::Trace);
            self.ring.reap(&mut batch);
            self.max_batch = self.max_batch.max(batch.len() as u64);
            for completion in batch.drain(..) {
                self.complete(completion, now)
                    .map_err(|e| ServerError::new("the ring failed", e))?;
            }
            if self.timers(now, report) {
                return Ok(self.stats());
            }
        }
    }

    /// The counters as the stats line prints them.
    pub fn stats(&self) -> ProactorStats {
        let ring = self.ring.counters();
        let mut stats = self.ctx.stats;
        stats.wakeups = ring.enters;
        stats.events = ring.completions;
        stats.max_batch = self.max_batch;
        ProactorStats {
            stats,
            submissions: ring.submissions,
            rearms: self.ctx.rearms,
        }
    }

    /// Phase 1: free finished slots, resume a paused accept, and choose how
    /// long the enter may wait.
    fn before_enter(&mut self, now: Instant) -> io::Result<Option<Duration>> {
        let freed = !self.finished.is_empty();
        for slot in self.finished.drain(..) {
            if self.conns.get(slot).is_some_and(Connection::is_finished) {
                // Dropping the connection closes its descriptor: nothing in
                // the kernel refers to it any more.
                self.conns.remove(slot);
                self.generations[slot] = next_generation(self.generations[slot]);
                if let Some(limit) = self.per_source.as_mut() {
                    limit.release(slot);
                }
            }
        }
        if let Some(acceptor) = self.acceptor.as_mut() {
            acceptor.resume_if(freed, now, &mut self.ring)?;
        }
        if self.ctx.held.take_subsided_peak() {
            // Peers that did not read made us hold megabytes; those buffers
            // are freed now, and so are the pool's (up to 4 MiB kept through
            // the peak); this hands the pages back.
            self.ctx.pool.release();
            crate::allocator::give_back_free_memory();
        }
        let wake = [
            self.sweeper.next(),
            self.next_stats,
            self.grace_until,
            self.acceptor.as_ref().and_then(Acceptor::retry_at),
        ];
        Ok(wake
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now)))
    }

    /// Phase 3: one completion, to the owner its token names.
    fn complete(&mut self, completion: Completion, now: Instant) -> io::Result<()> {
        let Completion {
            user_data,
            outcome,
            more,
        } = completion;
        let Some(op) = user_data.op() else {
            return Ok(());
        };
        match op {
            Op::Accept => self.on_accept(outcome, more, now),
            Op::UdpRecv | Op::UdpSend => match self.udp.as_mut() {
                Some(udp) => udp.on_completion(op, outcome, now, &mut self.ctx, &mut self.ring),
                None => Ok(()),
            },
            Op::Signal => self.on_signal(more, now),
            Op::Cancel if user_data.slot() == user_data::SERVER_SLOT as usize => Ok(()),
            Op::Recv | Op::Send | Op::Cancel => {
                let slot = user_data.slot();
                let Some(conn) = self.conns.get_mut(slot) else {
                    debug!("completion for an empty slot: {user_data:?}");
                    give_back(outcome, &mut self.ring);
                    return Ok(());
                };
                if conn.generation() != user_data.generation() {
                    // Cannot happen while slots are freed only when nothing
                    // is in flight; if it did, this completion is not the
                    // newcomer's, whatever its slot says.
                    warn!("stale completion {user_data:?} dropped");
                    give_back(outcome, &mut self.ring);
                    return Ok(());
                }
                conn.on_completion(slot, op, outcome, more, &mut self.ctx, &mut self.ring)?;
                act_on(&mut self.finished, &mut self.sweeper, slot, conn, now);
                Ok(())
            }
        }
    }

    /// A multishot accept's completion: a new connection, or its end.
    fn on_accept(&mut self, outcome: Outcome, more: bool, now: Instant) -> io::Result<()> {
        let failure = match outcome {
            Outcome::Accepted(fd) => {
                self.open(fd, now)?;
                None
            }
            Outcome::Failed(e) => Some(e),
            _ => None,
        };
        if !more {
            if let Some(acceptor) = self.acceptor.as_mut() {
                acceptor.ended(failure.as_ref(), now, &mut self.ring)?;
                if self.grace_until.is_some() && !acceptor.is_in_kernel() {
                    // Shutdown: the accept is gone, so is the listener.
                    self.acceptor = None;
                }
            }
        } else if let Some(e) = failure {
            debug!("accept failed: {e}");
        }
        Ok(())
    }

    /// A new connection: over the limit it is closed at once; otherwise its
    /// recv is armed.
    fn open(&mut self, fd: OwnedFd, now: Instant) -> io::Result<()> {
        let stream = TcpStream::from(fd);
        if self.grace_until.is_some() {
            // Accepted by the kernel before the accept's cancel landed: the
            // reactor's closed listener resets these in its backlog, and
            // neither counts them.
            debug!("a connection accepted during shutdown: closed");
            return Ok(());
        }
        if self.conns.len() >= self.max_connections {
            self.ctx.stats.rejected();
            debug!(
                "rejected a connection: at the connection limit ({})",
                self.max_connections
            );
            return Ok(());
        }
        if let Some(limit) = self.per_source.as_mut() {
            // A multishot accept does not ask for the peer's address: read
            // it back (a syscall per accept, only with the guard on).
            let admitted = stream
                .peer_addr()
                .is_ok_and(|peer| limit.admit(self.conns.vacant_key(), peer.ip()));
            if !admitted {
                self.ctx.stats.rejected_source += 1;
                debug!("rejected a connection: its address holds its share (--max-per-source)");
                return Ok(());
            }
        }
        // Echo replies are small and latency matters: no Nagle.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("TCP_NODELAY failed: {e}");
        }
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if self.generations.len() <= slot {
            self.generations.resize(slot + 1, 0);
        }
        let transform = self.ctx.service.new_stream();
        let conn = entry.insert(Connection::new(
            stream,
            self.generations[slot],
            transform,
            self.ctx.tick,
        ));
        self.ctx.stats.opened();
        if let Some(idle) = self.idle_timeout {
            self.sweeper.wake_at(now + idle);
        }
        debug!("conn={slot} accepted");
        conn.drive(slot, &mut self.ctx, &mut self.ring)
    }

    /// The signal pipe's poll: the first signal begins the grace period, a
    /// second ends it at once.
    fn on_signal(&mut self, more: bool, now: Instant) -> io::Result<()> {
        let (count, last) = self.signals.take();
        if !more {
            self.ring
                .poll_readable(self.signals.fd(), UserData::new(Op::Signal, 0, 0))?;
        }
        for _ in 0..count {
            info!("received signal {last}");
            if self.grace_until.is_none() {
                self.begin_shutdown(now)?;
            } else {
                info!("second signal: stopping without waiting for the grace period");
                self.grace_until = Some(now);
            }
        }
        Ok(())
    }

    /// The grace period begins: no new connections or requests; what is
    /// owed is still sent, then each connection sends its FIN and waits for
    /// the peer's.
    fn begin_shutdown(&mut self, now: Instant) -> io::Result<()> {
        info!(
            "shutting down: {} connections; grace period of at most {GRACE_PERIOD:?}",
            self.conns.len()
        );
        self.grace_until = Some(now + GRACE_PERIOD);
        if let Some(acceptor) = self.acceptor.as_mut() {
            acceptor.stop(&mut self.ring)?;
            if !acceptor.is_in_kernel() {
                self.acceptor = None;
            }
        }
        if let Some(udp) = self.udp.as_mut() {
            udp.stop_reading(&mut self.ring)?;
        }
        for (slot, conn) in self.conns.iter_mut() {
            conn.begin_shutdown(slot, &mut self.ctx);
            conn.drive(slot, &mut self.ctx, &mut self.ring)?;
            act_on(&mut self.finished, &mut self.sweeper, slot, conn, now);
        }
        Ok(())
    }

    /// Phase 4: the grace period's end, deadlines, the periodic stats line.
    /// Returns true when the loop should stop.
    fn timers(&mut self, now: Instant, report: &mut dyn FnMut(&ProactorStats)) -> bool {
        if self.grace_until.is_some_and(|limit| now >= limit) {
            return true;
        }
        if self.sweeper.is_due(now) {
            if let Err(e) = self.sweep(now) {
                warn!("sweep: {e}");
            }
        }
        if let (Some(at), Some(every)) = (self.next_stats, self.stats_interval) {
            if at <= now {
                report(&self.stats());
                self.next_stats = Some(at.max(now - every) + every);
            }
        }
        self.grace_until.is_some() && !self.has_unfinished_work()
    }

    /// Closes every connection whose idle or linger deadline has passed.
    fn sweep(&mut self, now: Instant) -> io::Result<()> {
        let mut earliest: Option<Instant> = None;
        for (slot, conn) in self.conns.iter_mut() {
            let Some(at) = conn.deadline(self.idle_timeout, &self.clock, now) else {
                continue;
            };
            if at <= now {
                conn.on_timer(slot, &mut self.ctx);
                conn.drive(slot, &mut self.ctx, &mut self.ring)?;
                act_on(&mut self.finished, &mut self.sweeper, slot, conn, now);
            } else {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        self.sweeper.swept(now, earliest);
        Ok(())
    }

    /// Whether anything is left to finish: a connection not yet closed, or
    /// a UDP reply still queued or in flight.
    fn has_unfinished_work(&self) -> bool {
        self.udp.as_ref().is_some_and(UdpEndpoint::is_busy)
            || self.conns.iter().any(|(_, c)| !c.state().is_closed())
    }
}

/// What the loop does after a connection's turn, the proactor's version of
/// the reactor's `act_on`: every rule about freeing and timers is here. A
/// finished connection (closed, nothing in the kernel) has its slot freed
/// in phase 1; one whose FIN is out (`FinWait`) must be swept by its linger
/// deadline. (A free function of the two lists, so that the connection can
/// stay borrowed from the slab.)
fn act_on(
    finished: &mut Vec<usize>,
    sweeper: &mut Sweeper,
    slot: usize,
    conn: &Connection,
    now: Instant,
) {
    if conn.is_finished() {
        finished.push(slot);
    } else if conn.state() == crate::reactor::state::State::FinWait {
        sweeper.wake_at(now + crate::reactor::connection::LINGER);
    }
}

/// Gives a dropped completion's provided bytes back to the ring: a token
/// dropped instead would keep its buffer out of the ring for good.
fn give_back(outcome: Outcome, ring: &mut Ring) {
    if let Outcome::Received(buf) = outcome {
        ring.recycle(buf);
    }
}
