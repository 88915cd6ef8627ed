//! What a reaped completion says: whose operation it was ([`UserData`]),
//! how it went ([`Outcome`], with whatever the kernel hands back: a new
//! descriptor, a filled provided buffer, a lent buffer returned), and
//! whether a multishot operation goes on.
//!
//! Plain data, no `unsafe`: the ring decodes a raw completion into these
//! (`Ring::reap`), and from here on the proactor deals only in owned
//! values.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use super::ProvidedBuf;
use crate::proactor::user_data::UserData;

/// One reaped completion: whose operation it was, how it went, and whether
/// the operation goes on (a multishot operation's completions say
/// `more` until its last).
#[derive(Debug)]
pub struct Completion {
    /// The operation's token.
    pub user_data: UserData,
    /// Its result, with whatever the kernel hands back.
    pub outcome: Outcome,
    /// `IORING_CQE_F_MORE`: a multishot operation is still armed.
    pub more: bool,
}

/// What a completion hands back.
#[derive(Debug)]
pub enum Outcome {
    /// A multishot accept's new connection.
    Accepted(OwnedFd),
    /// A recv filled a provided buffer (its length may be 0 at end of
    /// stream). The token must go back with [`Ring::recycle`](super::Ring::recycle).
    Received(ProvidedBuf),
    /// A send finished: how many bytes the kernel took (or why none), and
    /// the buffer that was lent, back in the caller's hands.
    Sent {
        /// Bytes sent, or the error.
        result: io::Result<usize>,
        /// The buffer lent with [`Ring::send`](super::Ring::send).
        buf: Vec<u8>,
    },
    /// The UDP `recvmsg` finished: a datagram of `len` bytes from `from`
    /// (read it with [`Ring::datagram_mut`](super::Ring::datagram_mut)).
    Datagram {
        /// Its length.
        len: usize,
        /// Its sender.
        from: SocketAddr,
    },
    /// A UDP reply finished, with the buffer lent with [`Ring::send_to`](super::Ring::send_to).
    SentTo {
        /// Bytes sent, or the error.
        result: io::Result<usize>,
        /// The reply's buffer, back.
        buf: Vec<u8>,
    },
    /// Any other success (a recv of 0 bytes with no buffer, a cancel, a
    /// poll), with the kernel's result.
    Done(i32),
    /// The operation failed.
    Failed(io::Error),
}

/// A kernel result as [`Outcome::Done`] or [`Outcome::Failed`].
pub(super) fn result_of(res: i32) -> Outcome {
    if res >= 0 {
        Outcome::Done(res)
    } else {
        Outcome::Failed(io::Error::from_raw_os_error(-res))
    }
}

/// A send's result: bytes taken, or the error.
pub(super) fn bytes_or_error(res: i32) -> io::Result<usize> {
    if res >= 0 {
        Ok(res as usize)
    } else {
        Err(io::Error::from_raw_os_error(-res))
    }
}
