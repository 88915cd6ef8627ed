//! The load generator's report: what a run measured, in sections, printed
//! for a person or as one JSON object.
//!
//! One job a file:
//!
//! * this file, the model: [`Report`] and its sections, built from an
//!   engine's `Outcome` (or read back from JSON);
//! * `report/human.rs`: the human-readable report, line by line;
//! * [`json`]: the one JSON schema that `bench --json` writes and `bench
//!   merge`, the processes' parent and the benches read, derived with
//!   `serde`;
//! * [`merge`]: one report from many (processes, or machines);
//! * [`interchange`]: the latency histograms as text;
//! * [`hdr_log`]: the series as HdrHistogram's interval log (`--hdr-log`);
//! * [`page`]: the report as one self-contained HTML page with its plots
//!   (`--report`);
//! * [`verdict`]: whether the run failed, and its one `error:` line.
//!
//! Besides the figures the report records what makes them comparable: the
//! open-file limits, the source addresses, the CPUs the generator may run
//! on, the kernel and the core count. It keeps its latency histograms, not
//! only their percentiles, and writes them into the JSON in HdrHistogram's
//! interchange encoding, so that reports of several processes or machines
//! merge exactly.

#[cfg(test)]
pub(crate) mod fixtures;
pub mod hdr_log;
mod human;
pub mod interchange;
pub mod json;
pub mod merge;
pub mod page;
pub mod verdict;

use std::net::IpAddr;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::chaos::ChaosOutcome;
use super::chaos::kind::Kind;
use super::chaos::tally::Tally;
use super::engine::plan::{Outcome, Plan};
use super::engine::role::Role;
use super::measure::cpu_window::CpuTime;
use super::measure::failures::Failures;
use super::measure::kernel::KernelSide;
use super::measure::series::Point;
use super::measure::server_memory::{OpenCost, RssSpan};
use super::procfs;
use crate::fd_limit::FdLimits;

pub use json::parse_json_numbers;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
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
    /// The percentiles of a histogram, or `None` when it is empty (a run
    /// without replies has no latency: not a latency of 0).
    pub fn of_some(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency::of(h))
    }

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

/// The kind of load a report measured: a TCP connection's role, or UDP.
/// (`--mode` is something else: what the replies must be, an `Expect`.)
/// The JSON keeps the key it always had, `"mode"`, with the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Each connection keeps `pipeline` messages in flight.
    ClosedLoop,
    /// Messages on a schedule (`--rate`).
    OpenLoop,
    /// Connect, one message, close, again (`--churn`).
    Churn,
    /// Connections held idle, then one round trip each (`--idle`).
    Idle,
    /// Datagrams, one in flight per socket (`--udp`).
    Udp,
}

impl Workload {
    /// What a TCP connection's role makes of the load.
    pub(crate) fn of(role: Role) -> Workload {
        match role {
            Role::ClosedLoop => Workload::ClosedLoop,
            Role::OpenLoop(_) => Workload::OpenLoop,
            Role::Churn => Workload::Churn,
            Role::Idle => Workload::Idle,
        }
    }

    /// Its name in the report (the JSON's `"mode"` value).
    pub fn name(self) -> &'static str {
        match self {
            Workload::ClosedLoop => "closed-loop",
            Workload::OpenLoop => "open-loop",
            Workload::Churn => "churn",
            Workload::Idle => "idle",
            Workload::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything printed at the end of a run, in sections: what was run, what
/// the verified ("honest") clients saw, and the environment that makes the
/// figures comparable. `--chaos` adds its hostile peers as a section of
/// their own, beside the honest one, with the server's memory over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    run: RunSection,
    honest: HonestSection,
    cpu: CpuSection,
    chaos: Option<ChaosSection>,
    /// Sockets and memory in the kernel, and how the connects went.
    kernel: Option<KernelSide>,
    /// The server's memory before the first connect and with all open.
    server_rss: Option<OpenCost>,
    environment: Environment,
    /// Which run this is: its id, host, start, command.
    origin: Origin,
    /// The run in time, and what went wrong in it.
    timeline: Timeline,
}

/// Which run a report is of: what `bench merge` needs to tell two runs
/// apart and to see whether their windows overlap, and what the report
/// page shows first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// The run's id: host, process and start, unique to one process's run
    /// (a merged report: the parts' ids, comma-separated).
    #[serde(default)]
    pub run_id: String,
    /// The load generator's host name.
    #[serde(default)]
    pub host: String,
    /// When the measured window began, milliseconds since the Unix epoch.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// The command line that ran it.
    #[serde(default)]
    pub command: String,
    /// `reactor-echo`'s version.
    #[serde(default)]
    pub version: String,
}

