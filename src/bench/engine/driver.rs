//! The load generator's TCP engine: a client-side mio reactor.
//!
//! The second worked example of the pattern, seen from the other end, and
//! built the same way as the server: one thread, one `Poll`, connections in
//! a `Slab` keyed by token, each a small state machine (`ConnState` in
//! `driver/conn.rs`: `Connecting`, then `Open`), and [`Driver::run`], the
//! loop, in the reactor's four phases, each a method of the same name but
//! the sleep, which every loop of the load generator shares:
//!
//! 1. **before sleep** (`Driver::before_sleep`): start connects, at most
//!    the plan's window in flight
//!    ([`connect_window`](super::plan::connect_window)); move the run to
//!    its next [`Period`] when it is due; in the open loop, send the
//!    messages whose time has come; print the progress line; and work out
//!    how long the poll may sleep (until the period ends, the next
//!    scheduled send or the next sweep of connects, at most [`MAX_SLEEP`]);
//! 2. **sleep** ([`sleep`]): `Poll::poll`, then the clock is
//!    read, once for the batch;
//! 3. **dispatch** (`Driver::dispatch`): each event to its connection;
//! 4. **timers** (`Driver::timers`): connects that took too long are
//!    counted as failed, found by a sweep like the reactor's idle
//!    deadlines (`Sweeper`): the earliest deadline is noted, and all
//!    connections are walked once when it is due, never on every wake-up.
//!
//! Readiness drives each connection:
//!
//! * **writable while connecting**: the non-blocking `connect` has finished;
//!   `take_error` says whether it succeeded (a refused connect shows up here);
//! * **writable while open**: write the rest of what is queued;
//! * **readable**: read the replies, check every byte, and for each message
//!   whose last byte arrived, record its latency and ask the
//!   [`Role`](super::role::Role) what comes next.
//!
//! What depends on the kind of load is asked of the connection's
//! [`Role`](super::role::Role) (`role.rs`), never branched on here. What is
//! read besides the replies (the per-second series, CPU times, the kernel,
//! the server's memory, the progress line) is the [`Instruments`]' job:
//! a reply's latency goes to the series' interval, the one call per
//! message. Opening connections (the connect window, the timeouts, each
//! failure with its cause) is in `driver/opening.rs`.
//!
//! **Removal.** A slot is freed at once (a lost connection, a finished churn
//! cycle, a failed connect), not after the batch as in the server. That is
//! safe because slots are reused only by connects, and connects start only
//! in the *before sleep* phase: within a batch a freed slot stays empty,
//! and a later event for it finds nothing (`get_mut` is `None`).
//!
//! Messages are numbered by their offset in the stream: message `i` is bytes
//! `i*size .. (i+1)*size`, so no per-message bookkeeping but a start time is
//! kept. In the open loop (`--rate`) the start time is when the message was
//! *meant* to be sent by the schedule, not when it was, so a server that
//! stalls cannot hide its stall from the latency (no coordinated omission).

mod conn;
mod opening;

use std::io;
use std::time::{Duration, Instant};

use log::trace;
use mio::event::Event;
use mio::{Events, Poll};
use slab::Slab;

use super::period::Period;
use super::plan::{Outcome, Plan};
use super::role::AfterReply;
use super::stamp::{RunClock, Stamp};
use super::{interrupted, sleep, timeout_until};
use crate::bench::measure::failures::Cause;
use crate::bench::measure::instruments::Instruments;
use crate::bench::payload::Pattern;
use crate::reactor::deadlines::Sweeper;
use crate::syscall::{self, Received};
use conn::{Conn, ConnState};

/// The read buffer, and the longest request written in one `send`.
const BUFFER: usize = 64 * 1024;
/// Events taken from the kernel per poll.
const EVENTS_CAPACITY: usize = 1024;
/// The longest the loop sleeps, so that the progress line keeps coming.
const MAX_SLEEP: Duration = Duration::from_millis(250);

