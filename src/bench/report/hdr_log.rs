//! `--hdr-log FILE`: the run's interval histograms in HdrHistogram's
//! interval log format, the field's standard for latency over time (wrk2
//! and cassandra-stress write it; HdrHistogram's own `HistogramLogProcessor`
//! and its plotter pages read it).
//!
//! The file is what the Java `HistogramLogWriter` writes, through the
//! `hdrhistogram` crate's own writer (`serialization::interval_log`): the
//! header comments (`#[Histogram log format version 1.3]`, `#[StartTime:
//! ...]`, `#[BaseTime: ...]`), the legend line, then one line per interval:
//! its start in seconds after `BaseTime`, its length, its largest value and
//! its histogram, V2-deflate-compressed and base64-encoded. Values are in
//! microseconds (HdrHistogram's tools assume nanoseconds: give
//! `HistogramLogProcessor` `-outputValueUnitRatio 1000` for milliseconds).
//!
//! The measured intervals (the window, and an idle run's wave) are
//! untagged, so that a tool that reads only untagged intervals, as
//! `HistogramLogProcessor` does by default, reads exactly the run's
//! histogram: the untagged intervals add up to the report's `latency_hdr`.
//! The others carry their stage as a tag (`Tag=warmup`, `Tag=opening`,
//! `Tag=after`). It is written as the run ends, from the report's series,
//! so a merged report (`--processes`) writes the merged intervals.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::Report;
use crate::bench::engine::plan::microseconds;

/// The legend line the Java writer puts before the intervals.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

impl Report {
    /// Writes the series to `path` as an interval log.
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn write_hdr_log(&self, path: &Path) -> io::Result<()> {
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        self.hdr_log(&mut out)?;
        out.flush()
    }

    /// The interval log, written to `out`.
    ///
    /// # Errors
    /// If `out` fails.
    pub fn hdr_log(&self, out: &mut impl Write) -> io::Result<()> {
        let series = self.series();
        let base_ms = series.first().map_or(0, |p| p.start_ms);
        let base = UNIX_EPOCH + Duration::from_millis(base_ms);
        let mut serializer = V2DeflateSerializer::new();
        let header = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with reactor-echo bench {}, run {}]",
                self.origin.version, self.origin.run_id
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(
                "[Values in microseconds; untagged intervals are the measured ones, \
                 the others are tagged with their stage]",
            )
            .with_start_time(base)
            .with_base_time(base)
            .begin_log_with(out, &mut serializer)?;
        drop(header);
        // The legend line is not a comment: written as the Java writer
        // writes it, between the header and the first interval, and the
        // intervals through a writer with no header of its own.
        writeln!(out, "{LEGEND}")?;
        let mut log = IntervalLogWriterBuilder::new().begin_log_with(out, &mut serializer)?;
        let empty = microseconds()?;
        for point in series {
            let histogram = point.histogram().unwrap_or_else(|| empty.clone());
            let start = Duration::from_millis(point.start_ms.saturating_sub(base_ms));
            let tag = (!point.stage.counts())
                .then(|| Tag::new(point.stage.name()))
                .flatten();
            log.write_histogram(
                &histogram,
                start,
                Duration::from_secs_f64(point.length_s.max(0.0)),
                tag,
            )
            .map_err(|e| io::Error::other(format!("writing an interval: {e}")))?;
        }
        Ok(())
    }
}
