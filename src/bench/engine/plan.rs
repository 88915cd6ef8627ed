//! A run's plan and its outcome: what the driver is asked to do, and what it
//! measured. The UDP engine (`udp.rs`) takes and fills the same two.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::role::Role;
use crate::bench::BenchArgs;
use crate::bench::measure::cpu_window::CpuTime;
use crate::bench::measure::failures::Failures;
use crate::bench::measure::kernel::KernelSide;
use crate::bench::measure::series::Point;
use crate::bench::measure::server_memory::OpenCost;
use crate::bench::payload::Expect;

/// Everything the driver needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server.
    pub addr: SocketAddr,
    /// How many connections (or churn slots).
    pub connections: usize,
    /// Source addresses to bind before connecting (round robin); empty: let
    /// the kernel choose.
    pub sources: Vec<IpAddr>,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection (closed loop).
    pub pipeline: usize,
    /// What the replies must be.
    pub expect: Expect,
    /// Time before measuring.
    pub warmup: Duration,
    /// Time measured (for `Idle`: time held idle).
    pub duration: Duration,
    /// What every connection does.
    pub role: Role,
    /// The server's process, whose CPU time over the window is reported.
    pub server_pid: Option<u32>,
    /// Connects in flight at once, at most (see [`connect_window`]).
    pub connect_window: usize,
    /// A connect that has not finished after this long has failed.
    pub connect_timeout: Duration,
    /// `Idle`: how long the round trips after the hold may take, all told.
    pub reply_timeout: Duration,
    /// A process of `bench --processes`: once its connections are open it
    /// waits for its parent's word before its clock starts
    /// (`processes/link.rs`).
    pub is_coordinated: bool,
    /// `--start-at`: the wall-clock moment the clock starts, once the
    /// connections are open (several load machines measuring one window).
    pub start_at: Option<SystemTime>,
}

impl Plan {
    /// The plan of one process's run: the flags, with the server's address
    /// resolved and the source addresses chosen (`bench.rs`).
    ///
    /// # Errors
    /// A sentence for a flag that is wrong (a rate that is not positive).
    pub(crate) fn from_args(
        args: &BenchArgs,
        addr: SocketAddr,
        sources: Vec<IpAddr>,
    ) -> Result<Plan, String> {
        Ok(Plan {
            addr,
            connections: args.connections as usize,
            sources,
            size: args.size as usize,
            pipeline: args.pipeline as usize,
            expect: args.expect,
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(args.duration),
            role: Role::from_flags(args.rate, args.churn, args.idle)?,
            server_pid: args.server_pid,
            connect_window: args
                .connect_window
                .map_or_else(|| connect_window(1), |n| n as usize),
            connect_timeout: Duration::from_secs_f64(args.connect_timeout),
            reply_timeout: Duration::from_secs_f64(args.reply_timeout),
            is_coordinated: args.coordinated.is_some(),
            start_at: args
                .start_at
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        })
    }
}

/// Connects in flight at once, summed over `processes` load generators.
///
/// A listener holds at most `net.ipv4.tcp_max_syn_backlog` half-open
/// connections (2,048 here); SYNs past that are dropped and sent again
/// after 1, 3, 7, ... s, so an unpaced storm of connects takes far longer
/// than a paced one. Half the backlog in flight leaves room for the accept
/// queue's own delay; each process gets its share (at least 16).
pub fn connect_window(processes: usize) -> usize {
    let backlog = crate::bench::procfs::syn_backlog().unwrap_or(1024);
    (backlog / 2 / processes.max(1)).clamp(16, 1024)
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Connections that completed their handshake (churn: cycles started that connected).
    pub established: u64,
    /// Connects that failed or timed out.
    pub failed: u64,
    /// Messages completed inside the measured window (churn: whole cycles).
    pub messages: u64,
    /// Reply bytes received inside the window.
    pub bytes: u64,
    /// Connections lost mid-run (reset, or closed by the server).
    pub errors: u64,
    /// Reply bytes that were not what the server owed.
    pub mismatches: u64,
    /// Latency of the messages in the window, in microseconds.
    pub latency: Histogram<u64>,
    /// How long each connect took, SYN to established, in microseconds.
    pub connect: Histogram<u64>,
    /// The length of the measured window.
    pub measured: Duration,
    /// `Idle`: connections whose final round trip succeeded.
    pub idle_ok: Option<u64>,
    /// The server's CPU time over the window (`--server-pid`).
    pub server_cpu: Option<CpuTime>,
    /// The load generator's own CPU time over the window.
    pub bench_cpu: Option<CpuTime>,
    /// The kernel's figures before the first connect and once all were open.
    pub kernel: Option<KernelSide>,
    /// The server's memory before the first connect and once all were open.
    pub server_rss: Option<OpenCost>,
    /// How long it took to open every connection.
    pub opened_in: Option<Duration>,
    /// Why connects failed and connections were lost, by kind.
    pub failures: Failures,
    /// The run, one interval a second (`measure/series.rs`).
    pub series: Vec<Point>,
    /// The load generator's CPU time over the whole run, opening included.
    pub bench_run_cpu: Option<CpuTime>,
    /// The server's CPU time over the whole run (`--server-pid`).
    pub server_run_cpu: Option<CpuTime>,
    /// When the measured window began, in milliseconds since the epoch.
    pub window_start_ms: Option<u64>,
    /// The run was cut short by Ctrl-C (SIGINT).
    pub interrupted: bool,
    /// Open loop: how far behind its schedule the generator fell at worst
    /// (messages sent late are timed from their scheduled moment, so the
    /// lateness is in their latency; this says the generator caused it).
    pub schedule_lag: Option<Duration>,
}

impl Outcome {
    /// Nothing measured yet.
    ///
    /// # Errors
    /// Only if the histogram's bounds were invalid (they are constants).
    pub fn new() -> io::Result<Outcome> {
        Ok(Outcome {
            established: 0,
            failed: 0,
            messages: 0,
            bytes: 0,
            errors: 0,
            mismatches: 0,
            latency: microseconds()?,
            connect: microseconds()?,
            measured: Duration::ZERO,
            idle_ok: None,
            server_cpu: None,
            bench_cpu: None,
            kernel: None,
            server_rss: None,
            opened_in: None,
            failures: Failures::default(),
            series: Vec::new(),
            bench_run_cpu: None,
            server_run_cpu: None,
            window_start_ms: None,
            interrupted: false,
            schedule_lag: None,
        })
    }
}

/// A histogram of 1 us to 10 minutes (a connect in a storm may wait that
/// long), 3 significant digits.
pub(crate) fn microseconds() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| io::Error::other(e.to_string()))
}
