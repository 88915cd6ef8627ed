//! The load generator's UDP engine: N sockets, each with one datagram in
//! flight (stop and wait), on the same single-threaded mio loop as the TCP
//! engine, in the same four phases (`driver.rs` says what each does):
//! before sleep (move the run to its next [`Period`], the progress line,
//! the timeout), sleep, dispatch (each socket's replies, checked, and its
//! next datagram), timers (the sweep for lost datagrams).
//!
//! UDP may lose a datagram (or its reply), so a socket whose datagram has
//! had no reply for [`LOSS_TIMEOUT`] counts it as lost and sends the next.
//! The deadlines are kept like the reactor's idle deadlines (`Sweeper`):
//! the earliest is noted, and when it is due one walk over the sockets
//! finds every datagram that waited too long (each is noticed at most
//! `MIN_SWEEP_INTERVAL` after its deadline), rather than a walk on every
//! wake-up. A reply only ever moves a socket's deadline later, so the noted
//! one is a lower bound. A reply that comes after its datagram was given up
//! on is recognised by its content (every datagram's bytes depend on its
//! sequence number) and ignored rather than counted as a mismatch.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::trace;
use mio::event::Event;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::period::Period;
use super::plan::{Outcome, Plan};
use super::{interrupted, sleep, timeout_until};
use crate::bench::measure::failures::Cause;
use crate::bench::measure::instruments::Instruments;
use crate::bench::payload::Pattern;
use crate::reactor::deadlines::Sweeper;

/// How long a socket waits for a reply before counting the datagram lost.
pub(crate) const LOSS_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest the loop sleeps, so that the progress line keeps coming.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Events taken from the kernel per poll.
const EVENTS_CAPACITY: usize = 1024;

/// One socket and its datagram in flight.
#[derive(Debug)]
struct Sender {
    socket: UdpSocket,
    seed: u64,
    sequence: u64,
    sent_at: Instant,
}

/// Runs `plan` over UDP. Returns the outcome and the number of datagrams lost.
///
/// # Errors
/// If sockets cannot be opened or the poll fails.
pub(crate) fn run(plan: &Plan, instruments: Instruments) -> io::Result<(Outcome, u64)> {
    UdpDriver::open(plan, instruments)?.run()
}

/// The UDP engine's loop and what it keeps.
#[derive(Debug)]
struct UdpDriver<'a> {
    plan: &'a Plan,
    poll: Poll,
    senders: Vec<Sender>,
    /// Replies are read into it.
    reply: Vec<u8>,
    /// Requests are written from it, and replies checked against it.
    pattern: Pattern,
    period: Period,
    outcome: Outcome,
    lost: u64,
    /// The progress line and the CPU times.
    instruments: Instruments,
    /// When datagrams must next be checked for their loss timeout.
    loss_sweeper: Sweeper,
}

