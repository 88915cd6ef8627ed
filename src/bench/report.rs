//! The load generator's report: human-readable, or one JSON object.
//!
//! Besides the figures it records what makes them comparable: the open-file
//! limits, the source addresses, the CPUs the generator may run on, the
//! kernel and the core count. The report keeps its latency histograms, not
//! only their percentiles, and writes them into the JSON in HdrHistogram's
//! interchange encoding (`interchange.rs`), so that reports of several
//! processes or machines merge exactly (`report/merge.rs`).

pub mod interchange;
pub mod merge;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use hdrhistogram::Histogram;

use super::BenchArgs;
use super::chaos::ChaosOutcome;
use super::engine::plan::{Outcome, Plan};
use super::measure::cpu_window::CpuTime;
use super::measure::kernel::KernelSide;
use super::measure::server_memory::{OpenCost, RssSpan};
use super::procfs;
use crate::fd_limit::FdLimits;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of a histogram (zeros when it is empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Everything printed at the end of a run, in sections: what was run, what
/// the verified ("honest") clients saw, and the environment that makes the
/// figures comparable. `--chaos` adds its hostile peers as a section of
/// their own, beside the honest one, and the server's memory over the run.
#[derive(Debug, Clone)]
pub struct Report {
    run: RunSection,
    honest: HonestSection,
    cpu: CpuSection,
    chaos: Option<ChaosOutcome>,
    memory: Option<RssSpan>,
    /// Sockets and memory in the kernel, and how the connects went.
    kernel: Option<KernelSide>,
    /// The server's memory before the first connect and with all open.
    server_rss: Option<OpenCost>,
    environment: Environment,
}

/// User and system CPU seconds over the window (per message is worked out
/// when printed, so that merged reports divide by the merged count).
type CpuSpent = (f64, f64);

/// What the server (`--server-pid`) and the generator itself spent, over
/// the measured window.
#[derive(Debug, Clone)]
struct CpuSection {
    server: Option<CpuSpent>,
    bench: Option<CpuSpent>,
}

/// What was run.
#[derive(Debug, Clone)]
struct RunSection {
    mode: String,
    connections: usize,
    /// Load-generator processes that took part.
    processes: usize,
    size: usize,
    pipeline: usize,
    duration: f64,
}

/// What the verified clients saw: every reply byte checked.
#[derive(Debug, Clone)]
struct HonestSection {
    established: u64,
    failed: u64,
    messages: u64,
    messages_per_sec: f64,
    bytes_per_sec: f64,
    /// Message latency, microseconds.
    latency: Histogram<u64>,
    /// Connect (handshake) time, microseconds.
    connect: Histogram<u64>,
    errors: u64,
    mismatches: u64,
    lost: Option<u64>,
    idle_ok: Option<u64>,
    /// Seconds until every connection was open (not for churn or UDP).
    opened_in: Option<f64>,
}

/// What makes the figures comparable between machines and runs.
#[derive(Debug, Clone)]
struct Environment {
    fd_soft: u64,
    fd_hard: u64,
    sources: String,
    cpus: String,
    kernel: String,
    cores: usize,
}

impl Report {
    /// Gathers the figures and the environment.
    pub fn new(
        args: &BenchArgs,
        plan: &Plan,
        outcome: &Outcome,
        lost: Option<u64>,
        limits: FdLimits,
        sources: &[IpAddr],
    ) -> Report {
        let seconds = outcome.measured.as_secs_f64();
        let rate = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let mode = if args.udp { "udp" } else { plan.role.name() };
        Report {
            run: RunSection {
                mode: mode.to_owned(),
                connections: plan.connections,
                processes: 1,
                size: plan.size,
                pipeline: plan.pipeline,
                duration: seconds,
            },
            honest: HonestSection {
                established: outcome.established,
                failed: outcome.failed,
                messages: outcome.messages,
                messages_per_sec: rate(outcome.messages),
                bytes_per_sec: rate(outcome.bytes),
                latency: outcome.latency.clone(),
                connect: outcome.connect.clone(),
                errors: outcome.errors,
                mismatches: outcome.mismatches,
                lost,
                idle_ok: outcome.idle_ok,
                opened_in: outcome.opened_in.map(|t| t.as_secs_f64()),
            },
            cpu: CpuSection {
                server: outcome.server_cpu.map(spent),
                bench: outcome.bench_cpu.map(spent),
            },
            chaos: None,
            memory: None,
            kernel: outcome.kernel,
            server_rss: outcome.server_rss,
            environment: Environment {
                fd_soft: limits.soft,
                fd_hard: limits.hard,
                sources: if sources.is_empty() {
                    "kernel-chosen".to_owned()
                } else {
                    sources
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                },
                cpus: procfs::allowed_cpus().unwrap_or_else(|| "unknown".to_owned()),
                kernel: procfs::kernel_release().unwrap_or_else(|| "unknown".to_owned()),
                cores: procfs::online_cores()
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get())),
            },
        }
    }

    /// Adds the hostile peers' section and the server's memory over the run.
    pub fn with_chaos(mut self, chaos: Option<ChaosOutcome>, memory: Option<RssSpan>) -> Report {
        self.chaos = chaos;
        self.memory = memory;
        self
    }

    /// Sets the time until every connection was open, the kernel's side and
    /// the server's memory, read by whoever saw the whole run (the parent of
    /// several processes).
    pub fn with_kernel(
        mut self,
        opened_in: Option<f64>,
        kernel: Option<KernelSide>,
        server: Option<OpenCost>,
    ) -> Report {
        self.honest.opened_in = opened_in.or(self.honest.opened_in);
        self.kernel = kernel;
        if server.is_some() {
            self.server_rss = server;
        }
        self
    }

    /// Messages answered in the measured window.
    pub fn messages(&self) -> u64 {
        self.honest.messages
    }

    /// Reply bytes that were wrong, with the hostile peers'.
    pub fn mismatches(&self) -> u64 {
        self.honest.mismatches + self.chaos.as_ref().map_or(0, ChaosOutcome::mismatches)
    }

    /// The human-readable report.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mode          {} ({} bytes, pipeline {})",
            self.run.mode, self.run.size, self.run.pipeline
        );
        if self.run.processes > 1 {
            let _ = writeln!(
                s,
                "processes     {} load generators, one merged report (histograms added)",
                self.run.processes
            );
        }
        let opened = self
            .honest
            .opened_in
            .map_or_else(String::new, |t| format!(", all open after {t:.1} s"));
        let _ = writeln!(
            s,
            "connections   {} requested, {} established, {} failed{opened}",
            self.run.connections, self.honest.established, self.honest.failed
        );
        let _ = writeln!(
            s,
            "messages      {} in {:.2} s: {:.0} msg/s, {:.0} bytes/s",
            self.honest.messages,
            self.run.duration,
            self.honest.messages_per_sec,
            self.honest.bytes_per_sec
        );
        let l = Latency::of(&self.honest.latency);
        let _ = writeln!(
            s,
            "latency (us)  p50 {} p90 {} p99 {} p99.9 {} max {}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        if !self.honest.connect.is_empty() {
            let c = Latency::of(&self.honest.connect);
            let _ = writeln!(
                s,
                "connect (us)  p50 {} p90 {} p99 {} p99.9 {} max {}",
                c.p50, c.p90, c.p99, c.p999, c.max
            );
        }
        let _ = writeln!(
            s,
            "errors        {} connections lost, {} mismatched bytes",
            self.honest.errors, self.honest.mismatches
        );
        if let Some(lost) = self.honest.lost {
            let _ = writeln!(
                s,
                "udp           {lost} datagrams lost (no reply within 1 s)"
            );
        }
        if let Some(ok) = self.honest.idle_ok {
            let _ = writeln!(
                s,
                "idle          {ok} of {} round trips after the idle period succeeded, \
                 the last back {:.2} s after the wave began",
                self.honest.established,
                self.honest.latency.max() as f64 / 1e6
            );
        }
        for (label, cpu) in [
            ("server cpu", self.cpu.server),
            ("bench cpu", self.cpu.bench),
        ] {
            if let Some((user, system)) = cpu {
                let per_message = per_message(user + system, self.honest.messages);
                let _ = writeln!(
                    s,
                    "{label:<14}{user:.2} s user + {system:.2} s system in the window: {per_message:.2} us per message"
                );
            }
        }
        if let Some(chaos) = &self.chaos {
            let peers: u64 = chaos.kinds.iter().map(|(_, t)| t.peers).sum();
            let _ = writeln!(
                s,
                "chaos         {peers} hostile peers beside the verified clients, {} wrong reply bytes:",
                chaos.mismatches()
            );
            for (kind, tally) in &chaos.kinds {
                let _ = writeln!(s, "{}", tally.human(*kind));
            }
        }
        if let Some(m) = self.memory {
            let mib = |kib: u64| kib as f64 / 1024.0;
            let _ = writeln!(
                s,
                "server rss    {:.1} MiB before, {:.1} MiB at the peak, {:.1} MiB {:.0} s after the peers left",
                mib(m.before),
                mib(m.peak),
                mib(m.after),
                super::measure::server_memory::SETTLE.as_secs_f64()
            );
        }
        if let Some(rss) = self.server_rss {
            let _ = writeln!(
                s,
                "server memory {:.1} MiB before the first connect, {:.1} MiB with all open: {:.0} B per connection",
                rss.before as f64 / 1024.0,
                rss.open as f64 / 1024.0,
                rss.bytes_per_connection(self.honest.established)
            );
        }
        if let Some(kernel) = &self.kernel {
            let _ = writeln!(s, "{}", kernel.human(self.honest.established));
        }
        let _ = writeln!(
            s,
            "environment   fd limit {} (hard {}), sources {}, cpus {}, kernel {}, {} cores",
            self.environment.fd_soft,
            self.environment.fd_hard,
            summarize(&self.environment.sources),
            self.environment.cpus,
            self.environment.kernel,
            self.environment.cores
        );
        s
    }

    /// The report as one JSON object on one line.
    pub fn json(&self) -> String {
        let l = Latency::of(&self.honest.latency);
        let c = Latency::of(&self.honest.connect);
        let encoded = |h: &Histogram<u64>| interchange::encode(h).unwrap_or_default();
        let mut kernel = self
            .kernel
            .map_or_else(String::new, |k| format!("{},", k.json_members()));
        if let Some(rss) = self.server_rss {
            let _ = write!(
                kernel,
                "\"server_rss_open_kib\":{{\"before\":{},\"open\":{}}},",
                rss.before, rss.open
            );
        }
        let optional = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
        format!(
            "{{\"mode\":\"{}\",\"connections\":{},\"processes\":{},\"established\":{},\"failed\":{},\"messages\":{},\
             \"messages_per_sec\":{:.1},\"bytes_per_sec\":{:.1},\
             \"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}},\
             \"connect_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}},\
             \"errors\":{},\"mismatches\":{},\"lost\":{},\"idle_ok\":{},\"opened_s\":{},\"size\":{},\"pipeline\":{},\"duration_s\":{:.3},\
             \"server_cpu\":{},\"bench_cpu\":{},{}{}\
             \"latency_hdr\":\"{}\",\"connect_hdr\":\"{}\",\
             \"environment\":{{\"fd_soft\":{},\"fd_hard\":{},\"sources\":\"{}\",\"cpus\":\"{}\",\"kernel\":\"{}\",\"cores\":{}}}}}",
            self.run.mode,
            self.run.connections,
            self.run.processes,
            self.honest.established,
            self.honest.failed,
            self.honest.messages,
            self.honest.messages_per_sec,
            self.honest.bytes_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            c.p50,
            c.p99,
            c.max,
            self.honest.errors,
            self.honest.mismatches,
            optional(self.honest.lost),
            optional(self.honest.idle_ok),
            self.honest
                .opened_in
                .map_or_else(|| "null".to_owned(), |t| format!("{t:.3}")),
            self.run.size,
            self.run.pipeline,
            self.run.duration,
            self.cpu_json(self.cpu.server),
            self.cpu_json(self.cpu.bench),
            self.chaos_json(),
            kernel,
            encoded(&self.honest.latency),
            encoded(&self.honest.connect),
            self.environment.fd_soft,
            self.environment.fd_hard,
            json_escape(&self.environment.sources),
            json_escape(&self.environment.cpus),
            json_escape(&self.environment.kernel),
            self.environment.cores
        )
    }
}

