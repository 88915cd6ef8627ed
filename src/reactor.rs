//! The reactor: one thread, one `mio::Poll`, every socket on it.
//!
//! Read `docs/architecture.md` first: its picture of the loop's
//! bookkeeping (which phase writes and which reads `closed`, `read_again`,
//! `udp_read_again`, the sweeper, the acceptor's pause and the owed peak)
//! is what this file spreads over its methods. Then read this file top to
//! bottom. [`serve`] is the process around the
//! reactor, in five short steps: bind the sockets, build the [`Reactor`] on
//! them, announce the `listening` line, run, print the final stats line. The
//! reactor itself takes bound sockets and a shutdown source and hands back
//! its counters, so that another composition (a worker under a supervisor, a
//! test) can drive the same loop differently.
//!
//! [`Reactor::run`] is the event loop, in four named phases (the shape of
//! redis's `aeProcessEvents`), each a method of the same name:
//!
//! 1. **before sleep** (`Reactor::before_sleep`): remove the connections
//!    closed during the last batch, resume a paused acceptor, and work out
//!    how long the poll may sleep (not at all while a come-back is pending,
//!    else until the nearest deadline, else until an event);
//! 2. **sleep** (`Reactor::sleep`): `Poll::poll` waits until the kernel
//!    reports readiness or a deadline is due; then the clock is read, once
//!    for the whole batch;
//! 3. **dispatch** (`Reactor::dispatch`): each event goes to its owner,
//!    decoded from its token ([`token`]), and the loop acts on what the owner
//!    reports ([`Turn`]); then the sockets whose read budget ran out get
//!    another turn;
//! 4. **timers** (`Reactor::timers`): the end of the grace period, idle
//!    and linger deadlines, the periodic stats line.
//!
//! mio's epoll is edge-triggered: an event says "something changed", once
//! (epoll(7): "delivers events only when changes occur on the monitored file
//! descriptor"). Every handler therefore works until the kernel says
//! `WouldBlock` (or until its budget runs out, and then the reactor
//! remembers to come back), because no second event will come for work left
//! behind.
//!
//! Only a failure of `poll` itself ends the loop with an error. Everything a
//! peer can do wrong ends that peer's connection, counted, and nothing else.
//!
//! Read it beside [`crate::blocking`], the same server with blocking calls.
//! Its named sections map to this file: *Bind* is [`serve`] and
//! [`Reactor::new`]; *Accept* is `listener.rs`; *Read and transform* is
//! `Connection::on_readable`; *Write* is `Connection::send` and
//! `on_writable`; *EOF, reset, idle* are `state.rs` and `deadlines.rs`;
//! *Shutdown* is `shutdown.rs` and the grace period in the timers phase.

pub mod connection;
pub mod ctx;
pub mod deadlines;
pub mod hot_trace;
pub mod listener;
pub mod owed;
pub mod shutdown;
pub mod state;
pub mod token;
pub mod turn;
pub mod udp;

use std::io;
use std::time::{Duration, Instant};

use log::{info, log_enabled, warn};
use mio::event::Event;
use mio::{Events, Poll};
use slab::Slab;

use crate::allocator;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::exposure::Guards;
use crate::fd_limit;
use crate::listening::Listening;
use crate::net::{self, SocketCalls, Sockets};
use crate::service::Service;
use crate::stats::Stats;
use crate::udp_guard::UdpGuard;
use connection::Connection;
use ctx::Ctx;
use deadlines::{Clock, Sweeper};
use hot_trace::hot_trace;
use listener::{AcceptCtx, Acceptor};
use shutdown::{Request, Shutdown};
use token::Target;
use turn::Turn;
use udp::UdpEndpoint;

/// The size of the one read buffer: 64 KiB holds the largest UDP datagram
/// (65,507 bytes over IPv4, 65,527 over IPv6) and a large TCP read.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Events taken from the kernel per poll.
const EVENTS_CAPACITY: usize = 1024;

/// How a reactor is to behave, beside its sockets.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to do with received bytes.
    pub service: Service,
    /// Connections served at once; more are accepted and closed.
    pub max_connections: usize,
    /// Close connections idle for this long.
    pub idle_timeout: Option<Duration>,
    /// Owed bytes above which reading from a connection pauses.
    pub max_pending: usize,
    /// How often to report the counters while running.
    pub stats_interval: Option<Duration>,
    /// The exposure guards (`crate::exposure`).
    pub guards: Guards,
}