/// The run in time, and what went wrong in it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Timeline {
    /// One point an interval (`measure/series.rs`).
    series: Vec<Point>,
    /// Why connects failed and connections ended, by kind.
    failures: Failures,
    /// `--rate`: the rate asked for, messages per second.
    rate_requested: Option<f64>,
    /// Open loop: how far behind its schedule the generator fell at
    /// worst, in milliseconds (`None`: never).
    schedule_lag_ms: Option<f64>,
    /// Cut short by Ctrl-C.
    interrupted: bool,
    /// The CPU time of the whole run, opening and all.
    bench_run: Option<CpuSpent>,
    server_run: Option<CpuSpent>,
}

/// User and system CPU seconds over the window (per message is worked out
/// when printed, so that merged reports divide by the merged count).
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuSpent {
    user: f64,
    system: f64,
}

impl CpuSpent {
    /// CPU microseconds per message (0 without messages).
    fn per_message(self, messages: u64) -> f64 {
        if messages > 0 {
            (self.user + self.system) * 1e6 / messages as f64
        } else {
            0.0
        }
    }
}

impl From<CpuTime> for CpuSpent {
    fn from(cpu: CpuTime) -> CpuSpent {
        CpuSpent {
            user: cpu.user.as_secs_f64(),
            system: cpu.system.as_secs_f64(),
        }
    }
}

/// What the server (`--server-pid`) and the generator itself spent, over
/// the measured window.
#[derive(Debug, Clone, PartialEq)]
struct CpuSection {
    server: Option<CpuSpent>,
    bench: Option<CpuSpent>,
}

/// What was run.
#[derive(Debug, Clone, PartialEq)]
struct RunSection {
    workload: Workload,
    connections: usize,
    /// Load-generator processes that took part.
    processes: usize,
    size: usize,
    pipeline: usize,
    /// Seconds measured.
    duration: f64,
}

/// What the verified clients saw: every reply byte checked.
#[derive(Debug, Clone, PartialEq)]
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

/// What the hostile peers met, kind by kind, and the server's memory
/// meanwhile (`--server-pid`).
#[derive(Debug, Clone, PartialEq)]
struct ChaosSection {
    /// In [`Kind::ALL`] order, the kinds that played.
    kinds: Vec<(Kind, Tally)>,
    memory: Option<RssSpan>,
}

impl ChaosSection {
    fn peers(&self) -> u64 {
        self.kinds.iter().map(|(_, t)| t.peers).sum()
    }

    fn mismatches(&self) -> u64 {
        self.kinds.iter().map(|(_, t)| t.mismatches).sum()
    }
}

/// What makes the figures comparable between machines and runs (the
/// JSON's `"environment"`, with the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The open-file limit (soft).
    pub fd_soft: u64,
    /// The open-file limit (hard).
    pub fd_hard: u64,
    /// The source addresses, comma-separated, or `kernel-chosen`.
    #[serde(default = "unknown")]
    pub sources: String,
    /// The CPUs the load generator may run on (`taskset`).
    #[serde(default = "unknown")]
    pub cpus: String,
    /// The kernel's release.
    #[serde(default = "unknown")]
    pub kernel: String,
    /// Cores online on the machine.
    pub cores: usize,
}

