//! Idle and linger deadlines, and the poll timeout they imply.
//!
//! Every connection has at most one deadline: `last_active + idle_timeout`,
//! or, after it has sent its FIN, `last_active + LINGER`. Rather than a timer
//! per connection (a heap entry updated on every message, on the hot path),
//! the reactor *sweeps*: when the earliest deadline it knows of arrives, it
//! walks all connections once, closes the expired ones, and notes the new
//! earliest deadline. Activity only ever moves a deadline later, so the noted
//! one is a lower bound: a sweep may come before any deadline is due (and
//! find nothing to do), but no deadline is missed.
//!
//! A sweep costs one pass over the slab (one test per connection), so sweeps
//! are spaced at least [`MIN_SWEEP_INTERVAL`] apart. How late a deadline is
//! acted on, in all: it is measured from a [`Tick`] read back, which stands
//! for a moment less than two ticks (200 ms) after the real last activity
//! ([`Clock::latest`]), and the sweep that finds it due may come up to
//! [`MIN_SWEEP_INTERVAL`] (250 ms) after that; so less than 450 ms after the
//! real deadline, plus the batch the loop is in when the sweep falls due.
//! `docs/architecture.md` ("Deadlines") says the same. This is the shape of
//! redis's `serverCron` client timeouts, rather than a timer wheel, because
//! the whole server has one idle timeout and the pass is cheap.

use std::time::{Duration, Instant};

/// The resolution of a connection's clock.
pub const TICK: Duration = Duration::from_millis(100);
// `Clock::tick` counts tenths of a second in integer arithmetic.
const _: () = assert!(TICK.as_millis() == 100);

/// A moment as a connection keeps it: tenths of a second since the reactor
/// started, in 32 bits (4 bytes where an `Instant` takes 16). Idle and
/// linger deadlines need neither nanoseconds nor centuries. The count wraps
/// after 13.6 years; differences are taken with wrapping arithmetic, so they
/// are right for any span under half that, far beyond the longest idle
/// timeout the command line accepts (one year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick(u32);

/// Turns `Instant`s into [`Tick`]s and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose tick 0 is `epoch`.
    pub fn starting_at(epoch: Instant) -> Clock {
        Clock { epoch }
    }

    /// The tick `now` falls in.
    pub fn tick(&self, now: Instant) -> Tick {
        let since = now.saturating_duration_since(self.epoch);
        // Whole tenths, without 128-bit arithmetic (it runs every wake-up).
        let tenths = since.as_secs() * 10 + u64::from(since.subsec_nanos() / 100_000_000);
        // Wrapping on purpose (see `Tick`).
        Tick(tenths as u32)
    }

    /// The latest moment that `tick` may stand for, seen from `now`: never
    /// earlier than the real one, so a deadline measured from it is never
    /// early, and less than two ticks late (before the sweep's own
    /// lateness: see the module's doc).
    pub fn latest(&self, tick: Tick, now: Instant) -> Instant {
        let ago = self.tick(now).0.wrapping_sub(tick.0);
        let back = TICK * ago;
        now.checked_sub(back).unwrap_or(now) + TICK
    }
}

/// The shortest time between two sweeps, and so how late after a deadline
/// (as computed from a tick) a sweep may act on it.
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// When the next sweep is due.
#[derive(Debug, Default)]
pub struct Sweeper {
    next: Option<Instant>,
}

impl Sweeper {
    /// Makes sure a sweep happens at `at` or earlier.
    pub fn wake_at(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }

    /// The time of the next sweep, if any deadline is pending.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Whether a sweep is due.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|next| next <= now)
    }

    /// Records a finished sweep and the earliest deadline it left pending.
    pub fn swept(&mut self, now: Instant, earliest: Option<Instant>) {
        self.next = earliest.map(|at| at.max(now + MIN_SWEEP_INTERVAL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_read_back_is_never_earlier_and_at_most_two_ticks_later() {
        let epoch = Instant::now();
        let clock = Clock::starting_at(epoch);
        for offset_ms in [0, 1, 99, 100, 101, 12_345, 86_400_000] {
            let at = epoch + Duration::from_millis(offset_ms);
            let tick = clock.tick(at);
            for later_ms in [0, 50, 100, 1_000, 60_000] {
                let now = at + Duration::from_millis(later_ms);
                let back = clock.latest(tick, now);
                assert!(back >= at, "offset {offset_ms} later {later_ms}");
                assert!(back <= at + 2 * TICK, "offset {offset_ms} later {later_ms}");
            }
        }
    }

    #[test]
    fn ticks_wrap_without_breaking_differences() {
        let epoch = Instant::now();
        let clock = Clock::starting_at(epoch);
        let near_wrap = Tick(u32::MAX - 5);
        let now_tick = Tick(near_wrap.0.wrapping_add(10));
        assert_eq!(now_tick.0.wrapping_sub(near_wrap.0), 10);
        assert_eq!(clock.tick(epoch), Tick(0));
    }

    #[test]
    fn keeps_the_earliest_wake_and_spaces_sweeps() {
        let now = Instant::now();
        let mut s = Sweeper::default();
        assert!(!s.is_due(now));
        s.wake_at(now + Duration::from_secs(5));
        s.wake_at(now + Duration::from_secs(2));
        assert_eq!(s.next(), Some(now + Duration::from_secs(2)));
        assert!(s.is_due(now + Duration::from_secs(2)));
        s.swept(now, Some(now));
        assert_eq!(s.next(), Some(now + MIN_SWEEP_INTERVAL));
        s.swept(now, None);
        assert_eq!(s.next(), None);
    }
}
