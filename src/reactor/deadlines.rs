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
//! A sweep costs one pass over the slab (a few microseconds per thousand
//! connections), so sweeps are spaced at least [`MIN_SWEEP_INTERVAL`] apart.
//! A deadline is therefore acted on at most that much after it passes (plus
//! the time the loop spends on the batch it is in). This is the shape of
//! redis's `serverCron` client timeouts, rather than a timer wheel, because
//! the whole server has one idle timeout and the pass is cheap.

use std::time::{Duration, Instant};

/// The shortest time between two sweeps, and so how late after a deadline
/// a sweep may act on it.
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
