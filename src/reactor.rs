//! The reactor: one thread, one `mio::Poll`, every socket on it.
//!
//! Read this file top to bottom. [`serve`] opens the sockets and announces
//! them; [`Reactor::run`] is the event loop, in four named phases (the shape
//! of redis's `aeProcessEvents`):
//!
//! 1. **before sleep**: remove the connections closed during the last batch,
//!    resume a paused acceptor, and work out how long the poll may sleep;
//! 2. **sleep**: `Poll::poll` waits until the kernel reports readiness;
//! 3. **dispatch**: each event goes to its owner, decoded from its token
//!    ([`token`]); connections that used their read budget get another turn;
//! 4. **timers**: idle and linger deadlines, the stats line, the end of the
//!    grace period.
//!
//! mio's epoll is edge-triggered: an event says "something changed", once.
//! Every handler therefore works until the kernel says `WouldBlock` (or
//! until its budget runs out, and then the reactor remembers to come back),
//! because no second event will come for work left behind.
//!
//! Only a failure of `poll` itself ends the loop with an error. Everything a
//! peer can do wrong ends that peer's connection, counted, and nothing else.
//!
//! Read it beside [`crate::blocking`], the same server with blocking calls.
//! Its numbered sections map to this one: 1. Bind is [`Reactor::new`];
//! 2. Accept is `listener.rs`; 3. Read and transform is
//! `Connection::on_readable`; 4. Write is `Connection::send` and
//! `on_writable`; 5. EOF, reset, idle are `state.rs` and `deadlines.rs`;
//! 6. Shutdown is `shutdown.rs` and the grace period in phase 4.

pub mod connection;
pub mod deadlines;
pub mod listener;
pub mod shutdown;
pub mod state;
pub mod token;
pub mod udp;

use std::io;
use std::time::{Duration, Instant};

use log::{info, trace, warn};
use mio::event::Event;
use mio::{Events, Poll};
use slab::Slab;

use crate::config::ServerConfig;
use crate::fd_limit;
use crate::net::{self, StartError};
use crate::service::Service;
use crate::stats::Stats;
use connection::{Connection, Ctx};
use deadlines::Sweeper;
use listener::{AcceptCtx, Acceptor};
use shutdown::{Request, Shutdown};
use token::Target;
use udp::UdpEndpoint;

/// The size of the one read buffer: 64 KiB holds the largest UDP datagram
/// (65,507 bytes over IPv4, 65,527 over IPv6) and a large TCP read.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Events taken from the kernel per poll.
const EVENTS_CAPACITY: usize = 1024;

/// The reactor and everything it owns.
#[derive(Debug)]
pub struct Reactor {
    poll: Poll,
    acceptor: Option<Acceptor>,
    udp: Option<UdpEndpoint>,
    shutdown: Shutdown,
    /// The connections; slot `k` has token `3 + k` (see [`token`]).
    conns: Slab<Connection>,
    /// The one read buffer, lent to whichever socket is being read.
    scratch: Box<[u8]>,
    /// The one buffer for replies that cannot be made in place.
    reply: Vec<u8>,
    service: Service,
    stats: Stats,
    max_pending: usize,
    idle_timeout: Option<Duration>,
    sweeper: Sweeper,
    /// Slab keys closed during this batch; removed in phase 1.
    closed: Vec<usize>,
    /// Slab keys whose read budget ran out; read again in phase 3.
    read_again: Vec<usize>,
    /// The UDP socket's budget ran out; read it again in phase 3.
    udp_read_again: bool,
    stats_interval: Option<Duration>,
    next_stats: Option<Instant>,
}

/// Runs the reactor server until SIGINT or SIGTERM, then prints the stats
/// line. This is `reactor-echo serve`.
///
/// # Errors
/// A [`StartError`] if a socket cannot be bound or the poll fails.
pub fn serve(config: &ServerConfig) -> Result<Stats, StartError> {
    // Raise the limit before binding, report it after: a start-up error must
    // be the first line on stderr (see `fd_limit`).
    let limits = fd_limit::raise_to_hard_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| limits.default_max_connections());
    let reactor = Reactor::new(config, max_connections)?;
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
    reactor.announce()?;
    reactor.run()
}

