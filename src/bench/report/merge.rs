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
//! * rates are summed: each part measured its own window of the same
//!   length, at the same time; the time until all were open is the
//!   longest part's;
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

impl Report {
    /// Combines reports of parts run at the same time into one (see the
    /// module docs for what is added and how).
    ///
    /// # Errors
    /// If there are no parts, or they ran different loads.
    pub fn merge(parts: Vec<Report>) -> Result<Report, String> {
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
        self.cpu.server = self.cpu.server.or(part.cpu.server);
        self.server_rss = self.server_rss.or(part.server_rss);
        self.cpu.bench = match (self.cpu.bench, part.cpu.bench) {
            (Some(mine), Some(theirs)) => Some(CpuSpent {
                user: mine.user + theirs.user,
                system: mine.system + theirs.system,
            }),
            (mine, theirs) => mine.or(theirs),
        };
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
    Report::merge(parts)
}
