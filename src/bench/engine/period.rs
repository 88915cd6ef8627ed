//! Where a whole run is: its periods, from opening the connections to the
//! end.
//!
//! (Periods, not phases: a phase is one of the four steps every turn of a
//! loop takes, the reactor's word. A run goes through each period once.)
//!
//! ```text
//!   Opening ──all open──▶ Warmup ──until──▶ Measuring ──until──▶ Done
//!                                                  │ Idle only
//!                                                  └──▶ IdleCheck ──until, or every reply back──▶ Done
//! ```
//!
//! Churn and UDP start at `Warmup`: churn connects all the time (that is
//! what it measures), and a UDP socket needs no handshake. Replies count
//! only while `Measuring` (and, for `Idle`, its round trips during
//! `IdleCheck`): each period is a [`Stage`] of the series, whose intervals
//! close as the period changes, so that the counted ones add up to the
//! totals (`measure/series.rs`); the CPU times are read as the measured
//! window opens and closes (`measure/instruments.rs`).

use std::time::Instant;

use crate::bench::measure::series::Stage;

/// Where the whole run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Period {
    /// Connections are being opened; the clock has not started.
    Opening,
    /// Load runs but is not counted yet.
    Warmup {
        /// When counting starts.
        until: Instant,
    },
    /// Load is counted (for `Idle`: the connections are held idle).
    Measuring {
        /// When counting started.
        from: Instant,
        /// When it stops.
        until: Instant,
    },
    /// `Idle` only: one round trip on every connection, until all are back.
    IdleCheck {
        /// When the check gives up on the missing round trips.
        until: Instant,
    },
    /// Over: nothing new is started.
    Done,
}

impl Period {
    /// When this period ends by the clock (`None`: it ends by an event,
    /// or has ended).
    pub(crate) fn ends_at(self) -> Option<Instant> {
        match self {
            Period::Warmup { until }
            | Period::Measuring { until, .. }
            | Period::IdleCheck { until } => Some(until),
            Period::Opening | Period::Done => None,
        }
    }

    /// The stage of the series this period is, for a run that holds its
    /// connections idle (`is_idle`) or not.
    pub(crate) fn stage(self, is_idle: bool) -> Stage {
        match self {
            Period::Opening => Stage::Opening,
            Period::Warmup { .. } => Stage::Warmup,
            Period::Measuring { .. } if is_idle => Stage::Hold,
            Period::Measuring { .. } => Stage::Measuring,
            Period::IdleCheck { .. } => Stage::Wave,
            Period::Done => Stage::After,
        }
    }

    /// Whether the measured window opens or closes between `self` and `to`
    /// (`Some(true)`: it opens).
    pub(crate) fn window_change(self, to: Period) -> Option<bool> {
        match (self, to) {
            (Period::Measuring { .. }, Period::Measuring { .. }) => None,
            (Period::Measuring { .. }, _) => Some(false),
            (_, Period::Measuring { .. }) => Some(true),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_measured_window_counts_and_its_edges_are_seen() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let measuring = Period::Measuring {
            from: t,
            until: t + s,
        };
        assert!(measuring.stage(false).counts() && !measuring.stage(true).counts());
        assert!(!Period::Warmup { until: t + s }.stage(false).counts());
        assert!(Period::IdleCheck { until: t + s }.stage(true).counts());
        assert_eq!(Period::Done.stage(false), Stage::After);
        assert_eq!(measuring.ends_at(), Some(t + s));
        assert_eq!(Period::Opening.ends_at(), None);
        let warmup = Period::Warmup { until: t };
        assert_eq!(warmup.window_change(measuring), Some(true));
        assert_eq!(measuring.window_change(Period::Done), Some(false));
        assert_eq!(
            measuring.window_change(Period::IdleCheck { until: t }),
            Some(false)
        );
        assert_eq!(Period::Opening.window_change(warmup), None);
    }
}
