//! One report from many: the processes of `bench --processes N` on one
//! machine, or whole runs taken on several machines at the same time
//! (`reactor-echo bench merge A.json B.json ...`). Both take this path: the
//! processes' JSON lines are read back with [`Report::from_json`] (the one
//! schema, `json.rs`) and combined with [`Report::merge`], so the
//! multi-process bench tests the cross-machine merge every time it runs.
//!
//! What is added and what is not:
//! * counts (connections, established, failed, messages, errors,
//!   mismatches, lost datagrams, idle round trips) are summed;
//! * rates are summed, the one way the merged rate is computed, and the
//!   report says so: each part measured its own window, at the same time
//!   (the merged messages over the longest window would understate a
//!   part that started a little late); the time until all were open is
//!   the longest part's; the open loop's asked rates are summed too;
//! * the series are added interval by interval (the same stage and
//!   second: `add_series`), histograms and all;
//! * one run twice is refused (each report carries its run id), and parts
//!   whose windows do not overlap are merged with a warning: their summed
//!   rate was never reached at any one moment;
//! * the latency and connect histograms are added bucket by bucket, so the
//!   merged percentiles are exact (never averaged percentiles);
//! * the load generators' CPU time is summed; the server's (and its
//!   memory) is taken from the one part that measured it (several parts
//!   measuring one server would count it twice), and CPU is divided by the
//!   merged messages;
//! * the kernel's figures are summed (one machine's each);
//! * the workload, message size and pipeline must agree, or the merge is
//!   refused: adding a closed loop to an open loop means nothing;
//! * a `--chaos` run is refused: its hostile peers are not merged.

use super::{CpuSpent, Report};
use crate::bench::measure::series::point::add_series;

impl Report {
    /// Combines reports of parts run at the same time into one (see the
    /// module docs for what is added and how).
    ///
    /// # Errors
    /// If there are no parts, or they ran different loads.
    pub fn merge(parts: Vec<Report>) -> Result<Report, String> {
        refuse_duplicates(&parts)?;
        let mut parts = parts.into_iter();
        let mut merged = parts.next().ok_or("there are no reports to merge")?;
        for (index, part) in parts.enumerate() {
            let (a, b) = (&merged.run, &part.run);
            if (a.workload, a.size, a.pipeline) != (b.workload, b.size, b.pipeline) {
                return Err(format!(
                    "report {} ran {} with {}-byte messages and pipeline {}, the first {} with {} \
                     and {}: they cannot be merged",
                    index + 2,
                    b.workload,
                    b.size,
                    b.pipeline,
                    a.workload,
                    a.size,
                    a.pipeline
                ));
            }
            merged.add(part)?;
        }
        Ok(merged)
    }

    /// The measured window, as (start, end) in milliseconds since the
    /// epoch, if the report knows when it began.
    fn window_ms(&self) -> Option<(u64, u64)> {
        let start = self.origin.started_ms?;
        Some((start, start + (self.run.duration * 1e3) as u64))
    }

