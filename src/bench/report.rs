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
//! * [`interchange`]: the latency histograms as text.
//!
//! Besides the figures the report records what makes them comparable: the
//! open-file limits, the source addresses, the CPUs the generator may run
//! on, the kernel and the core count. It keeps its latency histograms, not
//! only their percentiles, and writes them into the JSON in HdrHistogram's
//! interchange encoding, so that reports of several processes or machines
//! merge exactly.

mod human;
pub mod interchange;
pub mod json;
pub mod merge;

use std::net::IpAddr;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::chaos::ChaosOutcome;
use super::chaos::kind::Kind;
use super::chaos::tally::Tally;
use super::engine::plan::{Outcome, Plan};
use super::engine::role::Role;
use super::measure::cpu_window::CpuTime;
use super::measure::kernel::KernelSide;
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
        let rate = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
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
