//! The load generator's TCP engine: a client-side mio reactor.
//!
//! The second worked example of the pattern, seen from the other end, and
//! built the same way as the server: one thread, one `Poll`, connections in
//! a `Slab` keyed by token, each a small state machine ([`ConnState`]:
//! `Connecting`, then `Open`), and a loop in named steps:
//!
//! 1. **open**: start connects, at most the plan's window in flight
//!    ([`connect_window`](super::plan::connect_window));
//! 2. **advance**: move the run to its next [`RunPhase`] when it is due;
//! 3. **schedule**: the open loop sends the messages whose time has come;
//! 4. **sleep**: `Poll::poll` until readiness or the next deadline;
//! 5. **dispatch**: each event to its connection;
//! 6. **expire**: connects that took too long are counted as failed.
//!
//! Readiness drives each connection:
//!
//! * **writable while connecting**: the non-blocking `connect` has finished;
//!   `take_error` says whether it succeeded (a refused connect shows up here);
//! * **writable while open**: write the rest of what is queued;
//! * **readable**: read the replies, check every byte, and for each message
//!   whose last byte arrived, record its latency and ask the [`Role`](super::role::Role) what
//!   comes next.
//!
//! What depends on the kind of load is asked of the connection's [`Role`](super::role::Role)
//! (`role.rs`), never branched on here.
//!
//! **Removal.** A slot is freed at once (a lost connection, a finished churn
//! cycle, a failed connect), not after the batch as in the server. That is
//! safe because slots are reused only by connects, and connects start only
//! in the *open* step, before the poll: within a batch a freed slot stays
//! empty, and a later event for it finds nothing (`get_mut` is `None`).
//!
//! Messages are numbered by their offset in the stream: message `i` is bytes
//! `i*size .. (i+1)*size`, so no per-message bookkeeping but a start time is
//! kept. In the open loop (`--rate`) the start time is when the message was
//! *meant* to be sent by the schedule, not when it was, so a server that
//! stalls cannot hide its stall from the latency (no coordinated omission).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::trace;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use super::in_flight::InFlight;
use super::plan::{Outcome, Plan};
use super::role::AfterReply;
use super::stamp::{RunClock, Stamp};
use crate::bench::measure::cpu_window::CpuWindow;
use crate::bench::measure::kernel::{KernelReading, KernelSide};
use crate::bench::measure::progress::Progress;
use crate::bench::measure::server_memory::{self, OpenCost};
use crate::bench::payload::Pattern;
use crate::bench::processes::link;
use crate::syscall::{self, Received, Sent};

/// How often connects are checked for their timeout.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_millis(100);
/// The read buffer, and the longest request written in one `send`.
const BUFFER: usize = 64 * 1024;
/// The longest the loop sleeps, so that the progress line keeps coming.
const MAX_SLEEP: Duration = Duration::from_millis(250);

/// Where the whole run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunPhase {
    /// Connections are being opened; the clock has not started.
    Opening,
    /// Load runs but is not counted yet.
    Warmup {
        /// When counting starts.
        until: Instant,
    },
    /// Load is counted (for `Idle`: the connections are held idle).
    Measuring {
        /// When counting started.
        from: Instant,
        /// When it stops.
        until: Instant,
    },
    /// `Idle` only: one round trip on every connection, until all are back.
    IdleCheck {
        /// When the check gives up on the missing round trips.
        until: Instant,
    },
    /// Over: nothing new is started.
    Done,
}

/// Where one client connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// The non-blocking connect has not finished.
    Connecting,
    /// Connected: messages go out and replies come back.
    Open,
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    state: ConnState,
    seed: u64,
    connect_started: Instant,
    /// Stream offset written so far, and the offset queued to be written.
    sent: u64,
    queued: u64,
    /// Stream offset received (and checked) so far.
    received: u64,
    /// Start times of the messages not yet fully answered, oldest first.
    in_flight: InFlight,
    completed: u64,
}

/// What one wake-up knows, worked out once for all its events: the time as
/// a stamp, and whether replies completing now are counted.
#[derive(Debug, Clone, Copy)]
struct Wake {
    stamp: Stamp,
    /// Replies count in the throughput.
    measuring: bool,
    /// Replies have their latency recorded.
    recording: bool,
}

