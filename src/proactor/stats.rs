//! The proactor's stats line: the reactor's fields (`crate::stats`), read
//! as the ring's work, and two counters of its own, `submissions` and
//! `rearms`, printed after them so that a reader of the reactor's line
//! reads this one too.

use std::io;

use crate::stats::Stats;

/// The proactor's counters beside the stats line's: what the ring did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProactorStats {
    /// The stats line's fields. The loop's six mean, here: `wakeups`,
    /// `io_uring_enter` calls; `events`, completions; `max_batch`, the
    /// most completions one enter brought; `reads`, recv completions;
    /// `reads_wouldblock`, recvs that found the provided ring empty;
    /// `writes`, sends submitted.
    pub stats: Stats,
    /// Entries submitted.
    pub submissions: u64,
    /// Multishot recvs armed (once per connection, and again after one
    /// ended).
    pub rearms: u64,
}

impl ProactorStats {
    /// Prints the line on stdout, flushed.
    ///
    /// # Errors
    /// If stdout cannot be written.
    pub fn print_line(&self) -> io::Result<()> {
        use std::io::Write;
        let mut out = io::stdout().lock();
        writeln!(out, "{self}")?;
        out.flush()
    }
}

impl std::fmt::Display for ProactorStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} submissions={} rearms={}",
            self.stats, self.submissions, self.rearms
        )
    }
}

impl std::str::FromStr for ProactorStats {
    type Err = crate::stats::ParseStatsError;

    fn from_str(line: &str) -> Result<ProactorStats, crate::stats::ParseStatsError> {
        let (stats, [submissions, rearms]) = Stats::read_extended(line, ["submissions", "rearms"])?;
        Ok(ProactorStats {
            stats,
            submissions,
            rearms,
        })
    }
}