impl Options {
    /// The options `config` asks for, with the connection limit resolved.
    pub fn from_config(config: &ServerConfig, max_connections: usize) -> Options {
        Options {
            service: config.service.clone(),
            max_connections,
            idle_timeout: config.idle_timeout,
            max_pending: config.max_pending,
            stats_interval: config.stats_interval,
            guards: config.guards,
        }
    }
}

/// Runs the reactor server until SIGINT or SIGTERM, then prints the stats
/// line. This is `reactor-echo serve`.
///
/// # Errors
/// A [`ServerError`] if a socket cannot be bound, the signal handlers cannot
/// be installed, or the poll fails.
pub fn serve(config: &ServerConfig) -> Result<Stats, ServerError> {
    // Raise the limit before binding, report it after: a start-up error must
    // be the first line on stderr (see `fd_limit`).
    let limits = fd_limit::raise_to_hard_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| limits.default_max_connections());
    let sockets = Sockets::bind(config, SocketCalls::NonBlocking)?;
    limits.log();
    if max_connections > limits.default_max_connections() {
        warn!(
            "--max-connections {max_connections} is above what the open-file limit ({}) allows; \
             accept will pause when descriptors run out",
            limits.soft
        );
    }
    info!(
        "max connections: {max_connections}; listen backlog {}",
        net::effective_backlog()
    );
    let shutdown = Shutdown::on_signals()
        .map_err(|e| ServerError::new("cannot install signal handlers", e))?;
    let reactor = Reactor::new(
        sockets,
        shutdown,
        Options::from_config(config, max_connections),
    )?;
    config.log_service();
    reactor
        .listening()
        .and_then(|line| line.announce())
        .map_err(|e| ServerError::new("cannot announce the listening addresses", e))?;
    let stats = reactor.run(&mut print_stats)?;
    print_stats(&stats);
    info!("stopped");
    Ok(stats)
}

fn print_stats(stats: &Stats) {
    if let Err(e) = stats.print_line() {
        warn!("cannot print the stats line: {e}");
    }
}

/// The reactor and everything it owns.
#[derive(Debug)]
pub struct Reactor {
    /// The one poll every socket is registered with.
    poll: Poll,
    /// The TCP listener and the connection limit. `None` both when TCP is
    /// off and once shutdown has begun (the listener is closed then, so new
    /// connections are refused by the kernel).
    acceptor: Option<Acceptor>,
    /// The UDP socket and its queue of unsent replies; `None` when UDP is off.
    udp: Option<UdpEndpoint>,
    /// The signal source and, once a signal came, the end of the grace period.
    shutdown: Shutdown,
    /// The connections; slot `k` has the token `FIRST_CONNECTION + k` (see
    /// [`token`]).
    conns: Slab<Connection>,
    /// What the handlers share (the one read buffer, the reply buffer, the
    /// service, the counters, the batch's tick, the owed bytes held, the
    /// trace flag), lent to whichever socket an event is for: a connection
    /// or the UDP endpoint ([`ctx`]).
    ctx: Ctx,
    /// Close connections idle for this long (`None`: never).
    idle_timeout: Option<Duration>,
    /// When the next sweep of idle and linger deadlines is due.
    sweeper: Sweeper,
    /// The connections' clock ([`Tick`](deadlines::Tick)s since the reactor
    /// started); the tick of the current batch is `ctx.tick`, set once per
    /// wake-up by the sleep phase.
    clock: Clock,
    /// Slab keys of connections closed during this batch; removed in the
    /// before-sleep phase, never within a batch (see [`token`]).
    closed: Vec<usize>,
    /// Slab keys whose read budget ran out; read again in the dispatch phase.
    read_again: Vec<usize>,
    /// The UDP socket's budget ran out; read it again in the dispatch phase.
    udp_read_again: bool,
    /// How often to report the counters while running.
    stats_interval: Option<Duration>,
    /// When the next periodic report is due.
    next_stats: Option<Instant>,
}

