//! Opening the sockets: shared by every server.
//!
//! The TCP listener is built with socket2 rather than `TcpListener::bind`,
//! because both std and mio hard-code a listen backlog of 128. A storm of
//! connects (the 5,000-connection soak, a load generator opening 10,000) then
//! overflows the accept queue and the kernel drops SYNs, which turns into
//! one-second client retransmits. We ask for [`LISTEN_BACKLOG`]; Linux
//! silently caps it at `net.core.somaxconn`
//! ([listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html)).

use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ServerConfig;
use crate::error::ServerError;

/// The backlog requested from `listen(2)`; the kernel caps it at somaxconn.
pub const LISTEN_BACKLOG: i32 = 4096;

/// How a socket's calls behave when they cannot complete at once: block
/// (the blocking server; the proactor, whose calls the kernel makes) or
/// return `WouldBlock` (`O_NONBLOCK`: the reactor). Named for what it
/// decides rather than as a "mode", a word the service's `Mode` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketCalls {
    /// Calls wait until they can complete.
    Blocking,
    /// Calls that cannot complete at once return `WouldBlock`.
    NonBlocking,
}

/// The sockets a server was asked for, bound and listening.
#[derive(Debug)]
pub struct Sockets {
    /// The TCP listener, unless TCP is off.
    pub tcp: Option<TcpListener>,
    /// The UDP socket, unless UDP is off.
    pub udp: Option<UdpSocket>,
}

impl Sockets {
    /// Binds what `config` asks for, TCP first.
    ///
    /// # Errors
    /// A [`ServerError`] naming the address that could not be bound.
    pub fn bind(config: &ServerConfig, calls: SocketCalls) -> Result<Sockets, ServerError> {
        Ok(Sockets {
            tcp: config
                .tcp
                .addr()
                .map(|a| bind_tcp(a, calls, config.reuse_port))
                .transpose()?,
            udp: config
                .udp
                .addr()
                .map(|a| bind_udp(a, calls, config.reuse_port))
                .transpose()?,
        })
    }
}

/// Binds a TCP listener with a large backlog.
///
/// # Errors
/// A [`ServerError`] naming the address (for example "Address already in use").
pub fn bind_tcp(
    addr: SocketAddr,
    calls: SocketCalls,
    reuse_port: bool,
) -> Result<TcpListener, ServerError> {
    let socket = bound_tcp_socket(addr, reuse_port)?;
    let fail = |e| ServerError::new(format!("cannot bind TCP {addr}"), e);
    socket
        .set_nonblocking(calls == SocketCalls::NonBlocking)
        .map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)?;
    Ok(socket.into())
}

/// A TCP socket bound to `addr` and not listening: it holds the port (for
/// `serve --workers`, whose supervisor reserves the port its workers bind)
/// without accepting anything.
///
/// # Errors
/// A [`ServerError`] naming the address.
pub fn bound_tcp_socket(addr: SocketAddr, reuse_port: bool) -> Result<Socket, ServerError> {
    let fail = |e| ServerError::new(format!("cannot bind TCP {addr}"), e);
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    // SO_REUSEADDR lets a restarted server bind while old connections sit in
    // TIME_WAIT; on Linux it does not let two listeners share a port, so
    // "address in use" is still reported when another server holds it.
    socket.set_reuse_address(true).map_err(fail)?;
    // SO_REUSEPORT does: every socket that sets it (same user) may bind the
    // same address, and the kernel spreads new connections over the
    // listening ones by a hash of the four addresses.
    socket.set_reuse_port(reuse_port).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    Ok(socket)
}

/// Binds the UDP socket.
///
/// # Errors
/// A [`ServerError`] naming the address.
pub fn bind_udp(
    addr: SocketAddr,
    calls: SocketCalls,
    reuse_port: bool,
) -> Result<UdpSocket, ServerError> {
    let fail = |e| ServerError::new(format!("cannot bind UDP {addr}"), e);
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    // With SO_REUSEPORT the kernel sends each flow (by its addresses) to one
    // of the sockets bound here.
    socket.set_reuse_port(reuse_port).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    let socket: UdpSocket = socket.into();
    socket
        .set_nonblocking(calls == SocketCalls::NonBlocking)
        .map_err(fail)?;
    Ok(socket)
}

/// The effective accept backlog: what we asked for, capped by somaxconn.
pub fn effective_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .map_or(LISTEN_BACKLOG, |cap| cap.min(LISTEN_BACKLOG))
}

/// Source ports a UDP server must never answer: 0 is not a valid source, and
/// echo (7), daytime (13), qotd (17) and chargen (19) answer anything sent to
/// them, so a forged datagram "from" one of them would make the two services
/// answer each other forever.
pub fn is_reflecting_port(port: u16) -> bool {
    matches!(port, 0 | 7 | 13 | 17 | 19)
}
