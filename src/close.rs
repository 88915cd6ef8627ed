//! Why a TCP connection ended, and the rule for which reason an I/O error
//! means. The rule is applied where each server meets the error:
//! `Connection::fail` in `reactor/connection.rs` and `failure` in
//! `blocking.rs` (which first tells the idle timeout's expiry apart).
//!
//! The distinction matters: a peer that half-closes (EOF, `read` returns 0)
//! still deserves every byte the server owes it; a peer that resets
//! (`ECONNRESET`, or `EPIPE` when we write after its reset) is gone, and the
//! bytes owed to it can only be dropped. Both servers use this module, so the
//! counters in the stats line mean the same thing for each.
//!
//! Every error from `read` or `write` on an established stream counts as
//! [`CloseReason::Reset`]: `ECONNRESET` (the peer's RST arrived) and `EPIPE`
//! (we wrote after it) are the usual ones, and any other (`ETIMEDOUT` from
//! keepalive, `EHOSTUNREACH`, ...) leaves the stream just as unusable.
//! `WouldBlock` and `Interrupted` are not errors and never get here.
//! [`CloseReason::is_peer_reset`] only picks the wording of the log line.

use std::fmt;
use std::io;

/// The reason a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer finished sending (FIN) and everything owed was written.
    Eof,
    /// The peer reset the connection, or an I/O error ended it.
    Reset,
    /// Neither side sent anything for the idle timeout.
    Idle,
}

impl CloseReason {
    /// Whether `err` is the peer resetting the stream (as opposed to some
    /// other failure); used to pick the wording of the log line.
    pub fn is_peer_reset(err: &io::Error) -> bool {
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::Eof => "eof",
            CloseReason::Reset => "reset",
            CloseReason::Idle => "idle",
        })
    }
}
