//! Where each closed interval of the series goes as it closes: the live
//! progress line on stderr, as wrk and tcpkali users expect (`[  3.0s]
//! measuring 1000/1000 connections up, 123456 msg/s`, the stage named so
//! that warm-up seconds are not read as measured ones), and with
//! `--json-stream` one JSON object on stdout (iperf3's `--json-stream`: a
//! tool follows the run live, the final report comes last).
//!
//! A process of `bench --processes N` prints neither: it sends its figures
//! to its parent instead (one `@progress UP MESSAGES STAGE` line an interval
//! on stdout, and with `--json-stream` an `@interval` line with the point),
//! and the parent prints one line for all of them (`processes.rs`).

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::series::Point;

/// How often the line is printed (once an interval).
pub const LINE_EVERY: Duration = super::series::INTERVAL;
/// The first word of a progress line sent to the parent.
pub const PARENT_LINE: &str = "@progress";
/// The first word of a closed interval sent to the parent.
pub const PARENT_INTERVAL: &str = "@interval";

/// One line of `--json-stream`: the interval's number in the run, then the
/// point's keys (a tool tells it from the final report by its
/// `"interval"` key).
#[derive(Debug, Serialize)]
pub struct StreamLine<'a> {
    /// 0, 1, ... in the order the intervals closed.
    pub interval: u64,
    /// The interval's figures.
    #[serde(flatten)]
    pub point: &'a Point,
}

/// Prints the line (and the stream) as each interval closes.
#[derive(Debug)]
pub struct Progress {
    is_enabled: bool,
    /// Lines go to the parent process (stdout), not to a person (stderr).
    is_for_parent: bool,
    /// `--json-stream`: each point on stdout too.
    is_streaming: bool,
    started: Instant,
    intervals: u64,
}

impl Progress {
    /// A progress reporter; a disabled one prints nothing.
    pub fn new(is_enabled: bool) -> Self {
        Progress {
            is_enabled,
            is_for_parent: false,
            is_streaming: false,
            started: Instant::now(),
            intervals: 0,
        }
    }

    /// A reporter that sends machine lines to the parent process.
    pub fn for_parent() -> Self {
        Progress {
            is_for_parent: true,
            ..Progress::new(true)
        }
    }

    /// With `--json-stream`: every closed interval on stdout, as JSON.
    pub fn streaming(self, is_streaming: bool) -> Self {
        Progress {
            is_streaming,
            ..self
        }
    }

    /// An interval closed at `now`, with `up` of `total` connections open.
    pub fn interval(&mut self, now: Instant, point: &Point, up: usize, total: usize) {
        let index = self.intervals;
        self.intervals += 1;
        let stage = point.stage.name();
        if self.is_for_parent {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{PARENT_LINE} {up} {} {stage}", point.messages);
            if self.is_streaming {
                if let Ok(json) = serde_json::to_string(point) {
                    let _ = writeln!(out, "{PARENT_INTERVAL} {json}");
                }
            }
            let _ = out.flush();
            return;
        }
        if self.is_streaming {
            let line = StreamLine {
                interval: index,
                point,
            };
            if let Ok(json) = serde_json::to_string(&line) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{json}");
                let _ = out.flush();
            }
        }
        // A sliver of an interval at a change of period (the replies of the
        // last wake-up of a window) is streamed, not printed: its rate
        // over a few milliseconds would mislead a person.
        if self.is_enabled && point.length_s >= 0.1 {
            let _ = writeln!(
                std::io::stderr(),
                "[{:5.1}s] {stage:<9} {up}/{total} connections up, {:.0} msg/s",
                now.saturating_duration_since(self.started).as_secs_f64(),
                point.messages_per_sec()
            );
        }
    }
}
