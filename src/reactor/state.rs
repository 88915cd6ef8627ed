//! The connection state machine: where one TCP connection is in its life,
//! and the one function that moves it on.
//!
//! The machine is *sans-IO* (smoltcp's way): [`State::next`] does no I/O, it
//! only maps `(state, input)` to the next state, and [`State::action`] maps
//! a transition `(from, to)` to what must be done on it ([`Action`]), so
//! every transition and every action can be unit-tested without a socket
//! and read in two `match`es. The connection ([`super::connection`]) does
//! the reads and writes, turns their results into an [`Input`], and carries
//! out the action.
//!
//! The names follow TCP's own states where the meaning matches
//! ([RFC 9293 §3.3.2](https://www.rfc-editor.org/rfc/rfc9293#section-3.3.2)):
//! `CloseWait` is our CLOSE-WAIT (the peer sent FIN, we still owe bytes), and
//! `FinWait` is our FIN-WAIT-2 (we sent FIN and wait for the peer's).
//!
//! ```text
//!            Received(owed > max)            Written(0)
//!   Open ───────────────────────▶ Paused ─────────────────▶ Open
//!    │  Eof(owed > 0)                         Written(0)
//!    ├───────────────▶ CloseWait ─────────────────────────▶ Closed(eof)
//!    │  Eof(0) ──────────────────────────────────────────▶ Closed(eof)
//!    │  LastReply / ShutdownBegun (owed > 0)     Written(0)
//!    ├───────────────▶ Finishing ─────────────▶ FinWait ──▶ Closed(eof)
//!    │  LastReply / ShutdownBegun (0) ─────────▶ FinWait      (Eof or LingerExpired)
//!   any ── Failed(reason) ──▶ Closed(reason);  any ── IdleExpired ──▶ Closed(idle)
//! ```
//!
//! Actions on the transitions: into `FinWait`, send FIN and start the linger
//! clock; into `Closed(eof)` from anything but `FinWait`, send FIN, then
//! close (the peer's FIN is in and nothing is owed); into any other
//! `Closed`, close. A transition that does not change the state does nothing.

use std::fmt;

use crate::close::CloseReason;

#[cfg(test)]
mod tests;

/// Where one TCP connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Both directions open: read until drained, write each reply straight back.
    Open,
    /// More than `max_pending` bytes are owed: reading stops until the peer
    /// has read them all. The socket may still hold unread input.
    Paused,
    /// The peer sent FIN (CLOSE-WAIT): write what is owed, then FIN, then close.
    CloseWait,
    /// The server has said its last word (greet, or shutdown): write what is
    /// owed, then send FIN.
    Finishing,
    /// Our FIN is sent (FIN-WAIT-2): discard input until the peer's FIN or the
    /// linger deadline, then close. Closing earlier, with unread input in our
    /// receive buffer, would make the kernel send RST, and an RST throws away
    /// the bytes still in our send buffer, on their way to the peer.
    FinWait,
    /// Finished; the reactor removes the connection after this batch of events.
    Closed(CloseReason),
}

/// What happened to a connection: the result of an I/O attempt or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A read delivered bytes; their reply was written as far as the socket
    /// took it, and `owed` bytes are still waiting.
    Received {
        /// Bytes still owed to the peer.
        owed: usize,
    },
    /// A read returned 0: the peer will send no more (it may still read).
    Eof {
        /// Bytes still owed, including anything the transform flushed at EOF.
        owed: usize,
    },
    /// Owed bytes were written on a writable event.
    Written {
        /// Bytes still owed.
        owed: usize,
    },
    /// The service's reply was its last (greet).
    LastReply {
        /// Bytes still owed.
        owed: usize,
    },
    /// A read or write failed.
    Failed(CloseReason),
    /// Nothing was received or sent for the idle timeout.
    IdleExpired,
    /// The peer did not send FIN within the linger time after ours.
    LingerExpired,
    /// The server is shutting down: take no more requests, finish writing,
    /// then FIN (and, in `FinWait`, read and discard until the peer's FIN).
    ShutdownBegun {
        /// Bytes still owed.
        owed: usize,
    },
}

