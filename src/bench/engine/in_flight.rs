//! The start times of one connection's messages still waiting for their
//! reply, oldest first.
//!
//! With pipeline 1 (the default closed loop) there is never more than one,
//! so the oldest is kept in the connection itself and only the others go to
//! a `VecDeque`: the common case touches no heap memory, and a reply costs
//! no extra cache line per connection (it showed at 1,000 and 10,000
//! connections, where the connections no longer fit in the CPU's cache).

use std::collections::VecDeque;

use super::stamp::Stamp;

/// A queue of start times whose front lives inline.
#[derive(Debug, Default)]
pub struct InFlight {
    oldest: Option<Stamp>,
    newer: VecDeque<Stamp>,
}

impl InFlight {
    /// Adds the start of a message just sent.
    #[inline]
    pub fn push(&mut self, at: Stamp) {
        if self.oldest.is_none() {
            self.oldest = Some(at);
        } else {
            self.newer.push_back(at);
        }
    }

    /// Takes the start of the oldest message, whose reply just completed.
    #[inline]
    pub fn pop(&mut self) -> Option<Stamp> {
        let oldest = self.oldest.take()?;
        self.oldest = self.newer.pop_front();
        Some(oldest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::engine::stamp::RunClock;
    use std::time::{Duration, Instant};

    #[test]
    fn starts_come_out_in_the_order_they_went_in() {
        let epoch = Instant::now();
        let clock = RunClock::starting_at(epoch);
        let at = |us| clock.stamp(epoch + Duration::from_micros(us));
        let mut queue = InFlight::default();
        assert_eq!(queue.pop(), None);
        queue.push(at(1));
        assert_eq!(queue.pop(), Some(at(1)));
        for us in [2, 3, 4] {
            queue.push(at(us));
        }
        assert_eq!(queue.pop(), Some(at(2)));
        queue.push(at(5));
        assert_eq!(
            [queue.pop(), queue.pop(), queue.pop(), queue.pop()],
            [Some(at(3)), Some(at(4)), Some(at(5)), None]
        );
    }
}
