//! The proactor's token table: what the 64 bits of `user_data` say.
//!
//! The reactor's token names a *socket* (`reactor/token.rs`): an event says
//! "this socket is ready", and the socket's owner decides what to do. A
//! completion names an *operation*: "the send you asked for on connection
//! 7 has finished, and took 64 bytes". So the proactor's token carries what
//! kind of operation it was, beside whose:
//!
//! ```text
//!  63      56 55                32 31                               0
//! ┌──────────┬────────────────────┬──────────────────────────────────┐
//! │    op    │  generation (24)   │          slot (32)               │
//! └──────────┴────────────────────┴──────────────────────────────────┘
//! ```
//!
//! * `op`: accept, recv, send, cancel, the signal pipe's poll, UDP's recv
//!   and send ([`Op`]);
//! * `slot`: the connection's slab key (0 for the listener, the UDP socket
//!   and the signal pipe, which are one each);
//! * `generation`: how many connections the slot has held before this one.
//!
//! **Why a generation.** Cancellation is not synchronous: closing a
//! connection whose multishot recv is armed means asking the kernel to
//! cancel it, and the recv's last completion arrives later, in some later
//! batch. The reactor's version of this problem (a stale event for a slot
//! freed within the batch) is solved by freeing slots only between batches;
//! here a batch boundary is not enough, because the late completion may come
//! many batches later. The proactor keeps a slot occupied until every
//! operation it started has completed, and the generation makes that rule
//! checkable: a completion whose generation is not its slot's current one is
//! stale, logged, and dropped, never delivered to a newcomer.

use std::fmt;

/// The slot of the cancels of the server's own sockets (the listener's
/// accept, UDP's receive): no connection waits for their completions.
pub const SERVER_SLOT: u32 = u32::MAX;

/// The kind of operation a completion reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// The listener's multishot accept.
    Accept = 1,
    /// A connection's multishot recv (provided buffers).
    Recv = 2,
    /// A connection's send (one in flight at a time).
    Send = 3,
    /// A cancel request (of a recv, or of everything on a descriptor).
    Cancel = 4,
    /// The signal pipe's multishot poll.
    Signal = 5,
    /// The UDP socket's recvmsg (one in flight at a time).
    UdpRecv = 6,
    /// A UDP reply's sendto (one in flight at a time).
    UdpSend = 7,
}

/// A completion's `user_data`, decoded (see the module doc for the layout).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UserData(u64);

/// Generations wrap at 24 bits: a slot would need sixteen million reuses
/// while one stale completion is still outstanding to be fooled.
const GENERATION_MASK: u32 = (1 << 24) - 1;

impl UserData {
    /// The token of operation `op` for `slot` in its `generation`.
    pub fn new(op: Op, slot: u32, generation: u32) -> UserData {
        let generation = u64::from(generation & GENERATION_MASK);
        UserData((op as u64) << 56 | generation << 32 | u64::from(slot))
    }

    /// Reads back the raw value the kernel returned.
    pub fn from_raw(raw: u64) -> UserData {
        UserData(raw)
    }

    /// The raw value to give the kernel.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The kind of operation, if the value is one of ours.
    pub fn op(self) -> Option<Op> {
        Some(match self.0 >> 56 {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Signal,
            6 => Op::UdpRecv,
            7 => Op::UdpSend,
            _ => return None,
        })
    }

    /// The connection slot.
    pub fn slot(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }

    /// The slot's generation when the operation was submitted.
    pub fn generation(self) -> u32 {
        ((self.0 >> 32) as u32) & GENERATION_MASK
    }
}

/// The next generation of a slot (wrapping at 24 bits).
pub fn next_generation(generation: u32) -> u32 {
    generation.wrapping_add(1) & GENERATION_MASK
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op() {
            Some(op) => write!(f, "{op:?}(slot {} gen {})", self.slot(), self.generation()),
            None => write!(f, "UserData({:#x})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back() {
        for op in [
            Op::Accept,
            Op::Recv,
            Op::Send,
            Op::Cancel,
            Op::Signal,
            Op::UdpRecv,
            Op::UdpSend,
        ] {
            for (slot, generation) in [(0, 0), (7, 1), (u32::MAX, GENERATION_MASK)] {
                let ud = UserData::from_raw(UserData::new(op, slot, generation).raw());
                assert_eq!(ud.op(), Some(op));
                assert_eq!(ud.slot(), slot as usize);
                assert_eq!(ud.generation(), generation);
            }
        }
        assert_eq!(UserData::from_raw(0).op(), None);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        assert_eq!(next_generation(GENERATION_MASK), 0);
        let ud = UserData::new(Op::Recv, 3, GENERATION_MASK + 5);
        assert_eq!(ud.generation(), 4);
        assert_eq!(ud.slot(), 3);
    }
}