impl Reactor {
    /// Binds the sockets and registers them with a new `Poll`.
    ///
    /// # Errors
    /// A [`StartError`] naming what could not be opened.
    pub fn new(config: &ServerConfig, max_connections: usize) -> Result<Reactor, StartError> {
        // Bind every socket before anything is registered or logged: mio logs
        // registrations at trace level, and a bind error must come first.
        let listener = config
            .tcp
            .addr()
            .map(|a| net::bind_tcp(a, true))
            .transpose()?;
        let udp_socket = config
            .udp
            .addr()
            .map(|a| net::bind_udp(a, true))
            .transpose()?;
        let poll = Poll::new().map_err(|e| StartError::new("cannot create the poll", e))?;
        let registry = poll.registry();
        let acceptor = match listener {
            Some(listener) => Some(
                Acceptor::new(
                    mio::net::TcpListener::from_std(listener),
                    registry,
                    max_connections,
                )
                .map_err(|e| StartError::new("cannot register the listener", e))?,
            ),
            None => None,
        };
        let udp = match udp_socket {
            Some(socket) => Some(
                UdpEndpoint::new(mio::net::UdpSocket::from_std(socket), registry)
                    .map_err(|e| StartError::new("cannot register the UDP socket", e))?,
            ),
            None => None,
        };
        let shutdown = Shutdown::new(registry)
            .map_err(|e| StartError::new("cannot install signal handlers", e))?;
        Ok(Reactor {
            poll,
            acceptor,
            udp,
            shutdown,
            conns: Slab::new(),
            scratch: vec![0; SCRATCH_SIZE].into_boxed_slice(),
            reply: Vec::with_capacity(SCRATCH_SIZE),
            service: config.service.clone(),
            stats: Stats::default(),
            max_pending: config.max_pending,
            idle_timeout: config.idle_timeout,
            sweeper: Sweeper::default(),
            closed: Vec::new(),
            read_again: Vec::new(),
            udp_read_again: false,
            stats_interval: config.stats_interval,
            next_stats: config.stats_interval.map(|every| Instant::now() + every),
        })
    }

    /// Prints the `listening tcp=... udp=...` line.
    ///
    /// # Errors
    /// If an address cannot be read back or stdout cannot be written.
    pub fn announce(&self) -> Result<(), StartError> {
        let fail = |e| StartError::new("cannot announce the listening addresses", e);
        let tcp = self
            .acceptor
            .as_ref()
            .map(Acceptor::local_addr)
            .transpose()
            .map_err(fail)?;
        let udp = self
            .udp
            .as_ref()
            .map(UdpEndpoint::local_addr)
            .transpose()
            .map_err(fail)?;
        info!("mode {}", self.service.mode());
        net::announce(tcp, udp).map_err(fail)
    }

    /// The event loop. Returns the final counters after the grace period,
    /// having printed them as the stats line.
    ///
    /// # Errors
    /// Only if `Poll::poll` fails with something other than `EINTR`.
    pub fn run(mut self) -> Result<Stats, StartError> {
        // A local, not a field, so that dispatch can borrow `self` mutably.
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            // 1. Before sleep.
            let timeout = self.before_sleep(Instant::now());

            // 2. Sleep until the kernel reports readiness or a timer is due.
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(StartError::new("poll failed", e));
            }
            let now = Instant::now();

            // 3. Dispatch.
            for event in events.iter() {
                self.dispatch(event, now);
            }
            self.serve_read_again(now);

