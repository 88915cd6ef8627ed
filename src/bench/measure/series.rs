//! The run as a story in time: one [`Point`] a second, in every mode.
//!
//! The engine hands every reply's latency to the series, which records it
//! in the histogram of the interval under way; nothing else is recorded
//! per message. When the interval closes (once a second by the clock, and
//! at every change of period, so that no interval straddles the edge of
//! the measured window), it becomes a point, and, if its stage is counted
//! ([`Stage::counts`]), its histogram and counts are *added to the run's
//! totals*: the report's latency histogram is the sum of the counted
//! intervals', so the intervals add up to the totals exactly, by
//! construction. Then the interval starts again, empty: one interval
//! histogram at a time, however long the run.
//!
//! The points are kept for the report (its `"series"`, the page's plots,
//! the interval log), and their memory is bounded too: past [`MAX_POINTS`]
//! neighbours of the same stage are folded pairwise, and later intervals
//! are folded into points of the same width (two seconds, then four, ...),
//! so a day-long run keeps a few thousand points, not 86,400.
//!
//! What a second costs is kept small, because it is paid once a second
//! however few messages there were (and under callgrind, where the cost
//! of a message is measured, a second holds few): the interval's histogram
//! starts small and grows with the latencies it meets (HdrHistogram's
//! auto-resize: a loopback run's intervals stay at 16 KiB where the run's
//! ten-minute range takes 160 KiB), so clearing it and walking it are
//! short; it is encoded without compression (the interval log compresses
//! when it is written, `report/hdr_log.rs`).
//!
//! Errors, failed connects and wrong bytes are counted where they happen,
//! in the engine's `Outcome`; a point's are the outcome's counts as it
//! closed minus those as it opened, so nothing is counted twice.

pub mod point;

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};

use super::cpu_window::CpuTime;
use crate::bench::engine::plan::Outcome;
use crate::bench::measure::failures::Cause;
use crate::bench::procfs;
use crate::bench::report::Latency;
pub use point::{Point, Stage};

/// How long an interval lasts, unless the period changes first.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Points kept before neighbours are folded (an hour at one a second).
pub const MAX_POINTS: usize = 3_600;

/// The outcome's counts as an interval opened.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    failed: u64,
    refused: u64,
    errors: u64,
    mismatches: u64,
}

impl Counts {
    fn of(outcome: &Outcome) -> Counts {
        Counts {
            failed: outcome.failed,
            refused: outcome.failures.of(Cause::Refused),
            errors: outcome.errors,
            mismatches: outcome.mismatches,
        }
    }
}

/// The interval under way, and the points of those closed.
#[derive(Debug)]
pub(crate) struct Series {
    stage: Stage,
    second: u32,
    started: Instant,
    started_ms: u64,
    /// When the interval closes by the clock.
    closes_at: Instant,
    latency: Histogram<u64>,
    messages: u64,
    bytes: u64,
    connects: u64,
    connect_max: Option<u64>,
    counts: Counts,
    cpu: CpuReadings,
    /// The points, each with how many intervals it covers.
    kept: Vec<(Point, u32)>,
    /// Intervals a new point may cover (doubled at each fold).
    span: u32,
}

/// CPU times read as the last interval closed.
#[derive(Debug)]
struct CpuReadings {
    server_pid: Option<u32>,
    server: Option<CpuTime>,
    own: Option<CpuTime>,
    /// As the run began: the CPU of the whole run is taken from them.
    server_first: Option<CpuTime>,
    own_first: Option<CpuTime>,
}

impl CpuReadings {
    fn new(server_pid: Option<u32>) -> CpuReadings {
        let server = server_pid.and_then(|pid| CpuTime::of_tree(pid).ok());
        let own = CpuTime::of_tree(std::process::id()).ok();
        CpuReadings {
            server_pid,
            server,
            own,
            server_first: server,
            own_first: own,
        }
    }

    /// The seconds spent since the last reading: (server, own).
    fn step(&mut self) -> (Option<f64>, Option<f64>) {
        let seconds = |now: Option<CpuTime>, last: Option<CpuTime>| {
            let spent = now?.since(last?);
            Some((spent.user + spent.system).as_secs_f64())
        };
        let server = self.server_pid.and_then(|pid| CpuTime::of_tree(pid).ok());
        let own = CpuTime::of_tree(std::process::id()).ok();
        let out = (seconds(server, self.server), seconds(own, self.own));
        (self.server, self.own) = (server.or(self.server), own.or(self.own));
        out
    }
}

/// An interval's histogram: microseconds, 3 significant digits like the
/// run's (so that adding intervals to the run's is exact), starting at the
/// smallest size and growing with the values it records.
fn interval_histogram() -> io::Result<Histogram<u64>> {
    let mut histogram =
        Histogram::new_with_bounds(1, 2, 3).map_err(|e| io::Error::other(e.to_string()))?;
    histogram.auto(true);
    Ok(histogram)
}