impl Report {
    /// The chaos section's keys, each followed by a comma (nothing without
    /// `--chaos`): totals, one object per kind (one level deep, so that
    /// [`parse_json_numbers`] reads it), and the server's memory.
    fn chaos_json(&self) -> String {
        let Some(chaos) = &self.chaos else {
            return String::new();
        };
        let peers: u64 = chaos.kinds.iter().map(|(_, t)| t.peers).sum();
        let mut out = format!(
            "\"chaos\":{{\"peers\":{peers},\"mismatches\":{}}},",
            chaos.mismatches()
        );
        for (kind, tally) in &chaos.kinds {
            let _ = write!(out, "\"{}\":{},", kind.json_key(), tally.json());
        }
        let memory = self.memory.map_or_else(
            || "null".to_owned(),
            |m| {
                format!(
                    "{{\"before\":{},\"peak\":{},\"after\":{}}}",
                    m.before, m.peak, m.after
                )
            },
        );
        let _ = write!(out, "\"server_rss_kib\":{memory},");
        out
    }
}

/// CPU time spent, as seconds.
fn spent(cpu: CpuTime) -> CpuSpent {
    (cpu.user.as_secs_f64(), cpu.system.as_secs_f64())
}

/// CPU microseconds per message.
fn per_message(seconds: f64, messages: u64) -> f64 {
    if messages > 0 {
        seconds * 1e6 / messages as f64
    } else {
        0.0
    }
}