/// What an environment figure that could not be read says.
fn unknown() -> String {
    "unknown".to_owned()
}

impl Report {
    /// Gathers the figures of one process's run and the environment.
    pub(crate) fn new(
        workload: Workload,
        plan: &Plan,
        outcome: &Outcome,
        lost: Option<u64>,
        limits: FdLimits,
        sources: &[IpAddr],
    ) -> Report {
        let seconds = outcome.measured.as_secs_f64();
        // An idle run's messages are its wave of round trips after the
        // hold: their rate is over the wave, from its start to its last
        // reply (every one started at once), not over the hold.
        let over = match workload {
            Workload::Idle => outcome.latency.max() as f64 / 1e6,
            _ => seconds,
        };
        let rate = |n: u64| if over > 0.0 { n as f64 / over } else { 0.0 };
        Report {
            run: RunSection {
                workload,
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
                server: outcome.server_cpu.map(CpuSpent::from),
                bench: outcome.bench_cpu.map(CpuSpent::from),
            },
            chaos: None,
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
                cpus: procfs::allowed_cpus().unwrap_or_else(unknown),
                kernel: procfs::kernel_release().unwrap_or_else(unknown),
                cores: procfs::online_cores()
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get())),
            },
            origin: Origin::here(outcome.window_start_ms),
            timeline: Timeline {
                series: outcome.series.clone(),
                failures: with_missing_replies(outcome),
                rate_requested: plan.role.scheduled_rate(),
                schedule_lag_ms: outcome.schedule_lag.map(|d| d.as_secs_f64() * 1e3),
                interrupted: outcome.interrupted,
                bench_run: outcome.bench_run_cpu.map(CpuSpent::from),
                server_run: outcome.server_run_cpu.map(CpuSpent::from),
            },
        }
    }

    /// Adds the hostile peers' section and the server's memory over the run.
    pub(crate) fn with_chaos(
        mut self,
        chaos: Option<ChaosOutcome>,
        memory: Option<RssSpan>,
    ) -> Report {
        self.chaos = chaos.map(|c| ChaosSection {
            kinds: c.kinds,
            memory,
        });
        self
    }

    /// Sets the time until every connection was open, the kernel's side and
    /// the server's memory, read by whoever saw the whole run (the parent of
    /// several processes).
    pub(crate) fn with_kernel(
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

    /// The run's points, one an interval.
    pub fn series(&self) -> &[Point] {
        &self.timeline.series
    }

    /// Which run this is.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether Ctrl-C cut the run short.
    pub fn is_interrupted(&self) -> bool {
        self.timeline.interrupted
    }

    /// Reply bytes that were wrong, with the hostile peers'.
    pub fn mismatches(&self) -> u64 {
        self.honest.mismatches + self.chaos.as_ref().map_or(0, ChaosSection::mismatches)
    }

    /// Prints the report on stdout: one JSON line with `--json`, else the
    /// human-readable report.
    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.json());
        } else {
            print!("{}", self.human());
        }
    }
}

impl Origin {
    /// This process's run, whose measured window began at `started_ms`.
    fn here(started_ms: Option<u64>) -> Origin {
        let host = procfs::host_name().unwrap_or_else(unknown);
        let started = started_ms.unwrap_or_else(super::measure::series::unix_ms);
        Origin {
            run_id: format!("{host}-{}-{started}", std::process::id()),
            host,
            started_ms,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The run's failures, with an idle run's round trips that got no reply
/// (those of connections still open after the hold).
fn with_missing_replies(outcome: &Outcome) -> Failures {
    let mut failures = outcome.failures;
    if let Some(ok) = outcome.idle_ok {
        let missing = outcome
            .established
            .saturating_sub(ok)
            .saturating_sub(outcome.errors);
        failures.add_n(super::measure::failures::Cause::NoReply, missing);
    }
    failures
}