impl Reactor {
    /// Registers bound sockets and the shutdown source with a new `Poll`.
    ///
    /// # Errors
    /// A [`ServerError`] naming what could not be registered.
    pub fn new(
        sockets: Sockets,
        mut shutdown: Shutdown,
        options: Options,
    ) -> Result<Reactor, ServerError> {
        let poll = Poll::new().map_err(|e| ServerError::new("cannot create the poll", e))?;
        let registry = poll.registry();
        let acceptor = match sockets.tcp {
            Some(listener) => Some(
                Acceptor::new(
                    mio::net::TcpListener::from_std(listener),
                    registry,
                    options.max_connections,
                    options.guards.max_per_source,
                )
                .map_err(|e| ServerError::new("cannot register the listener", e))?,
            ),
            None => None,
        };
        let udp = match sockets.udp {
            Some(socket) => {
                let bound = socket
                    .local_addr()
                    .map_err(|e| ServerError::new("cannot read the UDP address", e))?;
                let guard = UdpGuard::new(&options.guards, bound, Instant::now());
                Some(
                    UdpEndpoint::new(mio::net::UdpSocket::from_std(socket), registry, guard)
                        .map_err(|e| ServerError::new("cannot register the UDP socket", e))?,
                )
            }
            None => None,
        };
        shutdown
            .register(registry)
            .map_err(|e| ServerError::new("cannot register the signal pipe", e))?;
        let started = Instant::now();
        let clock = Clock::starting_at(started);
        Ok(Reactor {
            poll,
            acceptor,
            udp,
            shutdown,
            conns: Slab::new(),
            ctx: Ctx::new(
                options.service,
                SCRATCH_SIZE,
                options.max_pending,
                clock.tick(started),
            ),
            idle_timeout: options.idle_timeout,
            sweeper: Sweeper::default(),
            clock,
            closed: Vec::new(),
            read_again: Vec::new(),
            udp_read_again: false,
            stats_interval: options.stats_interval,
            next_stats: options.stats_interval.map(|every| started + every),
        })
    }

    /// The addresses the reactor listens on, for the `listening` line.
    ///
    /// # Errors
    /// If an address cannot be read back (`getsockname(2)`).
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

    /// The event loop, until a shutdown source says stop and the grace
    /// period is over. `report` gets the counters every `stats_interval`;
    /// the final ones are returned.
    ///
    /// # Errors
    /// Only if `Poll::poll` fails with something other than `EINTR`.
    pub fn run(mut self, report: &mut dyn FnMut(&Stats)) -> Result<Stats, ServerError> {
        // A local, not a field, so that dispatch can borrow `self` mutably.
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        // One clock read per wake-up: the moment the sleep ended also serves
        // the next turn's before-sleep phase. Its timeouts then run from a
        // moment at most one batch's work old, so a wake-up can come that
        // much late, never early.
        let mut now = Instant::now();
        loop {
            let timeout = self.before_sleep(now);
            now = self.sleep(&mut events, timeout)?;
            let mut batch = 0;
            for event in events.iter() {
                batch += 1;
                self.dispatch(event, now);
            }
            self.ctx.stats.woke(batch);
            self.serve_read_again(now);
            if self.timers(now, report) {
                return Ok(self.ctx.stats);
            }
        }
    }

