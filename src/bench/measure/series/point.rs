//! One point of a run's series: what one interval (a second, or less at a
//! change of period) measured, as the report's JSON carries it (the
//! `"series"` array, and each line of `bench --json-stream`).
//!
//! A point keeps its interval's latency histogram, encoded
//! (`report/interchange.rs`), beside its percentiles: so that the points of
//! several processes or machines add up exactly ([`Point::add`]), the
//! interval log (`--hdr-log`) can be written from them, and a run's
//! counted points add up to its totals, histogram and all.

use serde::{Deserialize, Serialize};

use crate::bench::report::{Latency, interchange};

/// Where the run was during an interval (a period of the engine, named
/// for the load: an idle run's measured period is its hold, and its
/// round trips after the hold its wave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Connections opening; the clock has not started.
    Opening,
    /// Load that is not counted yet.
    Warmup,
    /// The measured window.
    Measuring,
    /// `--idle`: the connections held idle (the measured window).
    Hold,
    /// `--idle`: one round trip on every connection after the hold.
    Wave,
    /// After the window: replies still arriving, not counted.
    After,
}

impl Stage {
    /// Its name, as the progress line and the JSON write it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Opening => "opening",
            Stage::Warmup => "warmup",
            Stage::Measuring => "measuring",
            Stage::Hold => "hold",
            Stage::Wave => "wave",
            Stage::After => "after",
        }
    }

    /// Whether what is answered in it counts in the report's totals.
    pub fn counts(self) -> bool {
        matches!(self, Stage::Measuring | Stage::Wave)
    }
}

/// What one interval measured. Counts are of the interval; `connections`
/// is how many were open as it closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Where the run was.
    pub stage: Stage,
    /// The interval's place in its stage (0, 1, ...): the key on which
    /// the points of several processes are added.
    pub second: u32,
    /// When it began, in milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// How long it lasted, in seconds (to the millisecond).
    pub length_s: f64,
    /// Messages answered (churn: cycles; UDP: datagrams).
    pub messages: u64,
    /// Reply bytes.
    pub bytes: u64,
    /// Latency percentiles of its messages, in microseconds (`null`: none).
    pub latency_us: Option<Latency>,
    /// Its latency histogram, interchange-encoded (empty: none).
    #[serde(default)]
    pub latency_hdr: String,
    /// Connections open as it closed.
    pub connections: u64,
    /// Connects that completed in it.
    pub connects: u64,
    /// The slowest of them, in microseconds (`null`: none).
    pub connect_max_us: Option<u64>,
    /// Connects that failed in it (refused, timed out, ...).
    pub failed: u64,
    /// Of those, refused.
    pub refused: u64,
    /// Connections lost in it.
    pub errors: u64,
    /// Wrong reply bytes in it.
    pub mismatches: u64,
    /// `--server-pid`: the server's CPU seconds in it (user + system).
    pub server_cpu_s: Option<f64>,
    /// `--server-pid`: the server's resident memory as it closed, KiB.
    pub server_rss_kib: Option<u64>,
    /// The load generator's own CPU seconds in it.
    pub bench_cpu_s: Option<f64>,
}

impl Point {
    /// Messages per second over the interval.
    pub fn messages_per_sec(&self) -> f64 {
        per_second(self.messages, self.length_s)
    }

    /// Reply bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        per_second(self.bytes, self.length_s)
    }

    /// Completed connects per second.
    pub fn connects_per_sec(&self) -> f64 {
        per_second(self.connects, self.length_s)
    }

    /// The interval's latency histogram (empty if it had none).
    pub fn histogram(&self) -> Option<hdrhistogram::Histogram<u64>> {
        if self.latency_hdr.is_empty() {
            return None;
        }
        interchange::decode(&self.latency_hdr).ok()
    }

    /// Adds the same interval of another process or machine (same stage
    /// and second): counts and CPU summed, histograms added (so the
    /// percentiles stay exact), the server's memory the larger reading (one
    /// server, read by one part).
    pub fn add(&mut self, other: &Point) {
        self.start_ms = self.start_ms.min(other.start_ms);
        self.length_s = self.length_s.max(other.length_s);
        self.add_counts(other);
        self.connections += other.connections;
        self.merge_histograms(other);
    }

    /// Folds the next interval of the same stage into this one, for a run
    /// longer than the series keeps at one point a second: counts summed
    /// over the two, lengths added, histograms added, the connections and
    /// memory as the later one closed.
    pub fn absorb(&mut self, later: &Point) {
        self.length_s += later.length_s;
        self.add_counts(later);
        self.connections = later.connections;
        self.server_rss_kib = later.server_rss_kib.or(self.server_rss_kib);
        self.merge_histograms(later);
    }

    fn add_counts(&mut self, other: &Point) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.connects += other.connects;
        self.failed += other.failed;
        self.refused += other.refused;
        self.errors += other.errors;
        self.mismatches += other.mismatches;
        self.connect_max_us = self.connect_max_us.max(other.connect_max_us);
        let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.server_cpu_s = sum(self.server_cpu_s, other.server_cpu_s);
        self.bench_cpu_s = sum(self.bench_cpu_s, other.bench_cpu_s);
        self.server_rss_kib = self.server_rss_kib.max(other.server_rss_kib);
    }

    fn merge_histograms(&mut self, other: &Point) {
        let merged = match (self.histogram(), other.histogram()) {
            (Some(mut mine), Some(theirs)) => {
                // Each part's grew to its own largest value.
                mine.auto(true);
                mine.add(theirs).ok().map(|()| mine)
            }
            (mine, theirs) => mine.or(theirs),
        };
        if let Some(h) = merged {
            self.latency_us = (!h.is_empty()).then(|| Latency::of(&h));
            self.latency_hdr = interchange::encode(&h).unwrap_or_default();
        }
    }
}

/// `count` over `seconds` (0 for an empty interval).
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Adds the points of `part` to `merged`, interval by interval: a point of
/// the same stage and second is added to, one that `merged` lacks is kept
/// in its place (the result in the order the runs went: opening, warm-up,
/// measured, after, each by second).
pub fn add_series(merged: &mut Vec<Point>, part: &[Point]) {
    let mut by_key: std::collections::BTreeMap<(u8, u32), Point> = merged
        .drain(..)
        .map(|p| ((stage_order(p.stage), p.second), p))
        .collect();
    for point in part {
        by_key
            .entry((stage_order(point.stage), point.second))
            .and_modify(|mine| mine.add(point))
            .or_insert_with(|| point.clone());
    }
    merged.extend(by_key.into_values());
}

fn stage_order(stage: Stage) -> u8 {
    match stage {
        Stage::Opening => 0,
        Stage::Warmup => 1,
        Stage::Measuring | Stage::Hold => 2,
        Stage::Wave => 3,
        Stage::After => 4,
    }
}