            // 4. Timers.
            if self.after_wake(now) {
                break;
            }
        }
        if let Err(e) = self.stats.print_line() {
            warn!("cannot print the stats line: {e}");
        }
        info!("stopped");
        Ok(self.stats)
    }

    /// Phase 1: reap, resume, and choose the poll timeout.
    fn before_sleep(&mut self, now: Instant) -> Option<Duration> {
        let freed = !self.closed.is_empty();
        for key in self.closed.drain(..) {
            // Dropping the stream closes the socket, which also removes it
            // from the epoll set: no explicit deregister (one syscall fewer).
            self.conns.try_remove(key);
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

    /// Phase 3: hand one event to its owner.
    fn dispatch(&mut self, event: &Event, now: Instant) {
        match token::target(event.token()) {
            Target::Listener => self.accept_all(now),
            Target::Udp => {
                let Some(udp) = self.udp.as_mut() else { return };
                if event.is_writable() {
                    udp.on_writable(&mut self.stats);
                }
                if event.is_readable() {
                    self.udp_read_again = udp.on_readable(
                        &mut self.scratch,
                        &mut self.reply,
                        &self.service,
                        &mut self.stats,
                    );
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
                trace!(
                    "conn={key} event{}{}{}{}",
                    if event.is_readable() { " readable" } else { "" },
                    if event.is_writable() { " writable" } else { "" },
                    if event.is_read_closed() {
                        " read_closed"
                    } else {
                        ""
                    },
                    if event.is_error() { " error" } else { "" },
                );
                let (conns, mut ctx) = self.split(now);
                // A slot emptied earlier (never within a batch: see token.rs).
                let Some(conn) = conns.get_mut(key) else {
                    return;
                };
                // Write first: draining what is owed may unpause the reader.
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    conn.on_writable(key, &mut ctx);
                }
                // Errors and hang-ups are only hints (mio's docs): the verdict
                // comes from `read` itself, which returns 0 or the error.
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    conn.on_readable(key, &mut ctx, event.is_read_closed() || event.is_error());
                }
            }
        }
    }

    /// Phase 3, continued: give another turn to sockets whose budget ran out.
    fn serve_read_again(&mut self, now: Instant) {
        if self.udp_read_again {
            if let Some(udp) = self.udp.as_mut() {
                self.udp_read_again = udp.on_readable(
                    &mut self.scratch,
                    &mut self.reply,
                    &self.service,
                    &mut self.stats,
                );
            }
        }
        if self.read_again.is_empty() {
            return;
        }
        let mut keys = std::mem::take(&mut self.read_again);
        let (conns, mut ctx) = self.split(now);
        for &key in &keys {
            // The slot may have been reused since: an extra read is harmless
            // (it reads WouldBlock), so no check beyond existence is needed.
            if let Some(conn) = conns.get_mut(key) {
                conn.on_readable(key, &mut ctx, false);
            }
        }
        // Keep the allocation for the next round if nothing was added.
        if self.read_again.is_empty() {
            keys.clear();
            self.read_again = keys;
        }
    }

    /// Phase 4: deadlines, the stats line, and the end of the grace period.
    /// Returns true when the loop should stop.
    fn after_wake(&mut self, now: Instant) -> bool {
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
                if let Err(e) = self.stats.print_line() {
                    warn!("cannot print the stats line: {e}");
                }
                self.next_stats = Some(at.max(now - every) + every);
            }
        }
        // During the grace period, stop once every connection has closed:
        // flushed, sent its FIN, and seen the peer's (or lingered out).
        self.shutdown.deadline().is_some() && !self.has_unfinished_work()
    }

    /// Closes every connection whose idle or linger deadline has passed.
    fn sweep(&mut self, now: Instant) {
        let idle_timeout = self.idle_timeout;
        let (conns, mut ctx) = self.split(now);
        let mut earliest: Option<Instant> = None;
        for (key, conn) in conns.iter_mut() {
            conn.on_timer(key, &mut ctx, idle_timeout);
            if let Some(at) = conn.deadline(idle_timeout) {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        self.sweeper.swept(now, earliest);
    }

    fn accept_all(&mut self, now: Instant) {
        let Some(acceptor) = self.acceptor.as_mut() else {
            return;
        };
        acceptor.accept_all(&mut AcceptCtx {
            registry: self.poll.registry(),
            conns: &mut self.conns,
            service: &self.service,
            stats: &mut self.stats,
            sweeper: &mut self.sweeper,
            idle_timeout: self.idle_timeout,
            now,
        });
    }

    /// Stop accepting and taking requests; what is owed is still written,
    /// then each connection sends its FIN and waits for the peer's.
    fn begin_shutdown(&mut self, now: Instant) {
        info!(
            "shutting down: {} connections, writing what is owed for at most {:?}",
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
        let (conns, mut ctx) = self.split(now);
        for (key, conn) in conns.iter_mut() {
            conn.begin_shutdown(key, &mut ctx);
        }
    }

    /// Whether a UDP reply is queued or a connection is not yet closed. A
    /// connection in `FinWait` counts: it has nothing left to send, but
    /// closing it before the peer's FIN, with the peer's input unread, would
    /// make the kernel send RST and destroy replies the peer has not read.
    fn has_unfinished_work(&self) -> bool {
        self.udp.as_ref().is_some_and(UdpEndpoint::has_queued)
            || self.conns.iter().any(|(_, c)| !c.state().is_closed())
    }

    /// Splits the borrows: the slab on one side, what a connection may touch
    /// on the other.
    fn split(&mut self, now: Instant) -> (&mut Slab<Connection>, Ctx<'_>) {
        (
            &mut self.conns,
            Ctx {
                scratch: &mut self.scratch,
                reply: &mut self.reply,
                service: &self.service,
                stats: &mut self.stats,
                now,
                max_pending: self.max_pending,
                closed: &mut self.closed,
                read_again: &mut self.read_again,
                sweeper: &mut self.sweeper,
            },
        )
    }
}