    /// Phase 1: reap, resume, and choose the poll timeout.
    fn before_sleep(&mut self, now: Instant) -> Option<Duration> {
        let freed = !self.closed.is_empty();
        for key in self.closed.drain(..) {
            // Dropping the stream closes the socket, which also removes it
            // from the epoll set: no explicit deregister (one syscall fewer).
            if self.conns.try_remove(key).is_some() {
                if let Some(acceptor) = self.acceptor.as_mut() {
                    // Its source's share (--max-per-source) is back.
                    acceptor.release(key);
                }
            }
        }
        if self.ctx.held.take_subsided_peak() {
            // Peers that did not read made us hold megabytes; they are
            // freed now, and this hands the pages back (owed.rs says why).
            allocator::give_back_free_memory();
        }
        if let Some(acceptor) = &self.acceptor {
            let retry_due = acceptor.retry_at().is_some_and(|at| at <= now);
            // A descriptor was freed: accept what waited in the backlog now,
            // since the listener will raise no new event for it.
            if acceptor.is_paused() && (freed || retry_due) {
                self.accept_all(now);
            }
        }
        if !self.read_again.is_empty() || self.udp_read_again {
            return Some(Duration::ZERO);
        }
        // The nearest deadline; with none (no idle timeout, nothing
        // lingering, no stats interval, no shutdown, no paused acceptor)
        // `None`: the poll waits for an event, since nothing can fall due
        // before one.
        let wake = [
            self.sweeper.next(),
            self.next_stats,
            self.shutdown.deadline(),
            self.acceptor.as_ref().and_then(Acceptor::retry_at),
        ];
        wake.into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Phase 2: sleep until the kernel reports readiness or `timeout` passes.
    /// A signal that interrupts the sleep (`EINTR`) is an empty wake-up.
    /// Returns the moment it woke, the batch's one clock read, after setting
    /// what the batch's handlers share for the whole batch: that moment as
    /// a tick, and the trace flag.
    fn sleep(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<Instant, ServerError> {
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
            Err(e) => return Err(ServerError::new("poll failed", e)),
        }
        let now = Instant::now();
        self.ctx.tick = self.clock.tick(now);
        self.ctx.tracing = log_enabled!(log::Level::Trace);
        hot_trace!(self.ctx.tracing, "wake: {} events", events.iter().count());
        Ok(now)
    }

    /// Phase 3: hand one event to its owner, and act on what it reports.
    fn dispatch(&mut self, event: &Event, now: Instant) {
        match token::target(event.token()) {
            Target::Listener => self.accept_all(now),
            Target::Udp => {
                let Some(udp) = self.udp.as_mut() else { return };
                if event.is_writable() {
                    udp.on_writable(&mut self.ctx);
                }
                if event.is_readable() {
                    self.read_udp(now);
                }
            }
            Target::Signals => match self.shutdown.on_signal(now) {
                Request::Begin => self.begin_shutdown(now),
                Request::StopNow => {
                    info!("second signal: stopping without waiting for the grace period")
                }
                Request::None => {}
            },
            Target::Connection(key) => {
                hot_trace!(
                    self.ctx.tracing,
                    "conn={key} event {}",
                    hot_trace::describe(event)
                );
                let (conns, ctx) = (&mut self.conns, &mut self.ctx);
                // A slot emptied earlier (never within a batch: see token.rs).
                let Some(conn) = conns.get_mut(key) else {
                    return;
                };
                // Errors and hang-ups are only hints (mio's docs): the verdict
                // comes from `read` itself, which returns 0 or the error.
                if event.is_read_closed() || event.is_error() {
                    conn.hint_peer_fin();
                }
                let mut turn = Turn::DONE;
                // Write first: flushing what is owed may let the reader resume.
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    turn = conn.on_writable(key, ctx);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    turn = turn.then(conn.on_readable(key, ctx));
                }
                self.act_on(key, turn, now);
            }
        }
    }

    /// What the loop does with a connection's turn: every rule about
    /// removal, coming back, and timers is here, whichever phase ran the
    /// handler (dispatch, another turn, the sweep, shutdown). (The UDP
    /// socket's only rule, come back when its budget ran out, is in
    /// `read_udp`: a datagram socket neither closes nor lingers.)
    fn act_on(&mut self, key: usize, turn: Turn, now: Instant) {
        if turn.read_again() {
            // epoll will not report the input left behind: come back to it.
            self.read_again.push(key);
        }
        if turn.lingering() {
            // The linger deadline: a sweep must come by then. (`wake_at`
            // keeps the earliest, so later turns in FIN-WAIT-2 change nothing.)
            self.sweeper.wake_at(now + connection::LINGER);
        }
        if turn.closed() {
            // Removed in phase 1, after the batch: a later event of this
            // batch for the same slot must not reach a newcomer. (A closed
            // connection that reports it again adds its key again; the
            // second removal finds the slot empty and does nothing.)
            self.closed.push(key);
        }
    }

    /// The UDP socket's read turn: it reads until drained, or until its
    /// budget runs out, and then it is read again in the dispatch phase.
    fn read_udp(&mut self, now: Instant) {
        let Some(udp) = self.udp.as_mut() else { return };
        self.udp_read_again = udp.on_readable(&mut self.ctx, now).read_again();
    }