impl UdpDriver<'_> {
    /// Opens and registers one socket per connection of the plan (a socket
    /// that cannot be opened counts as a failed connection).
    fn open(plan: &Plan, instruments: Instruments) -> io::Result<UdpDriver<'_>> {
        let poll = Poll::new()?;
        let local: SocketAddr = if plan.addr.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let mut outcome = Outcome::new()?;
        let reply = vec![0u8; 65_536];
        // A datagram is at most 65,507 bytes: one slice of the pattern each.
        let pattern = Pattern::new(plan.expect, reply.len());
        let mut senders = Vec::with_capacity(plan.connections);
        let now = Instant::now();
        for i in 0..plan.connections {
            let connected = UdpSocket::bind(local).and_then(|s| s.connect(plan.addr).map(|()| s));
            let mut socket = match connected {
                Ok(socket) => socket,
                Err(e) => {
                    outcome.failed += 1;
                    outcome.failures.count(Cause::of(&e));
                    continue;
                }
            };
            poll.registry()
                .register(&mut socket, Token(senders.len()), Interest::READABLE)?;
            outcome.established += 1;
            senders.push(Sender {
                socket,
                seed: i as u64 * 7,
                sequence: 0,
                sent_at: now,
            });
        }
        Ok(UdpDriver {
            plan,
            poll,
            senders,
            reply,
            pattern,
            period: Period::Opening,
            outcome,
            lost: 0,
            instruments,
            loss_sweeper: Sweeper::default(),
        })
    }

    /// The first datagram on every socket, then the loop in its four phases.
    fn run(mut self) -> io::Result<(Outcome, u64)> {
        super::start_gate(self.plan)?;
        let now = Instant::now();
        for sender in &mut self.senders {
            sender.sent_at = now;
            let request = self.pattern.request(sender.seed, 0, self.plan.size);
            if sender.socket.send(request).is_err() {
                self.outcome.errors += 1;
            }
        }
        self.loss_sweeper.wake_at(now + LOSS_TIMEOUT);
        let now = Instant::now();
        self.set_period(
            Period::Warmup {
                until: now + self.plan.warmup,
            },
            now,
        );
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut now = Instant::now();
        while let Some(timeout) = self.before_sleep(now) {
            now = sleep(&mut self.poll, &mut events, Some(timeout))?;
            // The period of the moment the clock was read is the one the
            // batch's replies belong to (see `driver.rs`, `wake`).
            if self.period.ends_at().is_some_and(|end| now >= end) {
                self.advance(now);
            }
            for event in events.iter() {
                self.dispatch(event, now);
            }
            self.timers(now);
        }
        let up = self.senders.len();
        self.instruments
            .finish(now, &mut self.outcome, up, self.plan.connections);
        Ok((self.outcome, self.lost))
    }

    /// Moves the run on when its period is over, or Ctrl-C asks; the
    /// window measured is the one planned (a loop that noticed its end
    /// late counted nothing after it).
    fn advance(&mut self, now: Instant) {
        if self.period != Period::Done && interrupted() {
            self.outcome.interrupted = true;
            if let Period::Measuring { from, .. } = self.period {
                self.outcome.measured = now.saturating_duration_since(from);
            }
            return self.set_period(Period::Done, now);
        }
        match self.period {
            Period::Warmup { .. } if self.senders.is_empty() => {
                self.set_period(Period::Done, now);
            }
            Period::Warmup { until } if now >= until => self.set_period(
                Period::Measuring {
                    from: until,
                    until: until + self.plan.duration,
                },
                now,
            ),
            Period::Measuring { until, .. } if now >= until => {
                self.outcome.measured = self.plan.duration;
                self.set_period(Period::Done, now);
            }
            _ => {}
        }
    }

    /// Phase 1: move the run on, close the series' interval when its
    /// second is over, and choose the timeout. `None`: the run is over.
    fn before_sleep(&mut self, now: Instant) -> Option<Duration> {
        self.advance(now);
        if self.period == Period::Done {
            return None;
        }
        let up = self.senders.len();
        self.instruments
            .tick(now, &mut self.outcome, up, self.plan.connections);
        let wakes = [
            self.period.ends_at(),
            self.loss_sweeper.next(),
            Some(self.instruments.next_close()),
        ];
        Some(timeout_until(now, wakes, MAX_SLEEP))
    }

    /// Phase 3: a socket's replies, each checked and handed to the series
    /// (which counts it if the interval is of the measured window); each
    /// answered datagram is followed by the next.
    fn dispatch(&mut self, event: &Event, now: Instant) {
        let size = self.plan.size;
        let Some(sender) = self.senders.get_mut(event.token().0) else {
            return;
        };
        loop {
            let n = match sender.socket.recv(&mut self.reply) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.outcome.errors += 1;
                    break;
                }
            };
            let reply = &self.reply[..n];
            let offset = sender.sequence * size as u64;
            let wrong = self.pattern.count_mismatches(sender.seed, offset, reply)
                + (n.abs_diff(size)) as u64;
            if wrong > 0 && is_stale(sender, reply, size, &self.pattern) {
                continue;
            }
            self.outcome.mismatches += wrong;
            let series = &mut self.instruments.series;
            series.bytes(n);
            series.reply(now.saturating_duration_since(sender.sent_at).as_micros() as u64);
            send_next(sender, &self.pattern, size, now, &mut self.outcome);
        }
    }

    /// Phase 4: when the sweep is due, every datagram that has waited past
    /// [`LOSS_TIMEOUT`] is lost and the next one sent; the earliest
    /// deadline left is noted for the next sweep.
    fn timers(&mut self, now: Instant) {
        if !self.loss_sweeper.is_due(now) {
            return;
        }
        let mut earliest: Option<Instant> = None;
        for sender in &mut self.senders {
            if now.saturating_duration_since(sender.sent_at) > LOSS_TIMEOUT {
                self.lost += 1;
                send_next(
                    sender,
                    &self.pattern,
                    self.plan.size,
                    now,
                    &mut self.outcome,
                );
            }
            let deadline = sender.sent_at + LOSS_TIMEOUT;
            earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
        }
        self.loss_sweeper.swept(now, earliest);
    }

    /// The one place the run's period changes (see `driver.rs`).
    fn set_period(&mut self, next: Period, now: Instant) {
        trace!("bench udp period {:?} => {next:?}", self.period);
        let counts = (self.senders.len(), self.plan.connections);
        self.instruments.period_changes(
            (self.period, next),
            next.stage(false),
            now,
            &mut self.outcome,
            counts,
        );
        self.period = next;
    }
}

fn send_next(
    sender: &mut Sender,
    pattern: &Pattern,
    size: usize,
    now: Instant,
    outcome: &mut Outcome,
) {
    sender.sequence += 1;
    let request = pattern.request(sender.seed, sender.sequence * size as u64, size);
    sender.sent_at = now;
    if sender.socket.send(request).is_err() {
        outcome.errors += 1;
    }
}

/// Whether `reply` answers one of the last few datagrams given up on.
fn is_stale(sender: &Sender, reply: &[u8], size: usize, pattern: &Pattern) -> bool {
    (1..=4).any(|back| {
        sender.sequence >= back
            && reply.len() == size
            && pattern.count_mismatches(sender.seed, (sender.sequence - back) * size as u64, reply)
                == 0
    })
}