/// The open loop sends at most this many messages a turn: a generator
/// that has fallen behind its schedule catches up over several turns, its
/// replies read and its progress line printed between them, instead of
/// vanishing into one loop of a million sends.
const MAX_SENDS_PER_TURN: usize = 4_096;

/// What one wake-up knows, worked out once for all its events: the time as
/// a stamp. (Whether its replies count is the series' business: the
/// interval under way is of the period the wake-up is in.)
#[derive(Debug, Clone, Copy)]
struct Wake {
    stamp: Stamp,
}

/// Where a read turn may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadUntil {
    /// At the first short read: Linux's rule that it drained the socket
    /// (see `reactor/connection.rs`). Unlike the reactor, the load
    /// generator applies it on every system, with no portable loop: it is
    /// built and measured on Linux only.
    ShortRead,
    /// Only at `WouldBlock` or the end of the stream: the event hinted at
    /// the peer's FIN or an error, which no later event will report again,
    /// so it must be read now, past a short read.
    WouldBlock,
}

/// The client reactor.
#[derive(Debug)]
pub(crate) struct Driver {
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
    period: Period,
    outcome: Outcome,
    /// The progress line, CPU times, the kernel and the server's memory.
    instruments: Instruments,
    /// Open loop: the next scheduled send, and the next connection to use.
    next_send: Option<Instant>,
    round_robin: usize,
    /// When connects must next be checked for their timeout.
    connect_sweeper: Sweeper,
}

