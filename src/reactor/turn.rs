//! What a handler's turn left for the reactor to do.
//!
//! A handler (a connection's `on_readable`, `on_writable`, `on_timer`, the
//! UDP socket's `on_readable`) does its reads and writes and then reports
//! what the *loop* must do about it: come back for input left behind, keep
//! a linger deadline, remove a closed connection. The handler never touches
//! the reactor's lists; the reactor acts on the [`Turn`] (`Reactor::act_on`),
//! so the loop's rules stay in `reactor.rs`.
//!
//! Three yes/no answers, kept as three bits of one byte: a turn is returned
//! for every message, and one byte comes back in one register, where three
//! separate `bool`s must be packed on return and unpacked by the caller.

/// What a handler's turn left for the reactor to do: any of three things,
/// so that the turns of two handlers run for one event can be combined
/// ([`Turn::then`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn(u8);

impl Turn {
    /// Nothing: the socket has nothing more for now (or the connection is
    /// not reading); the next event will say when it has.
    pub const DONE: Turn = Turn(0);
    /// The read budget ran out with input possibly still waiting: epoll will
    /// not say so again, so the reactor must come back by itself.
    pub const READ_AGAIN: Turn = Turn(1);
    /// Our FIN is out and the connection waits for the peer's (`FinWait`):
    /// a sweep must come by the linger deadline.
    pub const LINGERING: Turn = Turn(2);
    /// The connection closed: the reactor removes it after this batch.
    pub const CLOSED: Turn = Turn(4);

    /// The turn of two handlers run for one event, one after the other:
    /// everything either left to do.
    #[inline]
    #[must_use]
    pub fn then(self, later: Turn) -> Turn {
        Turn(self.0 | later.0)
    }

    /// `READ_AGAIN` is set.
    #[inline]
    pub fn read_again(self) -> bool {
        self.0 & Turn::READ_AGAIN.0 != 0
    }

    /// `LINGERING` is set.
    #[inline]
    pub fn lingering(self) -> bool {
        self.0 & Turn::LINGERING.0 != 0
    }

    /// `CLOSED` is set.
    #[inline]
    pub fn closed(self) -> bool {
        self.0 & Turn::CLOSED.0 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn then_keeps_everything_either_turn_left_to_do() {
        let turn = Turn::READ_AGAIN.then(Turn::CLOSED);
        assert!(turn.read_again() && turn.closed() && !turn.lingering());
        assert_eq!(Turn::DONE.then(Turn::DONE), Turn::DONE);
        assert!(Turn::DONE.then(Turn::LINGERING).lingering());
        assert!(!Turn::DONE.read_again() && !Turn::DONE.lingering() && !Turn::DONE.closed());
        // Both handlers of one event may report the same: a connection whose
        // flush closes it reports closed again from its read.
        for turn in [Turn::READ_AGAIN, Turn::LINGERING, Turn::CLOSED] {
            assert_eq!(turn.then(turn), turn);
        }
    }
}
