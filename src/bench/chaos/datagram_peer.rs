//! One hostile UDP peer: empty datagrams, or datagrams of the largest size
//! IPv4 allows, one in flight at a time, each reply checked.
//!
//! UDP may drop a datagram under load (a 65,507-byte datagram fills a third
//! of a default receive buffer), so a datagram without a reply after
//! [`LOSS_TIMEOUT`] is counted lost, not wrong; a reply that arrives after
//! its datagram was given up on is recognised by its content and ignored.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::UdpSocket;
use mio::{Interest, Token};

use super::jitter::Jitter;
use super::kind::Kind;
use super::tally::Tally;
use super::{RESUME_PAUSE, Stage};
use crate::bench::engine::udp::LOSS_TIMEOUT;

/// The largest UDP payload over IPv4: 65,535 less the IPv4 and UDP headers.
pub(crate) const HUGE_DATAGRAM: usize = 65_507;
/// Between an answered datagram and the next.
pub(crate) const DATAGRAM_PAUSE: Duration = Duration::from_millis(50);

/// One hostile UDP peer and its socket.
#[derive(Debug)]
pub(crate) struct DatagramPeer {
    kind: Kind,
    socket: UdpSocket,
    /// The sequence number of the last datagram sent (its pattern's seed).
    sequence: u64,
    waiting_since: Option<Instant>,
    timer: Option<Instant>,
    /// Draws this peer's pauses (`jitter.rs`).
    jitter: Jitter,
}

impl DatagramPeer {
    /// A peer of `kind` with its own socket, connected to the server (so
    /// that only the server's replies reach it), registered under `token`.
    ///
    /// # Errors
    /// If the socket cannot be opened or registered.
    pub(crate) fn open(
        kind: Kind,
        token: Token,
        stage: &Stage<'_>,
        tally: &mut Tally,
    ) -> io::Result<DatagramPeer> {
        let local: SocketAddr = if stage.addr.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let mut socket = UdpSocket::bind(local)?;
        socket.connect(stage.addr)?;
        stage
            .registry
            .register(&mut socket, token, Interest::READABLE)?;
        tally.connects += 1;
        let mut jitter = Jitter::new(token.0 as u64);
        let first = Instant::now() + jitter.within(DATAGRAM_PAUSE);
        Ok(DatagramPeer {
            kind,
            socket,
            sequence: 0,
            waiting_since: None,
            timer: Some(first),
            jitter,
        })
    }

    /// When the peer next waits for time, if it does: to send, or to give
    /// up on a reply.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let loss = self.waiting_since.map(|t| t + LOSS_TIMEOUT);
        match (self.timer, loss) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads and checks the replies, gives up on a datagram that waited too
    /// long, and sends the next when it is time.
    pub(crate) fn step(&mut self, now: Instant, stage: &mut Stage<'_>, tally: &mut Tally) {
        loop {
            match self.socket.recv(stage.buf) {
                Ok(n) => self.check_reply(n, now, stage, tally),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error from an earlier datagram (the server's port
                // closed); the datagram is counted lost by its timeout.
                Err(e) => debug!("chaos {}: {e}", self.kind.name()),
            }
        }
        if self
            .waiting_since
            .is_some_and(|t| now.duration_since(t) >= LOSS_TIMEOUT)
        {
            tally.lost += 1;
            self.waiting_since = None;
            self.timer = Some(now);
        }
        if self.waiting_since.is_none() && self.timer.is_some_and(|t| t <= now) {
            self.send(now, stage, tally);
        }
    }

    fn check_reply(&mut self, n: usize, now: Instant, stage: &Stage<'_>, tally: &mut Tally) {
        if self.waiting_since.is_none() {
            return; // a late reply to a datagram already counted lost
        }
        let reply = &stage.buf[..n];
        let wrong = match self.kind {
            Kind::HugeDatagram => {
                let late = self.sequence > 1
                    && n == HUGE_DATAGRAM
                    && stage.pattern.count_mismatches(self.sequence - 1, 0, reply) == 0;
                if late {
                    return;
                }
                let compared = n.min(HUGE_DATAGRAM);
                stage
                    .pattern
                    .count_mismatches(self.sequence, 0, &reply[..compared])
                    + n.abs_diff(HUGE_DATAGRAM) as u64
            }
            // An empty datagram's reply is empty (echo and upper alike).
            _ => n as u64,
        };
        tally.mismatches += wrong;
        if wrong == 0 {
            tally.cycles += 1;
            tally.bytes_verified += n as u64;
        }
        self.waiting_since = None;
        self.timer = Some(now + self.jitter.around(DATAGRAM_PAUSE));
    }

    fn send(&mut self, now: Instant, stage: &Stage<'_>, tally: &mut Tally) {
        let next = self.sequence + 1;
        let bytes: &[u8] = match self.kind {
            Kind::HugeDatagram => stage.pattern.request(next, 0, HUGE_DATAGRAM),
            _ => &[],
        };
        match self.socket.send(bytes) {
            Ok(n) => {
                self.sequence = next;
                tally.bytes_sent += n as u64;
                self.waiting_since = Some(now);
                self.timer = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.timer = Some(now + RESUME_PAUSE);
            }
            Err(e) => {
                debug!("chaos {}: send failed: {e}", self.kind.name());
                self.timer = Some(now + self.jitter.around(DATAGRAM_PAUSE));
            }
        }
    }
}
