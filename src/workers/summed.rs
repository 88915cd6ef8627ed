//! The supervisor's stats line: the workers' counts summed, then how many
//! workers there are, how often one was restarted, and how many
//! connections died with a worker.
//!
//! ```text
//! stats accepted=300 ... rejected_source=0 workers=3 restarts=1 lost=12
//! ```
//!
//! The first twenty-one fields are those of the one-reactor line, in its
//! order, read by its own field reader (`Stats::read_fields`): a script
//! that reads a single reactor's line field by field reads this one's
//! prefix unchanged. The one-reactor line's strict parser
//! (`Stats::from_str`) refuses this line, on purpose: the three fields after
//! the prefix are not its own.
//!
//! The books balance: `accepted = active + closed_eof + closed_reset +
//! closed_idle + lost`. A worker that dies takes the connections it held
//! with it (the kernel resets them); they leave `active` for `lost`.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use crate::stats::{ParseStatsError, Stats};

/// The summed line of `serve --workers N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisedStats {
    /// Every worker's counts, added (`max_batch`: the largest).
    pub stats: Stats,
    /// Worker processes.
    pub workers: u64,
    /// Workers that died and were started again.
    pub restarts: u64,
    /// Connections a worker held when it died (the kernel reset them).
    pub lost: u64,
}

impl SupervisedStats {
    /// Prints the line on stdout (one write, flushed), as
    /// [`Stats::print_line`] does for one reactor.
    ///
    /// # Errors
    /// If stdout cannot be written.
    pub fn print_line(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{self}")?;
        out.flush()
    }
}

impl fmt::Display for SupervisedStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} workers={} restarts={} lost={}",
            self.stats, self.workers, self.restarts, self.lost
        )
    }
}

impl FromStr for SupervisedStats {
    type Err = ParseStatsError;

    fn from_str(line: &str) -> Result<SupervisedStats, ParseStatsError> {
        let (stats, [workers, restarts, lost]) =
            Stats::read_extended(line, ["workers", "restarts", "lost"])?;
        Ok(SupervisedStats {
            stats,
            workers,
            restarts,
            lost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_back() {
        let mut stats = Stats::default();
        stats.opened();
        let line = SupervisedStats {
            stats,
            workers: 3,
            restarts: 1,
            lost: 12,
        };
        let text = line.to_string();
        assert!(text.starts_with("stats accepted=1 "), "{text}");
        assert!(
            text.ends_with(" rejected_source=0 workers=3 restarts=1 lost=12"),
            "{text}"
        );
        assert_eq!(text.parse::<SupervisedStats>(), Ok(line));
        // The one-reactor reader rejects it: the extra fields are not its own.
        assert!(text.parse::<Stats>().is_err());
        assert!(stats.to_string().parse::<SupervisedStats>().is_err());
    }
}
