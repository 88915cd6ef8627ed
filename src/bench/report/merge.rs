//! One report from many: the processes of `bench --processes N` on one
//! machine, or whole runs taken on several machines at the same time
//! (`reactor-echo bench merge A.json B.json ...`). Both take this path: the
//! processes' JSON lines are read back with [`Report::from_json`] and
//! combined with [`Report::merge`], so the multi-process bench tests the
//! cross-machine merge every time it runs.
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
//! * the mode, message size and pipeline must agree, or the merge is
//!   refused: adding a closed loop to an open loop means nothing.

use super::interchange;
use super::{CpuSection, Environment, HonestSection, Report, RunSection, parse_json_numbers};
use crate::bench::measure::kernel::KernelSide;
use crate::bench::measure::server_memory::OpenCost;

impl Report {
    /// Reads back a report written by [`Report::json`].
    ///
    /// # Errors
    /// A sentence saying what is missing or wrong.
    pub fn from_json(line: &str) -> Result<Report, String> {
        let numbers = parse_json_numbers(line);
        let number = |key: &str| {
            numbers
                .get(key)
                .copied()
                .ok_or_else(|| format!("it has no \"{key}\""))
        };
        let count = |key: &str| number(key).map(|v| v as u64);
        if numbers.contains_key("chaos.peers") {
            return Err("it is a --chaos run, whose hostile peers are not merged".into());
        }
        let histogram = |key: &str| {
            let text = json_string(line, key).ok_or_else(|| format!("it has no \"{key}\""))?;
            interchange::decode(&text).map_err(|e| format!("\"{key}\" holds {e}"))
        };
        let cpu = |prefix: &str| {
            Some((
                *numbers.get(&format!("{prefix}.user_s"))?,
                *numbers.get(&format!("{prefix}.system_s"))?,
            ))
        };
        let string = |key: &str| json_string(line, key).unwrap_or_else(|| "unknown".into());
        Ok(Report {
            run: RunSection {
                mode: json_string(line, "mode").ok_or("it has no \"mode\"")?,
                connections: count("connections")? as usize,
                processes: numbers.get("processes").map_or(1, |v| *v as usize),
                size: count("size")? as usize,
                pipeline: count("pipeline")? as usize,
                duration: number("duration_s")?,
            },
            honest: HonestSection {
                established: count("established")?,
                failed: count("failed")?,
                messages: count("messages")?,
                messages_per_sec: number("messages_per_sec")?,
                bytes_per_sec: number("bytes_per_sec")?,
                latency: histogram("latency_hdr")?,
                connect: histogram("connect_hdr")?,
                errors: count("errors")?,
                mismatches: count("mismatches")?,
                lost: numbers.get("lost").map(|v| *v as u64),
                idle_ok: numbers.get("idle_ok").map(|v| *v as u64),
                opened_in: numbers.get("opened_s").copied(),
            },
            cpu: CpuSection {
                server: cpu("server_cpu"),
                bench: cpu("bench_cpu"),
            },
            chaos: None,
            memory: None,
            kernel: KernelSide::from_numbers(&numbers),
            server_rss: match (
                numbers.get("server_rss_open_kib.before"),
                numbers.get("server_rss_open_kib.open"),
            ) {
                (Some(before), Some(open)) => Some(OpenCost {
                    before: *before as u64,
                    open: *open as u64,
                }),
                _ => None,
            },
            environment: Environment {
                fd_soft: count("environment.fd_soft")?,
                fd_hard: count("environment.fd_hard")?,
                sources: string("sources"),
                cpus: string("cpus"),
                kernel: string("kernel"),
                cores: count("environment.cores")? as usize,
            },
        })
    }

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
            if (&a.mode, a.size, a.pipeline) != (&b.mode, b.size, b.pipeline) {
                return Err(format!(
                    "report {} ran {} with {}-byte messages and pipeline {}, the first {} with {} \
                     and {}: they cannot be merged",
                    index + 2,
                    b.mode,
                    b.size,
                    b.pipeline,
                    a.mode,
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
            (Some((u1, s1)), Some((u2, s2))) => Some((u1 + u2, s1 + s2)),
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

/// The string value of `"key":"..."` in a report line (the report's
/// strings hold no escaped quotes but in the environment, which is read
/// the same way with its escapes left in).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = &line[start..];
    let mut end = 0;
    let bytes = rest.as_bytes();
    while end < bytes.len() {
        match bytes[end] {
            b'\\' => end += 2,
            b'"' => return Some(rest[..end].to_owned()),
            _ => end += 1,
        }
    }
    None
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
        parts.push(Report::from_json(line).map_err(|e| format!("{name} cannot be merged: {e}"))?);
    }
    Report::merge(parts)
}
