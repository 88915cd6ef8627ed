//! One hostile TCP peer: it connects, plays its kind's script, and when the
//! script ends (a reset, a finished half-close) or the server ends it, it
//! connects again after a pause, until the run is over.
//!
//! Where it is between one connection and the next is an explicit state
//! machine (`tcp_peer/state.rs`: `Waiting`, `Connecting`, `Playing`,
//! `Stalled`, `WriteShut`, `Left`), whose pure `State::next` decides each
//! transition and names its action; this file does the I/O, feeds the
//! machine what it found ([`TcpPeer::feed`]), and carries out the actions.
//!
//! Like the verified clients it is non-blocking and edge-triggered, so each
//! step reads until `WouldBlock` and writes until the script says stop or
//! the socket is full. Some kinds are paced by time instead (a slow byte
//! every [`SLOW_PAUSE`]): those wait on their timer, which the chaos loop
//! keeps with the others' (`chaos/peer_loop.rs`), not on readiness.
//!
//! Every kind checks what it can: a reply byte is compared with what the
//! server owes (the verified clients' pattern, or the UTF-8 text), and an
//! end of stream with bytes still owed counts those bytes as mismatched.

mod state;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::jitter::Jitter;
use super::kind::Kind;
use super::tally::Tally;
use super::{RESUME_PAUSE, Stage};
use state::{Action, Input, State};

/// Slowloris: one byte every this long.
pub(crate) const SLOW_PAUSE: Duration = Duration::from_millis(200);
/// The UTF-8 kind: between the bytes of a message, so that the server reads
/// them apart and characters are split across its reads.
pub(crate) const SPLIT_PAUSE: Duration = Duration::from_millis(5);
/// Between one script and the next (a reset, a half-close, a sliced or a
/// split message), and before connecting again after a failure.
pub(crate) const CYCLE_PAUSE: Duration = Duration::from_millis(100);
/// The reset kind sends this much, then resets with the reply on its way.
pub(crate) const RESET_BYTES: u64 = 16 * 1024;
/// The half-close kind sends this much before shutting its write side.
pub(crate) const HALF_CLOSE_BYTES: u64 = 8 * 1024;
/// The slice kind's longest message (`--size`, up to this): one write per
/// byte, so a megabyte message would be a million writes in one step.
pub(crate) const SLICE_MAX: usize = 4096;
/// The never-reading kind's writes per step (each up to 64 KiB).
pub(crate) const NEVER_READ_WRITES_PER_STEP: usize = 4;
/// The never-reading kind's receive buffer (the kernel doubles it, and
/// keeps it above its minimum).
pub(crate) const NEVER_READ_RECEIVE_BUFFER: usize = 4 * 1024;

/// How a connection ended, from the peer's side.
#[derive(Debug)]
enum Ended {
    /// The server's FIN.
    Eof,
    /// A reset or another error.
    Failed(io::Error),
}

/// One hostile TCP peer and its current connection.
#[derive(Debug)]
pub(crate) struct TcpPeer {
    kind: Kind,
    token: Token,
    /// Where it is; `stream` is `Some` in every state but `Waiting` and
    /// `Left`.
    state: State,
    stream: Option<TcpStream>,
    /// Chooses where in the alphabet the pattern starts; a new one per
    /// connection.
    seed: u64,
    /// Bytes sent on this connection (the UTF-8 kind: of this message).
    sent: u64,
    /// Reply bytes received on this connection (UTF-8: of this message).
    received: u64,
    /// The slice kind: where the message being written ends.
    message_end: u64,
    /// When the script (or the next connect) waits for time.
    timer: Option<Instant>,
    /// Draws this peer's pauses (`jitter.rs`).
    jitter: Jitter,
}

