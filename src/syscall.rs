//! The two system calls on every message's path, `recv` and `send`, and the
//! outcomes a non-blocking socket can give them, named. The reactor's
//! connections use them, and so does the load generator (`bench`), which
//! must cost less per message than the server it measures. Their datagram
//! twins, `recv_from` and `send_to`, serve the reactor's UDP endpoint the
//! same way, so that TCP and UDP read alike.
//!
//! A non-blocking read has four outcomes that the reactor treats
//! differently: bytes, the peer's EOF (0), "nothing now" (`EAGAIN`, which
//! std calls `WouldBlock`), and a failure (reset, broken pipe, ...). Going
//! through `std::io::Read` folds the middle two into an `io::Error` that
//! must be decoded with `kind()` on every call; here each is a variant of
//! [`Received`] or [`Sent`], and `EINTR` is retried where it happens.
//!
//! The calls go to the kernel through `rustix`, whose Linux backend makes
//! the system call itself: no libc wrapper, no std adapter layers between
//! the reactor and the kernel. That is the same syscall std would make,
//! without the layers the cost table's breakdown ("Where the reactor's
//! instructions go", `docs/benchmarks/cost.md`) counted before this change:
//! the four `TcpStream` rows, [19.0](../docs/benchmarks/cost.md "Write>::write"),
//! [18.0](../docs/benchmarks/cost.md "Read>::read"),
//! [6.0](../docs/benchmarks/cost.md "stream::TcpStream as std::io::Read") and
//! [6.0](../docs/benchmarks/cost.md "stream::TcpStream as std::io::Write"), and `recv` and `send`,
//! [10.0](../docs/benchmarks/cost.md "`recv`") and [10.0](../docs/benchmarks/cost.md "`send`"): 69 user-space
//! instructions per echoed message in all, 0.0 each now (what is left of
//! the call is inlined into `Connection::on_readable`). `send` passes
//! `MSG_NOSIGNAL`, as std does: writing to a socket the peer has reset
//! returns `EPIPE` instead of raising SIGPIPE, so a library user who has not
//! ignored SIGPIPE is not killed by a peer.

use std::io;
use std::net::SocketAddr;

use mio::net::{TcpStream, UdpSocket};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

/// What one `recv` on a non-blocking stream gave.
#[derive(Debug)]
pub enum Received {
    /// This many bytes (at least one) are at the front of the buffer.
    Bytes(usize),
    /// The peer has sent its FIN and every byte before it has been read.
    Eof,
    /// Nothing to read now (`EAGAIN`): wait for the next readable event.
    WouldBlock,
    /// The connection failed (`ECONNRESET`, `ETIMEDOUT`, ...).
    Failed(io::Error),
}

/// What one `send` on a non-blocking stream gave.
#[derive(Debug)]
pub enum Sent {
    /// The kernel took this many bytes (possibly fewer than offered).
    Bytes(usize),
    /// The send buffer is full (`EAGAIN`): wait for a writable event.
    WouldBlock,
    /// The connection failed (`EPIPE`, `ECONNRESET`, ...).
    Failed(io::Error),
}

/// `recv(fd, buf, 0)`, retried on `EINTR`.
#[inline]
pub fn recv(stream: &TcpStream, buf: &mut [u8]) -> Received {
    loop {
        return match rustix::net::recv(stream, &mut *buf, RecvFlags::empty()) {
            Ok((_, 0)) => Received::Eof,
            Ok((_, n)) => Received::Bytes(n),
            Err(Errno::AGAIN) => Received::WouldBlock,
            Err(Errno::INTR) => continue,
            Err(e) => Received::Failed(e.into()),
        };
    }
}

/// `send(fd, bytes, MSG_NOSIGNAL)`, retried on `EINTR`. A `send` that takes
/// nothing from a non-empty buffer is reported as a failure (`WriteZero`),
/// as std's `write_all` does: retrying it could loop for ever.
#[inline]
pub fn send(stream: &TcpStream, bytes: &[u8]) -> Sent {
    loop {
        return match rustix::net::send(stream, bytes, SendFlags::NOSIGNAL) {
            Ok(0) if !bytes.is_empty() => Sent::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => Sent::Bytes(n),
            Err(Errno::AGAIN) => Sent::WouldBlock,
            Err(Errno::INTR) => continue,
            Err(e) => Sent::Failed(e.into()),
        };
    }
}

/// What one `recv_from` on a non-blocking datagram socket gave. Unlike a
/// stream's, a read of 0 bytes is no end: it is an empty datagram.
#[derive(Debug)]
pub enum ReceivedFrom {
    /// A datagram of this many bytes (possibly none), at the front of the
    /// buffer, from this address.
    Datagram(usize, SocketAddr),
    /// No datagram waiting (`EAGAIN`): wait for the next readable event.
    WouldBlock,
    /// The call failed: a pending error of the socket (an ICMP report about
    /// an earlier datagram, say), reported once and cleared.
    Failed(io::Error),
}

/// `recvfrom(fd, buf, 0)`, retried on `EINTR`.
pub fn recv_from(socket: &UdpSocket, buf: &mut [u8]) -> ReceivedFrom {
    loop {
        return match rustix::net::recvfrom(socket, &mut *buf, RecvFlags::empty()) {
            Ok((_, n, Some(from))) => match SocketAddr::try_from(from) {
                Ok(from) => ReceivedFrom::Datagram(n, from),
                Err(e) => ReceivedFrom::Failed(e.into()),
            },
            // An IP socket always reports the sender; this is for the types.
            Ok((_, _, None)) => ReceivedFrom::Failed(io::Error::other("no sender address")),
            Err(Errno::AGAIN) => ReceivedFrom::WouldBlock,
            Err(Errno::INTR) => continue,
            Err(e) => ReceivedFrom::Failed(e.into()),
        };
    }
}

/// `sendto(fd, bytes, MSG_NOSIGNAL, to)`, retried on `EINTR`, as std sends. A datagram goes whole or
/// not at all, so [`Sent::Bytes`] is always `bytes.len()` (0 for an empty
/// datagram, which is no failure here).
pub fn send_to(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) -> Sent {
    loop {
        return match rustix::net::sendto(socket, bytes, SendFlags::NOSIGNAL, &to) {
            Ok(n) => Sent::Bytes(n),
            Err(Errno::AGAIN) => Sent::WouldBlock,
            Err(Errno::INTR) => continue,
            Err(e) => Sent::Failed(e.into()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// `send`'s guard tells an empty buffer (nothing to send: `Bytes(0)`)
    /// from a send that took nothing from a non-empty one (`WriteZero`).
    /// Linux never gives the second on a TCP socket (a full buffer is
    /// `EAGAIN`), so only the first can be shown: an empty send must not
    /// be reported as a failure.
    #[test]
    fn an_empty_send_sends_nothing_and_is_no_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        // Connected before mio has it (mio's own connect returns while the
        // handshake is still under way).
        let connected =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let stream = TcpStream::from_std(connected);
        assert!(matches!(send(&stream, &[]), Sent::Bytes(0)));
        assert!(matches!(send(&stream, b"x"), Sent::Bytes(1)));
    }
}