/// The client reactor.
#[derive(Debug)]
pub struct Driver {
    plan: Plan,
    poll: Poll,
    conns: Slab<Conn>,
    /// Replies are read into it.
    buffer: Vec<u8>,
    /// Requests are written from it, and replies checked against it.
    pattern: Pattern,
    /// Message start times and latencies count from the driver's start.
    clock: RunClock,
    /// Connections still to be opened, and how many are connecting now.
    to_open: usize,
    connecting: usize,
    next_source: usize,
    next_seed: u64,
    phase: RunPhase,
    outcome: Outcome,
    progress: Progress,
    /// Open loop: the next scheduled send, and the next connection to use.
    next_send: Option<Instant>,
    round_robin: usize,
    /// `--server-pid`: reads the server's CPU time as the window opens and
    /// closes.
    server_cpu: Option<CpuWindow>,
    /// The generator's own CPU time over the same window.
    own_cpu: CpuWindow,
    /// The kernel's figures before the first connect, and when it was.
    kernel_before: KernelReading,
    started: Instant,
    /// Connects are checked for their timeout at most this often.
    next_expiry_check: Instant,
    /// The server's memory before the first connect (`--server-pid`).
    server_rss_before: Option<u64>,
}

impl Driver {
    /// A driver for `plan`.
    ///
    /// # Errors
    /// If the poll cannot be created.
    pub fn new(plan: Plan, progress: Progress) -> io::Result<Driver> {
        let server_cpu = plan.server_pid.map(CpuWindow::new);
        let server_rss_before = plan
            .server_pid
            .and_then(|pid| server_memory::resident_kib(pid).ok());
        let pattern = Pattern::new(plan.expect, BUFFER);
        Ok(Driver {
            to_open: plan.connections,
            plan,
            poll: Poll::new()?,
            conns: Slab::new(),
            buffer: vec![0; BUFFER],
            pattern,
            clock: RunClock::starting_at(Instant::now()),
            connecting: 0,
            next_source: 0,
            next_seed: 0,
            phase: RunPhase::Opening,
            outcome: Outcome::new()?,
            progress,
            next_send: None,
            round_robin: 0,
            server_cpu,
            own_cpu: CpuWindow::own(),
            kernel_before: KernelReading::now(),
            started: Instant::now(),
            next_expiry_check: Instant::now(),
            server_rss_before,
        })
    }