impl TcpPeer {
    /// A peer of `kind`, registered under `token` once it connects, which it
    /// does when its first timer is due.
    pub(crate) fn new(kind: Kind, token: Token, seed: u64) -> TcpPeer {
        let mut jitter = Jitter::new(seed);
        let first = Instant::now() + jitter.within(CYCLE_PAUSE);
        TcpPeer {
            kind,
            token,
            state: State::Waiting,
            stream: None,
            seed,
            sent: 0,
            received: 0,
            message_end: 0,
            timer: Some(first),
            jitter,
        }
    }

    /// When the peer next waits for time, if it does.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.timer
    }

    /// One step: connect if due, finish connecting, read what came back,
    /// write what the script allows now. Called on every readiness event
    /// and when the timer is due.
    pub(crate) fn step(&mut self, now: Instant, stage: &mut Stage<'_>, tally: &mut Tally) {
        let mut due = self.timer.is_some_and(|t| t <= now);
        if due {
            self.timer = None;
        }
        match self.state {
            State::Waiting if due => self.feed(Input::TimerDue, now, stage, tally),
            State::Connecting => match self.connect_result() {
                None => {}
                Some(Ok(())) => {
                    // The paced kinds start at once.
                    due = true;
                    self.feed(Input::Connected, now, stage, tally);
                }
                Some(Err(e)) => {
                    debug!("chaos {}: connect failed: {e}", self.kind.name());
                    self.feed(Input::ConnectFailed, now, stage, tally);
                }
            },
            _ => {}
        }
        if !self.state.is_connected() {
            return;
        }
        let played = self
            .read_replies(now, stage, tally)
            .and_then(|()| self.write_what_is_due(now, due, stage, tally));
        if let Err(end) = played {
            self.end(end, now, stage, tally);
        }
    }

    /// The connection ended under the script: the server's FIN, or a
    /// failure.
    fn end(&mut self, end: Ended, now: Instant, stage: &mut Stage<'_>, tally: &mut Tally) {
        let input = match end {
            Ended::Eof => Input::Eof,
            Ended::Failed(e) => {
                debug!("chaos {}: connection failed: {e}", self.kind.name());
                Input::Failed
            }
        };
        self.feed(input, now, stage, tally);
    }

    /// Closes the connection at the end of the run (a never-reading peer's
    /// close becomes a reset, because its receive queue is not empty).
    pub(crate) fn leave(&mut self, stage: &mut Stage<'_>, tally: &mut Tally) {
        self.feed(Input::RunOver, Instant::now(), stage, tally);
    }

    /// Moves the machine on with `input` and carries out the action. Only
    /// the half-close's shutdown can fail, and its failure ends the
    /// connection like any other.
    fn feed(&mut self, input: Input, now: Instant, stage: &mut Stage<'_>, tally: &mut Tally) {
        let (to, action) = self.state.next(input, self.kind);
        self.state = to;
        match action {
            Action::None => {}
            Action::Connect => self.connect(now, stage, tally),
            Action::Start => {
                tally.connects += 1;
                if self.kind == Kind::Vanish {
                    tally.cycles += 1;
                }
            }
            Action::CountStall => tally.cycles += 1,
            Action::Reset => {
                if let Some(stream) = self.stream.as_ref() {
                    // SO_LINGER 0: close() sends a RST at once, with the
                    // server's reply still on its way.
                    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
                }
                tally.cycles += 1;
                self.close_and_pause(now, stage);
            }
            Action::ShutWrite => {
                let shut = self.stream.as_ref().map(|s| s.shutdown(Shutdown::Write));
                if let Some(Err(e)) = shut {
                    self.end(Ended::Failed(e), now, stage, tally);
                }
            }
            Action::FinAnswered => {
                // The FIN it asked for: every byte owed must have come first.
                let owed = self.owed(stage);
                if owed == 0 {
                    tally.cycles += 1;
                }
                tally.mismatches += owed;
                self.close_and_pause(now, stage);
            }
            Action::ServerClosed => {
                tally.server_closed += 1;
                if !matches!(self.kind, Kind::NeverRead | Kind::Reset) {
                    tally.mismatches += self.owed(stage);
                }
                self.close_and_pause(now, stage);
            }
            Action::ServerReset => {
                tally.server_reset += 1;
                self.close_and_pause(now, stage);
            }
            Action::ConnectFailed => {
                tally.connect_failures += 1;
                self.close_and_pause(now, stage);
            }
            Action::Leave => self.close(stage),
        }
    }

    /// Opens a socket and starts connecting, with a new seed and zeroed
    /// counts; a connect that fails at once is fed back to the machine.
    fn connect(&mut self, now: Instant, stage: &mut Stage<'_>, tally: &mut Tally) {
        let registered = self.open(stage.addr).and_then(|mut stream| {
            stage.registry.register(
                &mut stream,
                self.token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match registered {
            Ok(stream) => {
                self.stream = Some(stream);
                self.seed += 1;
                self.sent = 0;
                self.received = 0;
                self.message_end = 0;
            }
            Err(e) => {
                debug!("chaos {}: connect failed: {e}", self.kind.name());
                self.feed(Input::ConnectFailed, now, stage, tally);
            }
        }
    }

    /// Starts a non-blocking connect. A never-reading peer first shrinks its
    /// receive buffer, as a small device or a stalled reader would: the
    /// kernel's buffers on its side (which loopback autotuning lets grow to
    /// megabytes) then fill at once, and what it costs the server shows as
    /// the server's own memory, not the kernel's.
    fn open(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        if self.kind != Kind::NeverRead {
            return TcpStream::connect(addr);
        }
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_recv_buffer_size(NEVER_READ_RECEIVE_BUFFER)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
    }

    /// `None` while the handshake is in progress.
    fn connect_result(&self) -> Option<io::Result<()>> {
        let stream = self.stream.as_ref()?;
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return Some(Err(e)),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Closes the connection (if any): deregistered, then dropped.
    fn close(&mut self, stage: &mut Stage<'_>) {
        if let Some(mut stream) = self.stream.take() {
            let _ = stage.registry.deregister(&mut stream);
        }
    }

    /// Closes the connection, and connects again after a pause.
    fn close_and_pause(&mut self, now: Instant, stage: &mut Stage<'_>) {
        self.close(stage);
        self.timer = Some(now + self.jitter.around(CYCLE_PAUSE));
    }

    /// Reply bytes still owed on this connection.
    fn owed(&self, stage: &Stage<'_>) -> u64 {
        if self.kind != Kind::Utf8 {
            return self.sent - self.received;
        }
        if self.sent > 0 {
            (stage.text.reply.len() as u64).saturating_sub(self.received)
        } else {
            0
        }
    }

    fn read_replies(
        &mut self,
        now: Instant,
        stage: &mut Stage<'_>,
        tally: &mut Tally,
    ) -> Result<(), Ended> {
        if matches!(self.kind, Kind::NeverRead | Kind::Reset) {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        loop {
            let n = match stream.read(stage.buf) {
                Ok(0) => return Err(Ended::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Ended::Failed(e)),
            };
            let reply = &stage.buf[..n];
            if self.kind == Kind::Utf8 {
                let expected = stage
                    .text
                    .reply
                    .get(self.received as usize..)
                    .unwrap_or(&[]);
                let wrong = reply.iter().zip(expected).filter(|(a, b)| a != b).count();
                let extra = n.saturating_sub(expected.len());
                tally.mismatches += (wrong + extra) as u64;
                tally.bytes_verified += n as u64;
                self.received += n as u64;
                if self.received >= stage.text.reply.len() as u64 {
                    tally.cycles += 1;
                    self.sent = 0;
                    self.received = 0;
                    self.timer = Some(now + self.jitter.around(CYCLE_PAUSE));
                }
                continue;
            }
            // Bytes past what was sent were never owed.
            let owed = (self.sent - self.received).min(n as u64) as usize;
            tally.mismatches += (n - owed) as u64;
            tally.mismatches +=
                stage
                    .pattern
                    .count_mismatches(self.seed, self.received, &reply[..owed]);
            tally.bytes_verified += owed as u64;
            self.received += owed as u64;
            if self.kind == Kind::Slice && self.received == self.message_end && self.sent > 0 {
                tally.cycles += 1;
                self.timer = Some(now + self.jitter.around(CYCLE_PAUSE));
            }
        }
    }

    fn write_what_is_due(
        &mut self,
        now: Instant,
        due: bool,
        stage: &mut Stage<'_>,
        tally: &mut Tally,
    ) -> Result<(), Ended> {
        match self.kind {
            Kind::Slow if due => {
                if self.write_pattern(1, stage, tally)? == 0 {
                    // Full (unlikely for one byte): try again shortly.
                    self.timer = Some(now + RESUME_PAUSE);
                } else {
                    tally.cycles += 1;
                    self.timer = Some(now + self.jitter.around(SLOW_PAUSE));
                }
            }
            Kind::NeverRead => {
                // A budget per step: on loopback the server drains into
                // kernel buffers of megabytes, so "until full" could keep
                // this one peer writing for seconds while the others (and
                // the memory sampler) wait. Past the budget, the timer
                // brings it back shortly: edge-triggered, no new writable
                // event would come while the socket has room.
                for _ in 0..NEVER_READ_WRITES_PER_STEP {
                    if self.write_pattern(stage.pattern.max_len(), stage, tally)? == 0 {
                        // The socket is full: the server has stopped reading.
                        self.timer = None;
                        self.feed(Input::SocketFull, now, stage, tally);
                        return Ok(());
                    }
                    self.timer = Some(now + RESUME_PAUSE);
                }
            }
            Kind::Reset => {
                while self.sent < RESET_BYTES {
                    let left = (RESET_BYTES - self.sent) as usize;
                    if self.write_pattern(left, stage, tally)? == 0 {
                        return Ok(());
                    }
                }
                self.feed(Input::BurstSent, now, stage, tally);
                return Ok(());
            }
            Kind::HalfClose if self.state == State::Playing => {
                while self.sent < HALF_CLOSE_BYTES {
                    let left = (HALF_CLOSE_BYTES - self.sent) as usize;
                    if self.write_pattern(left, stage, tally)? == 0 {
                        return Ok(());
                    }
                }
                self.feed(Input::BurstSent, now, stage, tally);
                return Ok(());
            }
            Kind::Slice => {
                if due && self.received == self.sent {
                    self.message_end = self.sent + stage.size.min(SLICE_MAX) as u64;
                }
                // One write per byte: the server sees the message in
                // slices as thin as they come.
                while self.sent < self.message_end {
                    if self.write_pattern(1, stage, tally)? == 0 {
                        return Ok(());
                    }
                }
            }
            Kind::Utf8 if due && (self.sent as usize) < stage.text.request.len() => {
                let byte = stage.text.request[self.sent as usize];
                if self.write_bytes(&[byte], tally)? == 0 {
                    self.timer = Some(now + RESUME_PAUSE);
                } else {
                    self.sent += 1;
                    if (self.sent as usize) < stage.text.request.len() {
                        self.timer = Some(now + self.jitter.around(SPLIT_PAUSE));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes up to `len` bytes of the pattern; 0 when the socket is full.
    fn write_pattern(
        &mut self,
        len: usize,
        stage: &Stage<'_>,
        tally: &mut Tally,
    ) -> Result<usize, Ended> {
        let bytes = stage.pattern.request(self.seed, self.sent, len);
        let n = self.write_bytes(bytes, tally)?;
        self.sent += n as u64;
        Ok(n)
    }

    fn write_bytes(&mut self, bytes: &[u8], tally: &mut Tally) -> Result<usize, Ended> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(0);
        };
        loop {
            match stream.write(bytes) {
                Ok(n) => {
                    tally.bytes_sent += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Ended::Failed(e)),
            }
        }
    }
}