    /// Phase 3, continued: give another turn to sockets whose budget ran out.
    fn serve_read_again(&mut self, now: Instant) {
        if self.udp_read_again {
            self.read_udp(now);
        }
        if self.read_again.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.read_again);
        for &key in &keys {
            let (conns, ctx) = (&mut self.conns, &mut self.ctx);
            // Slots are freed only in phase 1, so the key still names the
            // connection that asked; if it has closed since, it reads
            // nothing and reports closed again, which is harmless.
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let turn = conn.on_readable(key, ctx);
            self.act_on(key, turn, now);
        }
    }

    /// Phase 4: the end of the grace period, deadlines, the periodic stats.
    /// Returns true when the loop should stop.
    fn timers(&mut self, now: Instant, report: &mut dyn FnMut(&Stats)) -> bool {
        // The grace period's limit comes first: connections still open at
        // it stay counted as active, whatever other deadline falls due now.
        if self.shutdown.deadline().is_some_and(|limit| now >= limit) {
            return true;
        }
        if self.sweeper.is_due(now) {
            self.sweep(now);
        }
        if let (Some(at), Some(every)) = (self.next_stats, self.stats_interval) {
            if at <= now {
                report(&self.ctx.stats);
                self.next_stats = Some(at.max(now - every) + every);
            }
        }
        // During the grace period, stop once every connection has closed:
        // flushed, sent its FIN, and seen the peer's (or lingered out).
        self.shutdown.deadline().is_some() && !self.has_unfinished_work()
    }

    /// Gives every connection whose idle or linger deadline has passed its
    /// timer's turn (which closes it), and notes the earliest deadline left.
    fn sweep(&mut self, now: Instant) {
        let (idle_timeout, clock) = (self.idle_timeout, self.clock);
        let mut earliest: Option<Instant> = None;
        let mut turns = Vec::new();
        let (conns, ctx) = (&mut self.conns, &mut self.ctx);
        for (key, conn) in conns.iter_mut() {
            match conn.deadline(idle_timeout, &clock, now) {
                Some(at) if at <= now => turns.push((key, conn.on_timer(key, ctx))),
                Some(at) => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                // A closed connection (earlier in this batch) has no deadline.
                None => {}
            }
        }
        // Noted before acting on the turns, so that no deadline `act_on`
        // sets can be overwritten by the sweep's own.
        self.sweeper.swept(now, earliest);
        for (key, turn) in turns {
            self.act_on(key, turn, now);
        }
    }

    fn accept_all(&mut self, now: Instant) {
        let Some(acceptor) = self.acceptor.as_mut() else {
            return;
        };
        acceptor.accept_all(&mut AcceptCtx {
            registry: self.poll.registry(),
            conns: &mut self.conns,
            service: &self.ctx.service,
            stats: &mut self.ctx.stats,
            sweeper: &mut self.sweeper,
            idle_timeout: self.idle_timeout,
            clock: self.clock,
            now,
        });
    }

    /// The grace period begins: stop accepting and taking requests; what is
    /// owed is still written, then each connection sends its FIN and waits
    /// for the peer's.
    fn begin_shutdown(&mut self, now: Instant) {
        info!(
            "shutting down: {} connections; grace period of at most {:?}",
            self.conns.len(),
            shutdown::GRACE_PERIOD
        );
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.close(self.poll.registry());
        }
        if let Some(udp) = self.udp.as_mut() {
            udp.stop_reading();
        }
        self.udp_read_again = false;
        let mut turns = Vec::new();
        let (conns, ctx) = (&mut self.conns, &mut self.ctx);
        for (key, conn) in conns.iter_mut() {
            turns.push((key, conn.begin_shutdown(key, ctx)));
        }
        for (key, turn) in turns {
            self.act_on(key, turn, now);
        }
    }

    /// Whether a UDP reply is queued or a connection is not yet closed. A
    /// connection in `FinWait` counts: it has nothing left to send, but
    /// closing it before the peer's FIN, with the peer's input unread, would
    /// make the kernel send RST, which throws away the replies still in our
    /// send buffer, on their way to the peer.
    fn has_unfinished_work(&self) -> bool {
        self.udp.as_ref().is_some_and(UdpEndpoint::has_queued)
            || self.conns.iter().any(|(_, c)| !c.state().is_closed())
    }
}