impl Driver {
    /// A driver for `plan`.
    ///
    /// # Errors
    /// If the poll cannot be created.
    pub(crate) fn new(plan: Plan, instruments: Instruments) -> io::Result<Driver> {
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
            period: Period::Opening,
            outcome: Outcome::new()?,
            instruments,
            next_send: None,
            round_robin: 0,
            connect_sweeper: Sweeper::default(),
        })
    }

    /// Runs the plan to the end: the loop, in its four phases.
    ///
    /// # Errors
    /// Only if `Poll::poll` fails, or a process of several loses its parent.
    pub(crate) fn run(mut self) -> io::Result<Outcome> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        if !self.plan.role.opens_all_first() {
            self.wait_for_parent()?;
            self.start_clock(Instant::now());
        }
        // One clock read per wake-up, after the sleep: the same moment serves
        // this batch's dispatch and timers and the next turn's before-sleep.
        let mut now = Instant::now();
        while let Some(timeout) = self.before_sleep(now)? {
            now = sleep(&mut self.poll, &mut events, Some(timeout))?;
            let wake = self.wake(now);
            for event in events.iter() {
                self.dispatch(event, wake);
            }
            self.timers(now);
        }
        let up = self.up();
        self.instruments
            .finish(now, &mut self.outcome, up, self.plan.connections);
        Ok(self.outcome)
    }

    /// Connections open (not connecting).
    fn up(&self) -> usize {
        self.conns.len() - self.connecting
    }

    /// Phase 1: open, move the run on, send what the schedule says, and
    /// choose the timeout. `None`: the run is over.
    fn before_sleep(&mut self, now: Instant) -> io::Result<Option<Duration>> {
        self.open_more(now);
        let now = if self.period == Period::Opening && self.to_open == 0 && self.connecting == 0 {
            // Waiting for the parent's word may take a while: the run goes
            // on from the moment its clock started.
            self.all_open()?
        } else {
            now
        };
        self.advance(now);
        if self.period == Period::Done {
            return Ok(None);
        }
        self.send_scheduled(now);
        let up = self.up();
        self.instruments
            .tick(now, &mut self.outcome, up, self.plan.connections);
        let wakes = [
            self.period.ends_at(),
            self.next_send,
            self.connect_sweeper.next(),
            Some(self.instruments.next_close()),
        ];
        Ok(Some(timeout_until(now, wakes, MAX_SLEEP)))
    }

    /// Phase 3: one event to its connection. Errors and hang-ups are only
    /// hints (mio's docs): the verdict comes from the read or the write.
    #[inline]
    fn dispatch(&mut self, event: &Event, wake: Wake) {
        let key = event.token().0;
        if event.is_writable() || event.is_error() {
            self.on_writable(key, wake);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let until = if event.is_read_closed() || event.is_error() {
                ReadUntil::WouldBlock
            } else {
                ReadUntil::ShortRead
            };
            self.on_readable(key, wake, until);
        }
    }

    /// Phase 4: connects past their timeout, when a sweep is due.
    fn timers(&mut self, now: Instant) {
        if self.connect_sweeper.is_due(now) {
            self.sweep_connects(now);
        }
    }

    /// The one place the run's period changes, so that `RUST_LOG=trace`
    /// shows every step of a run; the series closes its interval, and the
    /// instruments read the CPU times as the measured window opens and
    /// closes.
    fn set_period(&mut self, next: Period, now: Instant) {
        trace!("bench period {:?} => {next:?}", self.period);
        let stage = next.stage(self.plan.role.checks_after_hold());
        let counts = (self.up(), self.plan.connections);
        self.instruments
            .period_changes((self.period, next), stage, now, &mut self.outcome, counts);
        self.period = next;
    }

    /// Every connection is open (or has failed): the instruments read the
    /// kernel's side, a process of several waits for its parent's word to
    /// go on, and the clock starts. Returns the moment it started.
    fn all_open(&mut self) -> io::Result<Instant> {
        self.instruments.all_open(&mut self.outcome);
        self.wait_for_parent()?;
        let now = Instant::now();
        self.start_clock(now);
        Ok(now)
    }

    fn wait_for_parent(&self) -> io::Result<()> {
        super::start_gate(&self.plan)
    }

    /// Moves the run on when the current period is over, when Ctrl-C
    /// asks, or when no connection could be opened (there is nothing to
    /// measure: waiting out the duration would only hide the failure).
    fn advance(&mut self, now: Instant) {
        if self.period != Period::Done && interrupted() {
            self.outcome.interrupted = true;
            if let Period::Measuring { from, .. } = self.period {
                self.outcome.measured = now.saturating_duration_since(from);
            }
            return self.set_period(Period::Done, now);
        }
        match self.period {
            Period::Warmup { .. } | Period::Measuring { .. } if self.nothing_connects() => {
                self.set_period(Period::Done, now);
            }
            Period::Warmup { until } if now >= until => {
                let end = until + self.plan.duration;
                self.set_period(
                    Period::Measuring {
                        from: until,
                        until: end,
                    },
                    now,
                );
            }
            Period::Measuring { from, until } if now >= until => {
                // The window is what was asked: a loop that noticed its
                // end late counted nothing after it.
                self.outcome.measured = until.saturating_duration_since(from);
                if self.plan.role.checks_after_hold() {
                    self.begin_idle_check(now);
                } else {
                    self.set_period(Period::Done, now);
                }
            }
            Period::IdleCheck { until } if now >= until => self.set_period(Period::Done, now),
            _ => {}
        }
    }

    /// The clock starts: warm-up first (the open loop's schedule too).
    fn start_clock(&mut self, now: Instant) {
        self.set_period(
            Period::Warmup {
                until: now + self.plan.warmup,
            },
            now,
        );
        if self.plan.role.scheduled_rate().is_some() {
            self.next_send = Some(now);
        }
    }

    /// `Idle`: the hold is over; one round trip on every connection.
    fn begin_idle_check(&mut self, now: Instant) {
        self.outcome.idle_ok = Some(0);
        self.set_period(
            Period::IdleCheck {
                until: now + self.plan.reply_timeout,
            },
            now,
        );
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        let start = self.clock.stamp(now);
        for key in keys {
            self.start_message(key, start);
        }
    }

    /// The wake-up at `now`. The run's period is moved on first, at the
    /// moment the clock was read: a reply read in this batch belongs to
    /// the period of that moment (counted if it is the measured window,
    /// not if the window has just ended), and so to the series' interval
    /// of that period.
    fn wake(&mut self, now: Instant) -> Wake {
        // (Only when the period is due: most wake-ups are not at its end.)
        if self.period.ends_at().is_some_and(|end| now >= end) {
            self.advance(now);
        }
        Wake {
            stamp: self.clock.stamp(now),
        }
    }

    /// Whether the run still starts new work (messages, connections).
    fn is_running(&self) -> bool {
        self.period != Period::Done
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

    /// The open loop: send every message whose scheduled time has come
    /// (at most [`MAX_SENDS_PER_TURN`] a turn), each on the next open
    /// connection in turn; how far behind the schedule is, when it is.
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
        let mut sent = 0;
        while next <= now && sent < MAX_SENDS_PER_TURN {
            let key = keys[self.round_robin % keys.len()];
            self.round_robin += 1;
            // The latency clock starts at the scheduled time.
            self.start_message(key, self.clock.stamp(next));
            next += interval;
            sent += 1;
        }
        if next <= now && self.period.stage(false).counts() {
            // Still behind after a full turn: the generator, not the
            // server, is late (the late messages' latency includes it).
            let lag = now - next;
            self.outcome.schedule_lag = self.outcome.schedule_lag.max(Some(lag));
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
        if let Err(e) = conn.flush(&self.pattern) {
            self.lose(key, Cause::of(&e));
        }
    }

    fn on_writable(&mut self, key: usize, wake: Wake) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.state == ConnState::Open {
            if conn.sent < conn.queued {
                if let Err(e) = conn.flush(&self.pattern) {
                    self.lose(key, Cause::of(&e));
                }
            }
            return;
        }
        // Connecting. Events are hints: confirm the handshake really finished.
        let failure = match conn.stream.take_error() {
            Ok(None) => None,
            Ok(Some(e)) | Err(e) => Some(Cause::of(&e)),
        };
        match (failure, conn.stream.peer_addr()) {
            (None, Ok(_)) => {}
            (None, Err(e)) if e.kind() == io::ErrorKind::NotConnected => return,
            (Some(cause), _) => return self.abandon_connect(key, cause),
            (None, Err(e)) => return self.abandon_connect(key, Cause::of(&e)),
        }
        let connect_started = conn.connect_started;
        conn.state = ConnState::Open;
        self.connecting -= 1;
        self.outcome.established += 1;
        let took = wake.stamp.micros_since(self.clock.stamp(connect_started));
        let _ = self.outcome.connect.record(took.max(1));
        self.instruments.series.connected(took.max(1));
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

    fn on_readable(&mut self, key: usize, wake: Wake, until: ReadUntil) {
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
                Received::Eof => return self.lose(key, Cause::Closed),
                Received::Failed(e) => return self.lose(key, Cause::of(&e)),
            };
            let reply = &self.buffer[..n];
            // Bytes past what was sent cannot be a reply to anything.
            let owed = (conn.sent - conn.received) as usize;
            self.outcome.mismatches +=
                self.pattern
                    .count_mismatches(conn.seed, conn.received, &reply[..n.min(owed)]);
            self.outcome.mismatches += n.saturating_sub(owed) as u64;
            conn.received += n as u64;
            self.instruments.series.bytes(n);
            let size = self.plan.size as u64;
            let mut finished = 0;
            while conn.received >= (conn.completed + 1) * size {
                let Some(started) = conn.in_flight.pop() else {
                    break;
                };
                conn.completed += 1;
                finished += 1;
                self.instruments
                    .series
                    .reply(wake.stamp.micros_since(started));
            }
            for _ in 0..finished {
                self.on_reply(key, wake.stamp);
            }
            if n < self.buffer.len() && until == ReadUntil::ShortRead {
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
                    self.set_period(Period::Done, Instant::now());
                }
            }
            AfterReply::SendAnother | AfterReply::Wait => {}
        }
    }

    /// A connection lost mid-run: the server reset or closed it.
    fn lose(&mut self, key: usize, cause: Cause) {
        if self.remove(key) {
            self.outcome.errors += 1;
            self.outcome.failures.count(cause);
        }
    }
}
