//! Why connections failed, counted by kind, and the first cause: what a
//! failed run names in its one `error:` line (`bench.rs`), and the
//! report's `"failures"` object.
//!
//! A failed connect or a lost connection is an `io::Error` (or the end of
//! the stream); [`Cause::of`] sorts it into the few kinds a person acts on:
//! nothing listening (refused), a server or network too slow to answer
//! (timed out), a server that reset or closed the connection, no source
//! port or address left, no descriptors left.

use std::io;

use serde::{Deserialize, Serialize};

/// What made a connect fail or a connection end early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Nothing listening (`ECONNREFUSED`).
    Refused,
    /// The connect took longer than `--connect-timeout`, or the kernel gave
    /// up (`ETIMEDOUT`).
    TimedOut,
    /// The server reset the connection (`ECONNRESET`, `EPIPE`).
    Reset,
    /// The server closed the connection (end of stream) before the run
    /// was over.
    Closed,
    /// No route to the server (`ENETUNREACH`, `EHOSTUNREACH`).
    Unreachable,
    /// No source port or address left (`EADDRNOTAVAIL`, `EADDRINUSE`).
    NoAddress,
    /// Out of file descriptors (`EMFILE`, `ENFILE`).
    NoDescriptors,
    /// `--idle`: a round trip after the hold that got no reply in time.
    NoReply,
    /// Anything else.
    Other,
}

impl Cause {
    /// The kind of an error.
    pub fn of(error: &io::Error) -> Cause {
        match error.raw_os_error() {
            Some(libc::ECONNREFUSED) => Cause::Refused,
            Some(libc::ETIMEDOUT) => Cause::TimedOut,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => Cause::Reset,
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => Cause::Unreachable,
            Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => Cause::NoAddress,
            Some(libc::EMFILE | libc::ENFILE) => Cause::NoDescriptors,
            _ => Cause::Other,
        }
    }

    /// How the `error:` line names it.
    pub fn sentence(self) -> &'static str {
        match self {
            Cause::Refused => "connection refused",
            Cause::TimedOut => "timed out",
            Cause::Reset => "reset by the server",
            Cause::Closed => "closed by the server",
            Cause::Unreachable => "no route to the server",
            Cause::NoAddress => "no source address or port left",
            Cause::NoDescriptors => "out of file descriptors",
            Cause::NoReply => "no reply in time",
            Cause::Other => "another error",
        }
    }

    /// Every cause, in the order they are listed.
    pub const ALL: [Cause; 9] = [
        Cause::Refused,
        Cause::TimedOut,
        Cause::Reset,
        Cause::Closed,
        Cause::Unreachable,
        Cause::NoAddress,
        Cause::NoDescriptors,
        Cause::NoReply,
        Cause::Other,
    ];
}

/// Failures counted by cause, and the first one seen (the report's
/// `"failures"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// Connects refused.
    pub refused: u64,
    /// Connects that timed out.
    pub timed_out: u64,
    /// Connections reset.
    pub reset: u64,
    /// Connections closed by the server mid-run.
    pub closed: u64,
    /// Connects with no route.
    pub unreachable: u64,
    /// Connects with no source address or port left.
    pub no_address: u64,
    /// Connects with no descriptor left.
    pub no_descriptors: u64,
    /// Round trips (or datagrams) with no reply in time.
    pub no_reply: u64,
    /// Any other error.
    pub other: u64,
    /// The first failure of the run.
    pub first: Option<Cause>,
}

impl Failures {
    /// Counts one failure.
    pub fn count(&mut self, cause: Cause) {
        self.add_n(cause, 1);
        self.first.get_or_insert(cause);
    }

    /// Counts `n` failures of one cause.
    pub fn add_n(&mut self, cause: Cause, n: u64) {
        *self.slot(cause) += n;
        if n > 0 {
            self.first.get_or_insert(cause);
        }
    }

    /// How many failed of `cause`.
    pub fn of(&self, cause: Cause) -> u64 {
        let mut copy = *self;
        *copy.slot(cause)
    }

    /// Every failure, whatever its cause.
    pub fn total(&self) -> u64 {
        Cause::ALL.iter().map(|&c| self.of(c)).sum()
    }

    /// The causes that occurred, with their counts, as `100 refused, 3 reset`.
    pub fn by_kind(&self) -> String {
        Cause::ALL
            .iter()
            .filter(|&&c| self.of(c) > 0)
            .map(|&c| format!("{} {}", self.of(c), c.sentence()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Adds another part's failures (`bench merge`); the first cause is
    /// this part's, or the other's if this one had none.
    pub fn add(&mut self, other: &Failures) {
        for cause in Cause::ALL {
            *self.slot(cause) += other.of(cause);
        }
        self.first = self.first.or(other.first);
    }

    fn slot(&mut self, cause: Cause) -> &mut u64 {
        match cause {
            Cause::Refused => &mut self.refused,
            Cause::TimedOut => &mut self.timed_out,
            Cause::Reset => &mut self.reset,
            Cause::Closed => &mut self.closed,
            Cause::Unreachable => &mut self.unreachable,
            Cause::NoAddress => &mut self.no_address,
            Cause::NoDescriptors => &mut self.no_descriptors,
            Cause::NoReply => &mut self.no_reply,
            Cause::Other => &mut self.other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_kind_and_the_first_is_kept() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(Cause::of(&refused), Cause::Refused);
        assert_eq!(Cause::of(&reset), Cause::Reset);
        assert_eq!(Cause::of(&io::Error::other("x")), Cause::Other);
        let mut failures = Failures::default();
        failures.count(Cause::Refused);
        failures.count(Cause::Reset);
        failures.count(Cause::Refused);
        assert_eq!(failures.first, Some(Cause::Refused));
        assert_eq!(failures.total(), 3);
        assert_eq!(
            failures.by_kind(),
            "2 connection refused, 1 reset by the server"
        );
        let mut other = Failures::default();
        other.add_n(Cause::NoReply, 5);
        failures.add(&other);
        assert_eq!((failures.of(Cause::NoReply), failures.total()), (5, 8));
    }
}
