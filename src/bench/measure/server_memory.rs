//! The server's resident memory (`--server-pid`), before, at its peak and
//! after a run: what hostile peers cost it, and whether it gave it back;
//! and before the first connect and with every connection open: what an
//! idle connection costs it ([`OpenCost`]).
//!
//! Read from `Rss` in `/proc/PID/smaps_rollup` (resident pages, in KiB),
//! summed over the process and its running descendants (`serve --workers
//! N`: the workers hold the connections), by
//! [`procfs::resident_kib`](crate::bench::procfs::resident_kib),
//! which says why not `VmRSS`. The peak is sampled every `SAMPLE_EVERY`
//! by whoever runs long enough to watch (the chaos thread). `VmHWM`, the
//! kernel's own high-water mark, is not used: it covers the process's whole
//! life, so a spike in an earlier run would show as this run's peak.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often the peak is sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// How long after the peers leave the "after" figure is read: the reactor
/// gives memory back on its next wake-up, the allocator on its next trim.
pub(crate) const SETTLE: Duration = Duration::from_secs(1);

/// Kept at this path for the benches that read it here (`procfs` is its
/// home).
pub use crate::bench::procfs::resident_kib;

/// The server's resident memory over a run, in KiB (the report's
/// `server_rss_kib`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssSpan {
    /// Before any connection of the run.
    pub before: u64,
    /// The largest sample during the run.
    pub peak: u64,
    /// `SETTLE` after every peer had gone.
    pub after: u64,
}

/// The server's resident memory before the first connect and with every
/// connection open, in KiB: what holding the connections costs it (the
/// report's `server_rss_open_kib`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCost {
    /// Before the first connect.
    pub before: u64,
    /// With every connection open.
    pub open: u64,
}

impl OpenCost {
    /// Bytes per connection (0 if memory fell).
    pub fn bytes_per_connection(&self, connections: u64) -> f64 {
        if connections == 0 {
            return 0.0;
        }
        self.open.saturating_sub(self.before) as f64 * 1024.0 / connections as f64
    }
}

/// Samples a process's resident memory, keeping the peak.
#[derive(Debug)]
pub(crate) struct PeakWatch {
    pid: u32,
    peak: u64,
    next: Instant,
}

impl PeakWatch {
    /// Watches `pid`, starting now.
    pub(crate) fn new(pid: u32) -> PeakWatch {
        PeakWatch {
            pid,
            peak: resident_kib(pid).unwrap_or(0),
            next: Instant::now() + SAMPLE_EVERY,
        }
    }

    /// Samples if a sample is due.
    pub(crate) fn sample(&mut self, now: Instant) {
        if now >= self.next {
            self.next = now + SAMPLE_EVERY;
            if let Ok(kib) = resident_kib(self.pid) {
                self.peak = self.peak.max(kib);
            }
        }
    }

    /// When the next sample is due.
    pub(crate) fn next_sample(&self) -> Instant {
        self.next
    }

    /// The largest sample so far.
    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }
}
