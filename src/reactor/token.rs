//! The token scheme: which `mio::Token` means which event source.
//!
//! `mio::Poll` hands back only a [`Token`] with each event, so the mapping from
//! token to owner must be fixed and written down in one place: here, in this
//! table and the constants below it. A few tokens are reserved for the
//! singletons; connection tokens start after them, at [`FIRST_CONNECTION`]
//! (everything else, code and docs, names that constant rather than its
//! value, so a new reserved token changes one line):
//!
//! | token                      | owner                                |
//! |----------------------------|--------------------------------------|
//! | `0`                        | the TCP listener ([`LISTENER`])      |
//! | `1`                        | the UDP socket ([`UDP`])             |
//! | `2`                        | the signal pipe ([`SIGNALS`])        |
//! | `FIRST_CONNECTION + k` (3 + k) | the connection in slab slot `k`  |
//!
//! Slab keys are reused as soon as a slot is freed, so a token names a *slot*,
//! not a connection. Two rules keep that safe:
//!
//! * a connection closed while the reactor is working through one batch of
//!   events is only marked closed; it leaves the slab (and its slot becomes
//!   reusable) after the batch, so a later event of the same batch that was
//!   meant for it cannot reach a newcomer (redis's `freeClientAsync`);
//! * its socket is closed when it leaves the slab, which removes it from the
//!   epoll set, so no event for it can arrive in a later batch.
//!
//! This is the only file that does arithmetic on tokens.

use mio::Token;

/// The TCP listener.
pub const LISTENER: Token = Token(0);
/// The UDP socket.
pub const UDP: Token = Token(1);
/// The self-pipe that signal-hook writes to when SIGINT or SIGTERM arrives.
pub const SIGNALS: Token = Token(2);
/// The token of slab slot 0: the first one after the reserved tokens.
pub const FIRST_CONNECTION: usize = 3;

/// The owner of an event, decoded from its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The TCP listener has connections to accept.
    Listener,
    /// The UDP socket is readable or writable.
    Udp,
    /// A signal arrived.
    Signals,
    /// The connection in this slab slot.
    Connection(usize),
}

/// Decodes a token.
pub fn target(token: Token) -> Target {
    match token {
        LISTENER => Target::Listener,
        UDP => Target::Udp,
        SIGNALS => Target::Signals,
        Token(n) => Target::Connection(n - FIRST_CONNECTION),
    }
}

/// The token for the connection in slab slot `key`.
pub fn connection_token(key: usize) -> Token {
    Token(key + FIRST_CONNECTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_round_trip_and_never_collide_with_reserved_ones() {
        for key in [0, 1, 2, 1023, 1024, 1025, 65_535] {
            let token = connection_token(key);
            assert_eq!(target(token), Target::Connection(key));
            assert!(![LISTENER, UDP, SIGNALS].contains(&token));
        }
        assert_eq!(target(LISTENER), Target::Listener);
        assert_eq!(target(UDP), Target::Udp);
        assert_eq!(target(SIGNALS), Target::Signals);
    }
}