    fn add(&mut self, part: Report) -> Result<(), String> {
        let run = &mut self.run;
        run.connections += part.run.connections;
        run.processes += part.run.processes;
        run.duration = run.duration.max(part.run.duration);
        let (h, p) = (&mut self.honest, part.honest);
        h.established += p.established;
        h.failed += p.failed;
        h.messages += p.messages;
        h.messages_per_sec += p.messages_per_sec;
        h.bytes_per_sec += p.bytes_per_sec;
        h.errors += p.errors;
        h.mismatches += p.mismatches;
        h.lost = add_optional(h.lost, p.lost);
        h.idle_ok = add_optional(h.idle_ok, p.idle_ok);
        h.opened_in = match (h.opened_in, p.opened_in) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let added = |e| format!("the histograms do not add: {e:?}");
        h.latency.add(&p.latency).map_err(added)?;
        h.connect.add(&p.connect).map_err(added)?;
        let (t, q) = (&mut self.timeline, part.timeline);
        add_series(&mut t.series, &q.series);
        t.failures.add(&q.failures);
        t.rate_requested = sum_optional(t.rate_requested, q.rate_requested);
        t.schedule_lag_ms = match (t.schedule_lag_ms, q.schedule_lag_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        t.interrupted |= q.interrupted;
        t.bench_run = add_spent(t.bench_run, q.bench_run);
        t.server_run = t.server_run.or(q.server_run);
        let o = &mut self.origin;
        o.run_id = format!("{},{}", o.run_id, part.origin.run_id);
        o.started_ms = match (o.started_ms, part.origin.started_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if o.host != part.origin.host && !o.host.split(',').any(|h| h == part.origin.host) {
            o.host = format!("{},{}", o.host, part.origin.host);
        }
        self.cpu.server = self.cpu.server.or(part.cpu.server);
        self.server_rss = self.server_rss.or(part.server_rss);
        self.cpu.bench = add_spent(self.cpu.bench, part.cpu.bench);
        self.kernel = match (self.kernel, part.kernel) {
            (Some(mut mine), Some(theirs)) => {
                mine.add(&theirs);
                Some(mine)
            }
            (mine, theirs) => mine.or(theirs),
        };
        let env = &mut self.environment;
        for source in part.environment.sources.split(',') {
            if !env.sources.split(',').any(|s| s == source) {
                env.sources.push(',');
                env.sources.push_str(source);
            }
        }
        Ok(())
    }
}

fn add_spent(a: Option<CpuSpent>, b: Option<CpuSpent>) -> Option<CpuSpent> {
    match (a, b) {
        (Some(mine), Some(theirs)) => Some(CpuSpent {
            user: mine.user + theirs.user,
            system: mine.system + theirs.system,
        }),
        (mine, theirs) => mine.or(theirs),
    }
}

fn sum_optional(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// One run given twice would count its messages twice.
fn refuse_duplicates(parts: &[Report]) -> Result<(), String> {
    let mut seen = std::collections::BTreeMap::new();
    for (index, part) in parts.iter().enumerate() {
        for id in part.origin.run_id.split(',').filter(|id| !id.is_empty()) {
            if let Some(first) = seen.insert(id.to_owned(), index) {
                return Err(format!(
                    "reports {} and {} are the same run ({id}): merging it twice would count its \
                     messages twice",
                    first + 1,
                    index + 1
                ));
            }
        }
    }
    Ok(())
}

/// Warnings about parts whose measured windows do not overlap: their
/// merged rate is one no moment saw.
pub fn overlap_warnings(parts: &[Report]) -> Vec<String> {
    let windows: Vec<(usize, (u64, u64))> = parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.window_ms()?)))
        .collect();
    let mut warnings = Vec::new();
    for (k, &(i, (a_start, a_end))) in windows.iter().enumerate() {
        for &(j, (b_start, b_end)) in &windows[k + 1..] {
            if a_end <= b_start || b_end <= a_start {
                let gap = a_start.max(b_start) - a_end.min(b_end);
                warnings.push(format!(
                    "reports {} and {} measured windows that do not overlap ({:.1} s apart): \
                     their summed rate was never reached at one moment",
                    i + 1,
                    j + 1,
                    gap as f64 / 1e3
                ));
            }
        }
    }
    warnings
}

fn add_optional(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// Reads every report of `texts` (one JSON object each, as `bench --json`
/// prints it; other lines are skipped) and merges them.
///
/// # Errors
/// Which text could not be read, and why.
pub fn merge_texts(texts: &[(String, String)]) -> Result<Report, String> {
    let mut parts = Vec::new();
    for (name, text) in texts {
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("{name} holds no JSON report (from `bench --json`)"))?;
        let part = Report::from_json(line).map_err(|e| format!("{name} cannot be merged: {e}"))?;
        if part.chaos.is_some() {
            return Err(format!(
                "{name} cannot be merged: it is a --chaos run, whose hostile peers are not merged"
            ));
        }
        parts.push(part);
    }
    // Warned only once the parts are known to merge: a refusal is one line.
    let warnings = overlap_warnings(&parts);
    let merged = Report::merge(parts)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(merged)
}

#[cfg(test)]
mod tests;
