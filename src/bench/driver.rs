//! The load generator's TCP engine: a client-side mio reactor.
//!
//! The second worked example of the pattern, seen from the other end. One
//! thread and one `Poll` drive every client connection; each connection is a
//! small state machine (`Connecting`, then `Open`), fed by readiness:
//!
//! * **writable while connecting**: the non-blocking `connect` has finished;
//!   `take_error` says whether it succeeded (a refused connect shows up here);
//! * **writable while open**: write the rest of what is queued;
//! * **readable**: read the replies, check every byte, and for each message
//!   whose last byte arrived, record its latency and (closed loop) queue the
//!   next one.
//!
//! Messages are numbered by their offset in the stream: message `i` is bytes
//! `i*size .. (i+1)*size`, so no per-message bookkeeping but a start time is
//! kept. In the open loop (`--rate`) the start time is when the message was
//! *meant* to be sent by the schedule, not when it was, so a server that
//! stalls cannot hide its stall from the latency (no coordinated omission).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use super::payload::{Expect, count_mismatches, fill_request};
use super::progress::Progress;

/// Connects in flight at once: a storm of 10,000 SYNs at once would overflow
/// the server's accept queue and turn into one-second SYN retransmits.
const CONNECT_BATCH: usize = 512;
/// A connect that has not finished after this long is counted as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After `--idle`, how long the final round trips may take.
const IDLE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The I/O buffer (requests are generated into it, replies read into it).
const BUFFER: usize = 64 * 1024;

/// What the connections do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// Closed loop: each connection keeps `pipeline` messages in flight.
    Closed,
    /// Open loop: messages at this many per second in total, on a schedule.
    Rate(f64),
    /// Connect, one message, verify, close, repeat; latency covers it all.
    Churn,
    /// Connect, hold idle for the duration, then one round trip each.
    Idle,
}

/// Everything the driver needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server.
    pub addr: SocketAddr,
    /// How many connections (or churn slots).
    pub connections: usize,
    /// Source addresses to bind before connecting (round robin); empty: let
    /// the kernel choose.
    pub sources: Vec<IpAddr>,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection (closed loop).
    pub pipeline: usize,
    /// What the replies must be.
    pub expect: Expect,
    /// Time before measuring.
    pub warmup: Duration,
    /// Time measured (for `Idle`: time held idle).
    pub duration: Duration,
    /// The kind of load.
    pub workload: Workload,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Connections that completed their handshake (churn: cycles started that connected).
    pub established: u64,
    /// Connects that failed or timed out.
    pub failed: u64,
    /// Messages completed inside the measured window (churn: whole cycles).
    pub messages: u64,
    /// Reply bytes received inside the window.
    pub bytes: u64,
    /// Connections lost mid-run (reset, or closed by the server).
    pub errors: u64,
    /// Reply bytes that were not what the server owed.
    pub mismatches: u64,
    /// Latency of the messages in the window, in microseconds.
    pub latency: Histogram<u64>,
    /// The length of the measured window.
    pub measured: Duration,
    /// `Idle`: connections whose final round trip succeeded.
    pub idle_ok: Option<u64>,
}