impl Report {
    /// A [`CpuSpent`] as a JSON object, or `null`.
    fn cpu_json(&self, cpu: Option<CpuSpent>) -> String {
        cpu.map_or_else(
            || "null".to_owned(),
            |(user, system)| {
                let per_message = per_message(user + system, self.honest.messages);
                format!(
                    "{{\"user_s\":{user:.3},\"system_s\":{system:.3},\"us_per_msg\":{per_message:.3}}}"
                )
            },
        )
    }
}

/// Reads back the numbers of a [`Report::json`] line, flattening the nested
/// objects into dotted keys (`latency_us.p99`); strings and nulls are left
/// out. Scripts, the tests and the comparison bench read reports with it.
pub fn parse_json_numbers(line: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut prefix = String::new();
    for part in line.split(',') {
        let part = part.trim_start_matches('{');
        let Some((key, value)) = part.split_once(':') else {
            continue;
        };
        let key = key.trim_matches('"');
        // `"latency_us":{"p50":1` opens a nested object.
        let (key, value) = match value.split_once(':') {
            Some((inner, v)) => {
                prefix = format!("{key}.");
                (inner.trim_matches(|c| c == '{' || c == '"'), v)
            }
            None => (key, value),
        };
        if let Ok(v) = value.trim_end_matches('}').parse() {
            out.insert(format!("{prefix}{key}"), v);
        }
        if value.ends_with('}') {
            prefix.clear();
        }
    }
    out
}

/// A long list of source addresses as its first and last and a count (a
/// million connections take a hundred addresses).
fn summarize(sources: &str) -> String {
    let list: Vec<&str> = sources.split(',').collect();
    match list.as_slice() {
        [first, .., last] if list.len() > 4 => {
            format!("{first} ... {last} ({} addresses)", list.len())
        }
        _ => sources.to_owned(),
    }
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_nested_numbers() {
        let line = r#"{"mode":"idle","messages":12,"latency_us":{"p50":3,"max":9},"lost":null,"errors":0,"environment":{"fd_soft":20000,"kernel":"6.1"}}"#;
        let r = parse_json_numbers(line);
        assert_eq!(r["messages"], 12.0);
        assert_eq!(r["latency_us.p50"], 3.0);
        assert_eq!(r["latency_us.max"], 9.0);
        assert_eq!(r["errors"], 0.0);
        assert_eq!(r["environment.fd_soft"], 20000.0);
        assert!(!r.contains_key("lost") && !r.contains_key("mode"));
    }

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