/// What to do on a transition, beside changing the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Send our FIN (`shutdown(Write)`) and start the linger clock: we have
    /// said our last word and now wait for the peer's FIN.
    SendFinAndLinger,
    /// Send our FIN, then close: the peer's FIN has arrived and nothing is
    /// owed, so the conversation is over in both directions.
    SendFinAndClose,
    /// Close without a FIN of our own: it was sent already (`FinWait`), or
    /// the connection failed or idled out.
    Close,
}

impl State {
    /// The action on the transition from `self` to `to` (pure, like
    /// [`State::next`]).
    pub fn action(self, to: State) -> Action {
        use State::*;
        match (self, to) {
            (from, to) if from == to => Action::None,
            (_, FinWait) => Action::SendFinAndLinger,
            (FinWait, Closed(_)) => Action::Close,
            (_, Closed(CloseReason::Eof)) => Action::SendFinAndClose,
            (_, Closed(_)) => Action::Close,
            _ => Action::None,
        }
    }

    /// The next state after `input`. `max_pending` is the number of owed bytes
    /// above which reading pauses. No I/O happens here.
    #[inline(always)]
    pub fn next(self, input: Input, max_pending: usize) -> State {
        use Input::*;
        use State::*;
        match (self, input) {
            // The common case first: another message while open, within
            // the bound (the same as the backpressure arms below).
            (Open, Received { owed }) if owed <= max_pending => Open,
            // A closed connection is only waiting to be removed; late events
            // of the same batch are ignored.
            (Closed(reason), _) => Closed(reason),
            // An error ends the connection whatever it was doing: the bytes
            // owed can no longer be delivered.
            (_, Failed(reason)) => Closed(reason),
            (_, IdleExpired) => Closed(CloseReason::Idle),

            // Backpressure. Past the bound, stop reading: the peer is not
            // reading what we send, so reading more would only grow memory.
            (Open | Paused, Received { owed }) if owed > max_pending => Paused,
            (Open | Paused, Received { .. }) => Open,
            // Resume only once everything is written. Edge-triggered epoll
            // will not report the bytes already waiting in the socket again,
            // so the caller must read *now* rather than wait for an event.
            (Paused, Written { owed: 0 }) => Open,
            (Paused, Written { .. }) => Paused,
            (Open, Written { .. }) => Open,

            // Half-close: the peer has finished sending but may still read.
            // Everything owed is still delivered before our FIN.
            (Open | Paused, Eof { owed: 0 }) => Closed(CloseReason::Eof),
            (Open | Paused, Eof { .. }) => CloseWait,
            (CloseWait, Written { owed: 0 }) => Closed(CloseReason::Eof),
            (CloseWait, _) => CloseWait,

            // The server's last word (greet), or shutdown: flush, then FIN.
            (Open | Paused, LastReply { owed: 0 } | ShutdownBegun { owed: 0 }) => FinWait,
            (Open | Paused, LastReply { .. } | ShutdownBegun { .. }) => Finishing,
            (Finishing, Written { owed: 0 }) => FinWait,
            (Finishing, _) => Finishing,

            // FIN sent: input is read and discarded so that closing cannot
            // turn into an RST; the peer's FIN or the linger deadline ends it.
            (FinWait, Eof { .. } | LingerExpired) => Closed(CloseReason::Eof),
            (FinWait, _) => FinWait,

            // Only FinWait lingers.
            (Open | Paused, LingerExpired) => self,
        }
    }

    /// Whether the reactor should read from the socket in this state.
    pub fn is_reading(self) -> bool {
        matches!(self, State::Open | State::FinWait)
    }

    /// Whether the connection is finished and waiting to be removed.
    pub fn is_closed(self) -> bool {
        matches!(self, State::Closed(_))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Open => f.write_str("OPEN"),
            State::Paused => f.write_str("PAUSED"),
            State::CloseWait => f.write_str("CLOSE-WAIT"),
            State::Finishing => f.write_str("FINISHING"),
            State::FinWait => f.write_str("FIN-WAIT-2"),
            State::Closed(reason) => write!(f, "CLOSED({reason})"),
        }
    }
}
