//! The live progress line: once a second on stderr, as wrk and tcpkali users
//! expect (`[ 3.0s] 1000/1000 connections up, 123456 msg/s`).
//!
//! A process of `bench --processes N` does not print it: it sends its
//! figures to its parent instead (one `@progress UP MESSAGES` line a second
//! on stdout, `processes.rs`), which prints one line for all of them.

use std::io::Write;
use std::time::{Duration, Instant};

/// How often the line is printed.
pub const LINE_EVERY: Duration = Duration::from_secs(1);
/// The first word of a progress line sent to the parent.
pub const PARENT_LINE: &str = "@progress";

/// Counts completions and prints the line once per second.
#[derive(Debug)]
pub struct Progress {
    is_enabled: bool,
    /// Lines go to the parent process (stdout), not to a person (stderr).
    is_for_parent: bool,
    started: Instant,
    last: Instant,
    /// `last` plus a second: when the next line is due.
    next_line: Instant,
    since_last: u64,
}

impl Progress {
    /// A progress reporter; a disabled one counts but prints nothing.
    pub fn new(is_enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            is_enabled,
            is_for_parent: false,
            started: now,
            last: now,
            next_line: now + LINE_EVERY,
            since_last: 0,
        }
    }

    /// A reporter that sends machine lines to the parent process.
    pub fn for_parent() -> Self {
        Progress {
            is_for_parent: true,
            ..Progress::new(true)
        }
    }

    /// Counts one completed message (or datagram, or churn cycle).
    pub fn count_message(&mut self) {
        self.since_last += 1;
    }

    /// Prints the line if a second has passed since the last one. (Called
    /// on every wake-up of the load generator: the common case is one
    /// comparison.)
    pub fn line_if_due(&mut self, now: Instant, up: usize, total: usize) {
        if now < self.next_line {
            return;
        }
        let elapsed = now.saturating_duration_since(self.last);
        if self.is_for_parent {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{PARENT_LINE} {up} {}", self.since_last);
            let _ = out.flush();
        } else if self.is_enabled {
            let rate = self.since_last as f64 / elapsed.as_secs_f64();
            let _ = writeln!(
                std::io::stderr(),
                "[{:5.1}s] {up}/{total} connections up, {rate:.0} msg/s",
                now.saturating_duration_since(self.started).as_secs_f64()
            );
        }
        self.last = now;
        self.next_line = now + LINE_EVERY;
        self.since_last = 0;
    }
}