    /// Runs the plan to the end.
    ///
    /// # Errors
    /// Only if `Poll::poll` fails.
    pub fn run(mut self) -> io::Result<Outcome> {
        let mut events = Events::with_capacity(1024);
        if !self.plan.role.opens_all_first() {
            self.wait_for_parent()?;
            self.start_clock(Instant::now());
        }
        // One clock read per wake-up, after the sleep: the same moment serves
        // this batch's dispatch and the next turn's steps 1 to 4.
        let mut now = Instant::now();
        loop {
            // 1. Open.
            self.open_more(now);
            // 2. Advance.
            if self.phase == RunPhase::Opening && self.to_open == 0 && self.connecting == 0 {
                self.all_open()?;
                now = Instant::now();
            }
            self.advance(now);
            if self.phase == RunPhase::Done {
                break;
            }
            // 3. Schedule.
            self.send_scheduled(now);
            self.progress
                .tick(now, self.open_count(), self.plan.connections);
            // 4. Sleep.
            let timeout = self.timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    now = Instant::now();
                    continue;
                }
                return Err(e);
            }
            // 5. Dispatch.
            now = Instant::now();
            let wake = self.wake(now);
            for event in events.iter() {
                let key = event.token().0;
                if event.is_writable() || event.is_error() {
                    self.on_writable(key, wake);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    let fin_hinted = event.is_read_closed() || event.is_error();
                    self.on_readable(key, wake, fin_hinted);
                }
            }
            // 6. Expire.
            self.expire_connects(now);
        }
        Ok(self.outcome)
    }

    /// The one place the run's phase changes, so that `RUST_LOG=trace`
    /// shows every step of a run.
    fn set_phase(&mut self, next: RunPhase) {
        trace!("bench phase {:?} => {next:?}", self.phase);
        // CPU times are read as the window opens and closes.
        match (self.phase, next) {
            (RunPhase::Measuring { .. }, _) => {
                self.outcome.server_cpu = self.server_cpu.as_mut().and_then(CpuWindow::window_ends);
                self.outcome.bench_cpu = self.own_cpu.window_ends();
            }
            (_, RunPhase::Measuring { .. }) => {
                if let Some(cpu) = self.server_cpu.as_mut() {
                    cpu.window_starts();
                }
                self.own_cpu.window_starts();
            }
            _ => {}
        }
        self.phase = next;
    }

    /// Every connection is open (or has failed): the kernel's side is read,
    /// and a process of several waits for its parent's word to go on.
    fn all_open(&mut self) -> io::Result<()> {
        self.outcome.opened_in = Some(self.started.elapsed());
        self.outcome.kernel = Some(KernelSide {
            before: self.kernel_before,
            during: KernelReading::now(),
        });
        self.outcome.server_rss = match (self.plan.server_pid, self.server_rss_before) {
            (Some(pid), Some(before)) => server_memory::resident_kib(pid)
                .ok()
                .map(|open| OpenCost { before, open }),
            _ => None,
        };
        self.wait_for_parent()?;
        self.start_clock(Instant::now());
        Ok(())
    }

    fn wait_for_parent(&self) -> io::Result<()> {
        if self.plan.is_coordinated {
            link::ready_and_wait()?;
        }
        Ok(())
    }

    /// Step 2: moves the run on when the current phase is over.
    fn advance(&mut self, now: Instant) {
        match self.phase {
            RunPhase::Warmup { until } if now >= until => {
                let end = until + self.plan.duration;
                self.set_phase(RunPhase::Measuring {
                    from: until,
                    until: end,
                });
            }
            RunPhase::Measuring { from, until } if now >= until => {
                if self.plan.role.checks_after_hold() {
                    self.begin_idle_check(now);
                } else {
                    self.outcome.measured = now.saturating_duration_since(from);
                    self.set_phase(RunPhase::Done);
                }
            }
            RunPhase::IdleCheck { until } if now >= until => self.set_phase(RunPhase::Done),
            _ => {}
        }
    }

    /// The clock starts: warm-up first (the open loop's schedule too).
    fn start_clock(&mut self, now: Instant) {
        self.set_phase(RunPhase::Warmup {
            until: now + self.plan.warmup,
        });
        if self.plan.role.scheduled_rate().is_some() {
            self.next_send = Some(now);
        }
    }

    /// `Idle`: the hold is over; one round trip on every connection.
    fn begin_idle_check(&mut self, now: Instant) {
        self.outcome.idle_ok = Some(0);
        self.set_phase(RunPhase::IdleCheck {
            until: now + self.plan.reply_timeout,
        });
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        let start = self.clock.stamp(now);
        for key in keys {
            self.start_message(key, start);
        }
    }

    /// The wake-up at `now`: replies count in the throughput while
    /// measuring, and have their latency recorded then too and, for `Idle`,
    /// during the round trips after the hold.
    fn wake(&self, now: Instant) -> Wake {
        let measuring =
            matches!(self.phase, RunPhase::Measuring { from, until } if now >= from && now < until);
        Wake {
            stamp: self.clock.stamp(now),
            measuring,
            recording: measuring || matches!(self.phase, RunPhase::IdleCheck { .. }),
        }
    }

    /// Whether the run still starts new work (messages, connections).
    fn is_running(&self) -> bool {
        self.phase != RunPhase::Done
    }

    fn open_count(&self) -> usize {
        self.conns.len() - self.connecting
    }

    /// Step 1: starts connects until the batch is full or all are started.
    fn open_more(&mut self, now: Instant) {
        while self.to_open > 0 && self.connecting < self.plan.connect_window {
            self.to_open -= 1;
            match self.connect(now) {
                Ok(()) => self.connecting += 1,
                Err(_) => self.connect_failed(),
            }
        }
    }

    fn connect(&mut self, now: Instant) -> io::Result<()> {
        let addr = self.plan.addr;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if !self.plan.sources.is_empty() {
            // Each source address has its own ~28,000 ephemeral ports;
            // bind() to port 0 picks one that is free on that address,
            // whatever the destination, trying the odd ports first (the
            // even ones are left to connect()). With at most PER_SOURCE
            // (12,000) sockets per address the odd half still has room,
            // and bind() finds a port at once; past about 14,000 it would
            // scan the whole odd half for every socket (see PER_SOURCE).
            // (The C load generator sets IP_BIND_ADDRESS_NO_PORT to leave
            // the choice to connect(), which tries the even ports first;
            // neither socket2 nor rustix offers the option.)
            let source = self.plan.sources[self.next_source % self.plan.sources.len()];
            self.next_source += 1;
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        let entry = self.conns.vacant_entry();
        self.poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.next_seed += 1;
        entry.insert(Conn {
            stream,
            state: ConnState::Connecting,
            seed: self.next_seed * 7,
            connect_started: now,
            sent: 0,
            queued: 0,
            received: 0,
            in_flight: InFlight::default(),
            completed: 0,
        });
        Ok(())
    }

    /// Frees a slot at once (see "Removal" in the module docs for why that
    /// is safe here), and lets the role replace the connection.
    fn remove(&mut self, key: usize) -> bool {
        let removed = self.conns.try_remove(key).is_some();
        if removed && self.plan.role.replaces_connections() && self.is_running() {
            self.to_open += 1;
        }
        removed
    }

    fn connect_failed(&mut self) {
        self.outcome.failed += 1;
        if self.plan.role.replaces_connections() && self.is_running() {
            self.to_open += 1;
        }
    }

    /// A connect that did not complete: its slot goes, and it counts as failed.
    fn abandon_connect(&mut self, key: usize) {
        self.conns.remove(key);
        self.connecting -= 1;
        self.connect_failed();
    }

    /// Step 6.
    fn expire_connects(&mut self, now: Instant) {
        // The check walks every connection: with 20,000 of them, on every
        // wake-up of a connection storm it would cost more than the storm.
        if self.connecting == 0 || now < self.next_expiry_check {
            return;
        }
        self.next_expiry_check = now + EXPIRY_CHECK_EVERY;
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.state == ConnState::Connecting
                    && now - c.connect_started > self.plan.connect_timeout
            })
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            self.abandon_connect(key);
        }
    }

    fn timeout(&self, now: Instant) -> Duration {
        let phase_end = match self.phase {
            RunPhase::Warmup { until }
            | RunPhase::Measuring { until, .. }
            | RunPhase::IdleCheck { until } => Some(until),
            RunPhase::Opening | RunPhase::Done => None,
        };
        [Some(now + MAX_SLEEP), phase_end, self.next_send]
            .into_iter()
            .flatten()
            .min()
            .map_or(MAX_SLEEP, |wake| wake.saturating_duration_since(now))
    }

    /// Step 3, the open loop: send every message whose scheduled time has
    /// come, each on the next open connection in turn.
    fn send_scheduled(&mut self, now: Instant) {
        let (Some(rate), Some(mut next)) = (self.plan.role.scheduled_rate(), self.next_send) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == ConnState::Open)
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            return;
        }
        while next <= now {
            let key = keys[self.round_robin % keys.len()];
            self.round_robin += 1;
            // The latency clock starts at the scheduled time.
            self.start_message(key, self.clock.stamp(next));
            next += interval;
        }
        self.next_send = Some(next);
    }

    fn start_message(&mut self, key: usize, at: Stamp) {
        let size = self.plan.size as u64;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.in_flight.push(at);
        conn.queued += size;
        if flush(conn, &self.pattern).is_err() {
            self.lose(key);
        }
    }

    fn on_writable(&mut self, key: usize, wake: Wake) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.state == ConnState::Open {
            if conn.sent < conn.queued && flush(conn, &self.pattern).is_err() {
                self.lose(key);
            }
            return;
        }
        // Connecting. Events are hints: confirm the handshake really finished.
        let is_refused = !matches!(conn.stream.take_error(), Ok(None));
        match conn.stream.peer_addr() {
            Ok(_) if !is_refused => {}
            Err(e) if !is_refused && e.kind() == io::ErrorKind::NotConnected => return,
            _ => return self.abandon_connect(key),
        }
        let connect_started = conn.connect_started;
        conn.state = ConnState::Open;
        self.connecting -= 1;
        self.outcome.established += 1;
        let took = wake.stamp.micros_since(self.clock.stamp(connect_started));
        let _ = self.outcome.connect.record(took.max(1));
        let role = self.plan.role;
        let start = if role.latency_from_connect() {
            self.clock.stamp(connect_started)
        } else {
            wake.stamp
        };
        for _ in 0..role.first_messages(self.plan.pipeline) {
            self.start_message(key, start);
        }
    }

    fn on_readable(&mut self, key: usize, wake: Wake, fin_hinted: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.state != ConnState::Open {
                return;
            }
            let n = match syscall::recv(&conn.stream, &mut self.buffer) {
                Received::Bytes(n) => n,
                Received::WouldBlock => return,
                Received::Eof | Received::Failed(_) => return self.lose(key),
            };
            let reply = &self.buffer[..n];
            // Bytes past what was sent cannot be a reply to anything.
            let owed = (conn.sent - conn.received) as usize;
            self.outcome.mismatches +=
                self.pattern
                    .count_mismatches(conn.seed, conn.received, &reply[..n.min(owed)]);
            self.outcome.mismatches += n.saturating_sub(owed) as u64;
            conn.received += n as u64;
            if wake.measuring {
                self.outcome.bytes += n as u64;
            }
            let size = self.plan.size as u64;
            let mut finished = 0;
            while conn.received >= (conn.completed + 1) * size {
                let Some(started) = conn.in_flight.pop() else {
                    break;
                };
                conn.completed += 1;
                finished += 1;
                self.progress.count_message();
                if wake.recording {
                    let micros = wake.stamp.micros_since(started);
                    let _ = self.outcome.latency.record(micros.max(1));
                    self.outcome.messages += 1;
                }
            }
            for _ in 0..finished {
                self.on_reply(key, wake.stamp);
            }
            if n < self.buffer.len() && !fin_hinted {
                // A short read means drained: Linux's rule (see
                // reactor/connection.rs). Unlike the reactor, the load
                // generator applies it on every system, with no portable
                // loop: it is built and measured on Linux only.
                return;
            }
        }
    }

    /// A message's reply is complete: the role says what comes next.
    fn on_reply(&mut self, key: usize, now: Stamp) {
        match self.plan.role.after_reply() {
            AfterReply::SendAnother if self.is_running() => self.start_message(key, now),
            AfterReply::CloseAndReplace => {
                self.remove(key);
            }
            AfterReply::CountIdleRoundTrip => {
                if let Some(ok) = self.outcome.idle_ok.as_mut() {
                    *ok += 1;
                }
                if self.outcome.idle_ok == Some(self.outcome.established) {
                    // Every round trip is back: the check is over.
                    self.set_phase(RunPhase::Done);
                }
            }
            AfterReply::SendAnother | AfterReply::Wait => {}
        }
    }

    /// A connection lost mid-run: the server reset or closed it.
    fn lose(&mut self, key: usize) {
        if self.remove(key) {
            self.outcome.errors += 1;
        }
    }
}

/// Writes queued request bytes, straight from the pattern, until done or
/// the socket would block.
fn flush(conn: &mut Conn, pattern: &Pattern) -> io::Result<()> {
    while conn.sent < conn.queued {
        let len = ((conn.queued - conn.sent) as usize).min(pattern.max_len());
        match syscall::send(&conn.stream, pattern.request(conn.seed, conn.sent, len)) {
            Sent::Bytes(n) => conn.sent += n as u64,
            Sent::WouldBlock => return Ok(()),
            Sent::Failed(e) => return Err(e),
        }
    }
    Ok(())
}
