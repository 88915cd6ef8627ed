//! The server's counters and the exact `stats ...` line printed on stdout.
//!
//! The line is part of the contract (scripts and the tests parse it), so its
//! format is defined here once: `stats accepted=N rejected=N active=N
//! closed_eof=N closed_reset=N closed_idle=N bytes_in=N bytes_out=N udp_in=N
//! udp_out=N udp_dropped=N`.

use std::fmt;
use std::io::{self, Write};

use crate::close::CloseReason;

/// Counters kept by a server while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted and served (rejected ones excluded).
    pub accepted: u64,
    /// TCP connections accepted past the limit and closed at once.
    pub rejected: u64,
    /// TCP connections open right now.
    pub active: u64,
    /// Connections that ended with the peer's EOF (or greet's linger).
    pub closed_eof: u64,
    /// Connections ended by a reset or another I/O error.
    pub closed_reset: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle: u64,
    /// TCP bytes received.
    pub bytes_in: u64,
    /// TCP bytes sent.
    pub bytes_out: u64,
    /// UDP datagrams received.
    pub udp_in: u64,
    /// UDP datagrams sent.
    pub udp_out: u64,
    /// UDP datagrams dropped (reflection guard, full queue, send failure).
    pub udp_dropped: u64,
}

impl Stats {
    /// Counts a newly accepted connection.
    pub fn opened(&mut self) {
        self.accepted += 1;
        self.active += 1;
    }

    /// Counts the end of a connection that [`Stats::opened`] counted.
    pub fn closed(&mut self, reason: CloseReason) {
        self.active = self.active.saturating_sub(1);
        match reason {
            CloseReason::Eof => self.closed_eof += 1,
            CloseReason::Reset => self.closed_reset += 1,
            CloseReason::Idle => self.closed_idle += 1,
            CloseReason::Rejected => {}
        }
    }

    /// Counts a connection turned away at the limit (never counted as opened).
    pub fn rejected(&mut self) {
        self.rejected += 1;
    }

    /// Adds another set of counters (the blocking server keeps one per thread).
    pub fn add(&mut self, other: &Stats) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.active += other.active;
        self.closed_eof += other.closed_eof;
        self.closed_reset += other.closed_reset;
        self.closed_idle += other.closed_idle;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.udp_in += other.udp_in;
        self.udp_out += other.udp_out;
        self.udp_dropped += other.udp_dropped;
    }

    /// Prints the stats line on stdout and flushes it, so that a reader at the
    /// other end of a pipe sees it at once.
    pub fn print_line(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{self}")?;
        out.flush()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stats accepted={} rejected={} active={} closed_eof={} closed_reset={} closed_idle={} \
             bytes_in={} bytes_out={} udp_in={} udp_out={} udp_dropped={}",
            self.accepted,
            self.rejected,
            self.active,
            self.closed_eof,
            self.closed_reset,
            self.closed_idle,
            self.bytes_in,
            self.bytes_out,
            self.udp_in,
            self.udp_out,
            self.udp_dropped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_contract_format() {
        let mut stats = Stats::default();
        stats.opened();
        stats.opened();
        stats.closed(CloseReason::Reset);
        stats.rejected();
        stats.bytes_in = 5;
        assert_eq!(
            stats.to_string(),
            "stats accepted=2 rejected=1 active=1 closed_eof=0 closed_reset=1 closed_idle=0 \
             bytes_in=5 bytes_out=0 udp_in=0 udp_out=0 udp_dropped=0"
        );
    }
}