/// A histogram in HdrHistogram's V2 encoding, uncompressed, as base64 (what
/// `interchange::decode` reads, as it reads the compressed form).
fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    match V2Serializer::new().serialize(histogram, &mut bytes) {
        Ok(_) => STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Series {
    /// A series whose first interval, of the opening, starts now.
    ///
    /// # Errors
    /// Only if the histogram's bounds were invalid (they are constants).
    pub(crate) fn new(server_pid: Option<u32>) -> io::Result<Series> {
        let now = Instant::now();
        Ok(Series {
            stage: Stage::Opening,
            second: 0,
            started: now,
            started_ms: unix_ms(),
            closes_at: now + INTERVAL,
            latency: interval_histogram()?,
            messages: 0,
            bytes: 0,
            connects: 0,
            connect_max: None,
            counts: Counts::default(),
            cpu: CpuReadings::new(server_pid),
            kept: Vec::new(),
            span: 1,
        })
    }

    /// A reply: its latency in the interval's histogram. (The one call per
    /// message: a histogram record and a count.)
    #[inline]
    pub(crate) fn reply(&mut self, micros: u64) {
        let _ = self.latency.record(micros.max(1));
        self.messages += 1;
    }

    /// Reply bytes read.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// A connect completed after `micros`.
    pub(crate) fn connected(&mut self, micros: u64) {
        self.connects += 1;
        self.connect_max = self.connect_max.max(Some(micros));
    }

    /// When the interval closes by the clock.
    pub(crate) fn closes_at(&self) -> Instant {
        self.closes_at
    }

    /// The stage under way.
    pub(crate) fn stage(&self) -> Stage {
        self.stage
    }

    /// Closes the interval at `now` (its counts added to `outcome`'s
    /// totals if its stage counts), and opens the next, of `next` stage.
    /// Returns the closed interval's point.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        next: Stage,
        outcome: &mut Outcome,
        connections: usize,
    ) -> Point {
        if self.stage.counts() {
            let _ = outcome.latency.add(&self.latency);
            outcome.messages += self.messages;
            outcome.bytes += self.bytes;
        }
        let counts = Counts::of(outcome);
        let (server_cpu_s, bench_cpu_s) = self.cpu.step();
        let empty = self.latency.is_empty();
        let point = Point {
            stage: self.stage,
            second: self.second,
            start_ms: self.started_ms,
            length_s: (now.saturating_duration_since(self.started).as_secs_f64() * 1e3).round()
                / 1e3,
            messages: self.messages,
            bytes: self.bytes,
            latency_us: (!empty).then(|| Latency::of(&self.latency)),
            latency_hdr: if empty {
                String::new()
            } else {
                encode(&self.latency)
            },
            connections: connections as u64,
            connects: self.connects,
            connect_max_us: self.connect_max,
            failed: counts.failed - self.counts.failed,
            refused: counts.refused - self.counts.refused,
            errors: counts.errors - self.counts.errors,
            mismatches: counts.mismatches - self.counts.mismatches,
            server_cpu_s,
            server_rss_kib: self
                .cpu
                .server_pid
                .and_then(|pid| procfs::resident_kib(pid).ok()),
            bench_cpu_s,
        };
        self.keep(point.clone());
        // The next interval: the same stage goes on on its grid of whole
        // seconds (unless the loop was held up past it), a new one starts
        // its own grid now.
        if next == self.stage {
            self.second += 1;
            self.closes_at += INTERVAL;
            if self.closes_at <= now {
                self.closes_at = now + INTERVAL;
            }
        } else {
            self.second = 0;
            self.closes_at = now + INTERVAL;
        }
        self.stage = next;
        self.started = now;
        self.started_ms = unix_ms();
        self.latency.reset();
        (self.messages, self.bytes, self.connects) = (0, 0, 0);
        self.connect_max = None;
        self.counts = counts;
        point
    }

    /// The last interval closes (its point is returned); the points and
    /// the CPU of the whole run go to `outcome`.
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        outcome: &mut Outcome,
        connections: usize,
    ) -> Point {
        let stage = self.stage;
        let last = self.close(now, stage, outcome, connections);
        let whole = |first: Option<CpuTime>, last: Option<CpuTime>| Some(last?.since(first?));
        outcome.bench_run_cpu = whole(self.cpu.own_first, self.cpu.own);
        outcome.server_run_cpu = whole(self.cpu.server_first, self.cpu.server);
        outcome.series = self.kept.drain(..).map(|(p, _)| p).collect();
        last
    }

    /// Keeps a closed point: folded into the last one while that covers
    /// fewer intervals than the span; past [`MAX_POINTS`], neighbours of
    /// the same stage folded pairwise and the span doubled.
    fn keep(&mut self, point: Point) {
        if let Some((last, covers)) = self.kept.last_mut() {
            if *covers < self.span && last.stage == point.stage {
                last.absorb(&point);
                *covers += 1;
                return;
            }
        }
        self.kept.push((point, 1));
        if self.kept.len() > MAX_POINTS {
            self.span *= 2;
            let mut folded: Vec<(Point, u32)> = Vec::with_capacity(self.kept.len() / 2 + 1);
            for (point, covers) in self.kept.drain(..) {
                match folded.last_mut() {
                    Some((last, n)) if *n + covers <= self.span && last.stage == point.stage => {
                        last.absorb(&point);
                        *n += covers;
                    }
                    _ => folded.push((point, covers)),
                }
            }
            self.kept = folded;
        }
    }
}

#[cfg(test)]
mod tests;