impl Outcome {
    /// Nothing measured yet.
    ///
    /// # Errors
    /// Only if the histogram's bounds were invalid (they are constants).
    pub fn new() -> io::Result<Outcome> {
        Ok(Outcome {
            established: 0,
            failed: 0,
            messages: 0,
            bytes: 0,
            errors: 0,
            mismatches: 0,
            // 1 us to 60 s, 3 significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| io::Error::other(e.to_string()))?,
            measured: Duration::ZERO,
            idle_ok: None,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Open,
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    phase: Phase,
    seed: u64,
    connect_started: Instant,
    /// Stream offset written so far, and the offset queued to be written.
    sent: u64,
    queued: u64,
    /// Stream offset received (and checked) so far.
    received: u64,
    /// Start times of the messages not yet fully answered, oldest first.
    in_flight: VecDeque<Instant>,
    completed: u64,
}

/// The client reactor.
#[derive(Debug)]
pub struct Driver {
    plan: Plan,
    poll: Poll,
    conns: Slab<Conn>,
    buffer: Vec<u8>,
    /// Connections still to be opened, and how many are connecting now.
    to_open: usize,
    connecting: usize,
    next_source: usize,
    next_seed: u64,
    window: Option<(Instant, Instant)>,
    is_stopping: bool,
    outcome: Outcome,
    progress: Progress,
    /// Open loop: the next scheduled send, and the next connection to use.
    next_send: Option<Instant>,
    round_robin: usize,
}

impl Driver {
    /// A driver for `plan`.
    ///
    /// # Errors
    /// If the poll cannot be created.
    pub fn new(plan: Plan, progress: Progress) -> io::Result<Driver> {
        Ok(Driver {
            to_open: plan.connections,
            plan,
            poll: Poll::new()?,
            conns: Slab::new(),
            buffer: vec![0; BUFFER],
            connecting: 0,
            next_source: 0,
            next_seed: 0,
            window: None,
            is_stopping: false,
            outcome: Outcome::new()?,
            progress,
            next_send: None,
            round_robin: 0,
        })
    }

    /// Runs the plan to the end.
    ///
    /// # Errors
    /// Only if `Poll::poll` fails.
    pub fn run(mut self) -> io::Result<Outcome> {
        let mut events = Events::with_capacity(1024);
        let started = Instant::now();
        if self.plan.workload == Workload::Churn {
            self.window = Some((
                started + self.plan.warmup,
                started + self.plan.warmup + self.plan.duration,
            ));
        }
        loop {
            let now = Instant::now();
            self.open_more(now);
            if self.window.is_none() && self.to_open == 0 && self.connecting == 0 {
                self.begin_window(now);
            }
            if let Some((_, end)) = self.window {
                if now >= end && self.finish_phase(now) {
                    break;
                }
            }
            self.send_scheduled(now);
            self.progress
                .tick(now, self.open_count(), self.plan.connections);
            let timeout = self.timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                let key = event.token().0;
                if event.is_writable() || event.is_error() {
                    self.on_writable(key, now);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(key, now, event.is_read_closed() || event.is_error());
                }
            }
            self.expire_connects(now);
        }
        Ok(self.outcome)
    }

    fn open_count(&self) -> usize {
        self.conns.len() - self.connecting
    }

    /// Starts connects until the batch is full or all are started.
    fn open_more(&mut self, now: Instant) {
        while self.to_open > 0 && self.connecting < CONNECT_BATCH {
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
            // Each source address has its own ~28,000 ephemeral ports.
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
            phase: Phase::Connecting,
            seed: self.next_seed * 7,
            connect_started: now,
            sent: 0,
            queued: 0,
            received: 0,
            in_flight: VecDeque::new(),
            completed: 0,
        });
        Ok(())
    }

    fn connect_failed(&mut self) {
        self.outcome.failed += 1;
        // A churn slot tries again; a fixed connection is simply missing.
        if self.plan.workload == Workload::Churn && !self.is_stopping {
            self.to_open += 1;
        }
    }

    fn expire_connects(&mut self, now: Instant) {
        if self.connecting == 0 {
            return;
        }
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.phase == Phase::Connecting && now - c.connect_started > CONNECT_TIMEOUT
            })
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            self.conns.remove(key);
            self.connecting -= 1;
            self.connect_failed();
        }
    }

    fn begin_window(&mut self, now: Instant) {
        let start = now + self.plan.warmup;
        self.window = Some((start, start + self.plan.duration));
        if let Workload::Rate(_) = self.plan.workload {
            self.next_send = Some(now);
        }
    }

    /// The window has ended. Returns true when the run is over; `Idle` then
    /// does its round trips first.
    fn finish_phase(&mut self, now: Instant) -> bool {
        match (self.plan.workload, self.outcome.idle_ok) {
            (Workload::Idle, None) => {
                self.outcome.idle_ok = Some(0);
                self.window = Some((now, now + IDLE_CHECK_TIMEOUT));
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.start_message(key, now);
                }
                false
            }
            _ => {
                if let Some((start, _)) = self.window {
                    self.outcome.measured = now.saturating_duration_since(start);
                }
                if self.plan.workload == Workload::Idle {
                    self.outcome.measured = Duration::ZERO;
                }
                self.is_stopping = true;
                true
            }
        }
    }

    fn timeout(&self, now: Instant) -> Duration {
        let mut wake = now + Duration::from_millis(250);
        if let Some((start, end)) = self.window {
            wake = wake.min(if now < start { start } else { end });
        }
        if let Some(next) = self.next_send {
            wake = wake.min(next);
        }
        wake.saturating_duration_since(now)
    }

    /// Open loop: send every message whose scheduled time has come, each on
    /// the next open connection in turn.
    fn send_scheduled(&mut self, now: Instant) {
        let (Workload::Rate(rate), Some(mut next)) = (self.plan.workload, self.next_send) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            return;
        }
        while next <= now {
            let key = keys[self.round_robin % keys.len()];
            self.round_robin += 1;
            // The latency clock starts at the scheduled time.
            self.start_message(key, next);
            next += interval;
        }
        self.next_send = Some(next);
    }

    fn start_message(&mut self, key: usize, at: Instant) {
        let size = self.plan.size as u64;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.in_flight.push_back(at);
        conn.queued += size;
        if let Err(_e) = flush(conn, &mut self.buffer) {
            self.lose(key);
        }
    }

    fn on_writable(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            // Events are hints: confirm the handshake really finished.
            match conn.stream.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => {
                    self.conns.remove(key);
                    self.connecting -= 1;
                    return self.connect_failed();
                }
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.conns.remove(key);
                    self.connecting -= 1;
                    return self.connect_failed();
                }
            }
            conn.phase = Phase::Open;
            self.connecting -= 1;
            self.outcome.established += 1;
            let first = match self.plan.workload {
                Workload::Closed => self.plan.pipeline,
                Workload::Churn => 1,
                Workload::Rate(_) | Workload::Idle => 0,
            };
            let start = if self.plan.workload == Workload::Churn {
                conn.connect_started
            } else {
                now
            };
            for _ in 0..first {
                self.start_message(key, start);
            }
            return;
        }
        if conn.sent < conn.queued && flush(conn, &mut self.buffer).is_err() {
            self.lose(key);
        }
    }

    fn on_readable(&mut self, key: usize, now: Instant, read_closed: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.phase != Phase::Open {
                return;
            }
            let n = match conn.stream.read(&mut self.buffer) {
                Ok(0) => return self.lose(key),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.lose(key),
            };
            let reply = &self.buffer[..n];
            // Bytes past what was sent cannot be a reply to anything.
            let owed = (conn.sent - conn.received) as usize;
            self.outcome.mismatches += count_mismatches(
                conn.seed,
                conn.received,
                &reply[..n.min(owed)],
                self.plan.expect,
            );
            self.outcome.mismatches += n.saturating_sub(owed) as u64;
            conn.received += n as u64;
            let in_window = self
                .window
                .is_some_and(|(start, end)| now >= start && now < end);
            if in_window {
                self.outcome.bytes += n as u64;
            }
            let size = self.plan.size as u64;
            let mut finished = 0;
            while conn.received >= (conn.completed + 1) * size {
                let Some(started) = conn.in_flight.pop_front() else {
                    break;
                };
                conn.completed += 1;
                finished += 1;
                self.progress.count_message();
                if in_window || self.plan.workload == Workload::Idle {
                    let micros = now.saturating_duration_since(started).as_micros() as u64;
                    let _ = self.outcome.latency.record(micros.max(1));
                    self.outcome.messages += 1;
                }
            }
            for _ in 0..finished {
                self.on_message_done(key, now);
            }
            if n < self.buffer.len() && !read_closed {
                return; // Linux: a short read means drained (see reactor/connection.rs)
            }
        }
    }

    fn on_message_done(&mut self, key: usize, now: Instant) {
        match self.plan.workload {
            Workload::Closed if !self.is_stopping => self.start_message(key, now),
            Workload::Churn => {
                // One cycle done: close, and the slot connects again.
                self.conns.remove(key);
                if !self.is_stopping {
                    self.to_open += 1;
                }
            }
            Workload::Idle => {
                if let Some(ok) = self.outcome.idle_ok.as_mut() {
                    *ok += 1;
                }
                if self.outcome.idle_ok == Some(self.outcome.established) {
                    // Every round trip is back: end the check now.
                    self.window = Some((now, now));
                }
            }
            _ => {}
        }
    }

    /// A connection lost mid-run: the server reset or closed it.
    fn lose(&mut self, key: usize) {
        if self.conns.try_remove(key).is_some() {
            self.outcome.errors += 1;
            if self.plan.workload == Workload::Churn && !self.is_stopping {
                self.to_open += 1;
            }
        }
    }
}

/// Writes queued request bytes until done or the socket would block.
fn flush(conn: &mut Conn, buffer: &mut [u8]) -> io::Result<()> {
    while conn.sent < conn.queued {
        let len = ((conn.queued - conn.sent) as usize).min(buffer.len());
        fill_request(conn.seed, conn.sent, &mut buffer[..len]);
        match conn.stream.write(&buffer[..len]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.sent += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
