//! One client connection of the TCP engine: its socket, where it is, and
//! the stream offsets that number its messages.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use nix::sys::socket::sockopt::IpBindAddressNoPort;
use socket2::{Domain, Protocol, Socket, Type};

use crate::bench::engine::in_flight::InFlight;
use crate::bench::payload::Pattern;
use crate::syscall::{self, Sent};

/// Where one client connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// The non-blocking connect has not finished.
    Connecting,
    /// Connected: messages go out and replies come back.
    Open,
}

/// One client connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) state: ConnState,
    /// Chooses where in the alphabet the connection's stream starts
    /// (`payload.rs`).
    pub(crate) seed: u64,
    pub(crate) connect_started: Instant,
    /// Stream offset written so far.
    pub(crate) sent: u64,
    /// Stream offset queued to be written.
    pub(crate) queued: u64,
    /// Stream offset received (and checked) so far.
    pub(crate) received: u64,
    /// Start times of the messages not yet fully answered, oldest first.
    pub(crate) in_flight: InFlight,
    /// Messages whose reply is complete.
    pub(crate) completed: u64,
}

impl Conn {
    /// A connection whose connect has just started.
    pub(crate) fn connecting(stream: TcpStream, seed: u64, now: Instant) -> Conn {
        Conn {
            stream,
            state: ConnState::Connecting,
            seed,
            connect_started: now,
            sent: 0,
            queued: 0,
            received: 0,
            in_flight: InFlight::default(),
            completed: 0,
        }
    }

    /// Writes queued request bytes, straight from the pattern, until done
    /// or the socket would block.
    pub(crate) fn flush(&mut self, pattern: &Pattern) -> io::Result<()> {
        while self.sent < self.queued {
            let len = ((self.queued - self.sent) as usize).min(pattern.max_len());
            match syscall::send(&self.stream, pattern.request(self.seed, self.sent, len)) {
                Sent::Bytes(n) => self.sent += n as u64,
                Sent::WouldBlock => return Ok(()),
                Sent::Failed(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Starts a non-blocking connect to `addr`, from `source` if given (else
/// the kernel picks the address and the port).
pub(crate) fn start_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(source) = source {
        // Each source address has its own ~28,000 ephemeral ports. Without
        // IP_BIND_ADDRESS_NO_PORT, bind() to port 0 must pick a port now,
        // one free on that address for *any* destination (trying the odd
        // ports first), and holds it: a port still in TIME-WAIT from the
        // last run is not free, so a second run of 20,000 connections
        // searched the range for every socket and took 70 times as long to
        // open. With the option, bind() only sets the address and connect()
        // picks the port, free for *this* destination (the 4-tuple), as it
        // does for a socket not bound at all. PER_SOURCE still keeps each
        // address clear of the range's end. nix sets the option without
        // unsafe code (neither socket2 nor rustix offers it).
        if source.is_ipv4() {
            nix::sys::socket::setsockopt(&socket, IpBindAddressNoPort, &true)
                .map_err(io::Error::from)?;
        }
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}
