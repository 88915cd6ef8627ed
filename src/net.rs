//! Opening the sockets and announcing them: shared by every server.
//!
//! The TCP listener is built with socket2 rather than `TcpListener::bind`,
//! because both std and mio hard-code a listen backlog of 128. A storm of
//! connects (the 5,000-connection soak, a load generator opening 10,000) then
//! overflows the accept queue and the kernel drops SYNs, which turns into
//! one-second client retransmits. We ask for [`LISTEN_BACKLOG`]; Linux
//! silently caps it at `net.core.somaxconn`
//! ([listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html)).

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// The backlog requested from `listen(2)`; the kernel caps it at somaxconn.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A failure to start that is not the user's typing: exit status 1.
#[derive(Debug)]
pub struct StartError {
    /// What was being attempted, e.g. `cannot bind TCP 127.0.0.1:8080`.
    pub context: String,
    /// The operating system's reason.
    pub source: io::Error,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for StartError {}

impl StartError {
    /// Wraps an I/O error with what was being attempted.
    pub fn new(context: impl Into<String>, source: io::Error) -> Self {
        StartError {
            context: context.into(),
            source,
        }
    }
}

/// Binds a TCP listener with a large backlog. `nonblocking` is true for the
/// reactor and false for the blocking server.
///
/// # Errors
/// A [`StartError`] naming the address (for example "Address already in use").
pub fn bind_tcp(addr: SocketAddr, nonblocking: bool) -> Result<TcpListener, StartError> {
    let fail = |e| StartError::new(format!("cannot bind TCP {addr}"), e);
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    // SO_REUSEADDR lets a restarted server bind while old connections sit in
    // TIME_WAIT; on Linux it does not let two listeners share a port, so
    // "address in use" is still reported when another server holds it.
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_nonblocking(nonblocking).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)?;
    Ok(socket.into())
}

/// Binds the UDP socket.
///
/// # Errors
/// A [`StartError`] naming the address.
pub fn bind_udp(addr: SocketAddr, nonblocking: bool) -> Result<UdpSocket, StartError> {
    let fail = |e| StartError::new(format!("cannot bind UDP {addr}"), e);
    let socket = UdpSocket::bind(addr).map_err(fail)?;
    socket.set_nonblocking(nonblocking).map_err(fail)?;
    Ok(socket)
}

/// The effective accept backlog: what we asked for, capped by somaxconn.
pub fn effective_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .map_or(LISTEN_BACKLOG, |cap| cap.min(LISTEN_BACKLOG))
}

/// Prints the one start-up line, `listening tcp=ADDR udp=ADDR` (`off` for a
/// disabled endpoint), and flushes it: tests and scripts wait for it to learn
/// the ports that port 0 picked.
///
/// # Errors
/// Only if stdout cannot be written.
pub fn announce(tcp: Option<SocketAddr>, udp: Option<SocketAddr>) -> io::Result<()> {
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let mut out = io::stdout().lock();
    writeln!(out, "listening tcp={} udp={}", show(tcp), show(udp))?;
    out.flush()
}

/// Source ports a UDP server must never answer: 0 is not a valid source, and
/// echo (7), daytime (13), qotd (17) and chargen (19) answer anything sent to
/// them, so a forged datagram "from" one of them would make the two services
/// answer each other forever.
pub fn is_reflecting_port(port: u16) -> bool {
    matches!(port, 0 | 7 | 13 | 17 | 19)
}
