//! `reactor-echo bench`: a verifying load generator for many connections.
//!
//! It is its own single-threaded mio reactor, the client side of the
//! pattern, so that it costs one core and can be pinned to the core the
//! server does not use. Every reply byte is checked; a run with mismatches
//! exits with status 1.
//!
//! # Reading order
//! The load generator is built like the server, and read the same way:
//! the loop first, then outwards. Before the code, read the section "The
//! load generator" of `docs/architecture.md`, its map beside the reactor's.
//!
//! 1. `bench/engine/driver.rs`: the TCP engine, a client-side reactor whose
//!    loop has the reactor's four phases (before sleep, sleep, dispatch,
//!    timers), each a method; `engine/driver/conn.rs`, one connection;
//!    `engine/role.rs`, what a connection does for each kind of load;
//!    `engine/period.rs`, where the whole run is (opening, warm-up,
//!    measuring, idle check, done); `engine/plan.rs`, what an engine is
//!    asked and what it answers; `engine/udp.rs`, the same loop over
//!    datagram sockets.
//! 2. [`payload`]: every byte a function of its offset, so that every
//!    reply byte is checked with nothing stored; `engine/stamp.rs` and
//!    `engine/in_flight.rs`, a message's start time as one `u64`.
//! 3. [`measure`]: what is read beside the replies (the per-second series,
//!    CPU times, the kernel, the server's memory, failures by cause, the
//!    progress line and `--json-stream`), carried by each engine as one
//!    `Instruments`; [`procfs`], the one module that reads `/proc`.
//! 4. [`report`]: the model, the human report, the one JSON schema (shared
//!    by `bench --json`, `bench merge` and the benches), the merge, the
//!    interval log (`--hdr-log`), the HTML page (`--report`) and the
//!    verdict (a failed run's one `error:` line).
//! 5. [`chaos`]: hostile peers on a loop and a thread of their own, each
//!    TCP peer an explicit state machine (`chaos/tcp_peer/state.rs`).
//! 6. `bench/processes.rs`: one load over N processes of this same engine,
//!    and its parent's three-line protocol (`processes/link.rs`).
//!
//! This file owns the flags and the plan of a run: the open-file limit
//! (raised to the hard limit), the number of processes (more than one when
//! the connections need more descriptors than one process has), the source
//! addresses (see [`PER_SOURCE`]), and [`run`], which checks the flags,
//! chooses one process or several, runs the engine (with the hostile peers
//! beside it: `chaos::alongside`), and ends every run the same way
//! (`deliver`: the report printed, the files written, the run judged).
//! `bench merge` combines the JSON reports of runs taken on several
//! machines.
//!
//! # What is public, and for whom
//! The flags and [`run`] (for `main.rs`), and what the tests and benches
//! read: [`report`] (the JSON schema and `parse_json_numbers`), [`procfs`],
//! [`measure`]'s readers, [`chaos::kind`], [`payload`]'s `Expect`. The
//! engines, the processes' plumbing and the peers are crate-private.

pub mod chaos;
pub(crate) mod engine;
pub mod measure;
pub mod payload;
pub(crate) mod processes;
pub mod procfs;
pub mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use clap::{Args, Subcommand};

use crate::fd_limit::{self, FdLimits};
use chaos::{ChaosOutcome, ChaosPlan};
use engine::driver::Driver;
use engine::plan::{Outcome, Plan};
use measure::instruments::Instruments;
use measure::progress::Progress;
use payload::Expect;
use report::{Report, Workload};

/// Connections one source address carries to one destination, at most.
///
/// The ephemeral range (32768-60999) has 28,232 ports, and Linux searches
/// it one parity at a time, in two different places. When `connect()`
/// picks the port (a socket not bound first: up to this many connections,
/// all from 127.0.0.1), it tries the even ports first, 14,116 of them.
/// When `bind()` to port 0 picks it (past this many connections, every
/// socket is bound to 127.0.0.2, 127.0.0.3, ... before it connects), it
/// tries the odd ports first, the kernel's way of leaving the even ones
/// to `connect()`. Either way, once one address holds about 14,000 ports,
/// every further search scans that whole half before it finds one in the
/// other, and the rate falls from thousands to a few hundred a second.
/// 12,000 per address stays clear of both.
pub const PER_SOURCE: usize = 12_000;
/// Descriptors the load generator keeps for itself.
const RESERVED_FDS: u64 = 16;

/// `reactor-echo bench` flags (or `bench merge`).
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// `bench merge`: combine reports instead of running a load.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// The server's TCP (or, with --udp, UDP) address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Connections (or UDP sockets, or churn slots).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub connections: u64,
    /// Time measured (with --idle: time held idle), in seconds or with a
    /// unit: `10`, `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub duration: f64,
    /// Time of load before measuring (seconds, or with a unit).
    #[arg(long, default_value = "1", value_parser = seconds)]
    pub warmup: f64,
    /// Start the clock (warm-up, then the measured window) at this moment,
    /// in milliseconds since the Unix epoch, once the connections are open:
    /// several load machines with synchronised clocks measure one window.
    #[arg(long, value_name = "UNIX_TIME_MS")]
    pub start_at: Option<u64>,
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub size: u64,
    /// Messages in flight per connection (closed loop; the open loop sends
    /// on its schedule, however many are in flight, so it refuses more
    /// than 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub pipeline: u64,
    /// The server's mode: the replies are checked against it.
    #[arg(long = "mode", value_name = "MODE", value_enum, default_value_t = Expect::Echo)]
    pub expect: Expect,
    /// Open loop: this many messages per second in total, latency measured
    /// from each message's scheduled time.
    #[arg(long, conflicts_with_all = ["churn", "idle", "udp"])]
    pub rate: Option<f64>,
    /// UDP: datagrams from N sockets, one in flight each; losses counted.
    #[arg(long, conflicts_with_all = ["churn", "idle"])]
    pub udp: bool,
    /// Each connection: connect, one message, check, close, repeat.
    #[arg(long, conflicts_with = "idle")]
    pub churn: bool,
    /// Hold N idle connections for the duration, then one round trip each.
    #[arg(long)]
    pub idle: bool,
    /// Spread connections over this many source addresses (127.0.0.2 ...);
    /// by default only past 12,000 connections, at most 12,000 per address.
    #[arg(long, conflicts_with = "source_addrs")]
    pub sources: Option<usize>,
    /// The source addresses to connect from, e.g. `127.0.0.2,127.0.0.3`.
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',')]
    pub source_addrs: Option<Vec<IpAddr>>,
    /// Load-generator processes, each with its share of the connections
    /// and its own descriptor limit; one merged report [default: as many as
    /// the connections need under the open-file limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub processes: Option<u64>,
    /// Seconds a connect may take before it counts as failed (a storm of a
    /// million connects may need minutes).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub connect_timeout: f64,
    /// With --idle: seconds the round trips after the hold may take, all
    /// told (a wave of a million replies takes tens of seconds).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub reply_timeout: f64,
    /// The share of connects, lost connections and idle round trips that
    /// may fail, in percent, before the run counts as failed (exit 1, one
    /// `error:` line naming the first cause).
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub tolerate: f64,
    /// Internal: a process of `--processes N` started by the parent with
    /// this PID; it reports to its parent, waits for its word to start
    /// (bench/processes/link.rs), and stops if its parent dies
    /// (`children::watch_parent`).
    #[arg(long, value_name = "PARENT", hide = true)]
    pub coordinated: Option<u32>,
    /// Internal: this process's share of the connects in flight, set by
    /// the parent of several (bench/engine/plan.rs, `connect_window`).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub connect_window: Option<u64>,
    /// One JSON object on stdout instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
    /// One JSON object a second on stdout as the run goes (an interval's
    /// figures, with an `"interval"` key), then the JSON report.
    #[arg(long)]
    pub json_stream: bool,
    /// Write the run's interval histograms to FILE in HdrHistogram's
    /// interval log format (the measured intervals untagged).
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<std::path::PathBuf>,
    /// Write the report as one self-contained HTML page with plots to FILE.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
    /// The server's process id: report its CPU time (user and system, with
    /// its children's) over the measured window, and per message.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Hostile peers beside the verified clients: slow senders, peers that
    /// never read, reset or half-close, silent ones, sliced and split
    /// messages (with --udp: empty and 65,507-byte datagrams). Reported
    /// apart from the verified clients (docs/reliability.md).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chaos: Option<u64>,
    /// The hostile kinds and their shares, e.g. `slow=2,reset=1,vanish`
    /// [default: every kind of the transport, equally].
    #[arg(long, value_name = "KIND=WEIGHT,...", requires = "chaos")]
    pub chaos_mix: Option<String>,
}

/// `bench`'s subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Combine the JSON reports (`bench --json`) of runs taken at the same
    /// time, on one machine or several, into one exact report: counts and
    /// rates summed, latency histograms added.
    Merge(MergeArgs),
}

/// `bench merge` flags.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The reports, one `bench --json` output per file.
    #[arg(required = true, value_name = "REPORT.json")]
    pub files: Vec<std::path::PathBuf>,
    /// One JSON object on stdout instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

/// Why a run could not happen, or failed its checks.
#[derive(Debug)]
pub enum BenchError {
    /// Bad flags or an address that does not resolve (exit 2).
    Usage(String),
    /// The run could not be carried out (exit 1).
    Failed(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Usage(m) | BenchError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BenchError {}

/// Runs the benchmark and prints the report. Returns whether every reply
/// byte was right.
///
/// The steps, each a function below: check the flags, decide how many
/// processes the connections need (and which source addresses they bind),
/// then either hand the run to several processes (`processes.rs`) or run
/// it here.
///
/// # Errors
/// A [`BenchError`] for bad flags, too many connections for the fd limit, or
/// a failure of the poll itself.
pub fn run(args: &BenchArgs) -> Result<bool, BenchError> {
    if let Some(BenchCommand::Merge(merge)) = &args.command {
        return run_merge(merge);
    }
    let addr = resolve(&args.addr)?;
    let limits = fd_limit::raise_to_hard_limit();
    check_times(args)?;
    check_flags(args)?;
    engine::catch_interrupt()
        .map_err(|e| BenchError::Failed(format!("cannot catch Ctrl-C: {e}")))?;
    let processes = processes_needed(args, &limits)?;
    let sources = match &args.source_addrs {
        Some(list) => list.clone(),
        None => choose_sources(
            addr,
            args.connections as usize,
            processes.max(1),
            args.sources,
        ),
    };
    if processes > 1 {
        limits.log();
        return processes::run(args, addr, processes, &sources);
    }
    run_here(args, addr, sources, limits)
}

/// The times must be numbers a run can take.
fn check_times(args: &BenchArgs) -> Result<(), BenchError> {
    let positive = |t: f64| t.is_finite() && t > 0.0;
    if positive(args.duration)
        && args.warmup.is_finite()
        && args.warmup >= 0.0
        && positive(args.connect_timeout)
        && positive(args.reply_timeout)
    {
        return Ok(());
    }
    Err(BenchError::Usage(
        "--duration, --connect-timeout and --reply-timeout must be positive and --warmup \
         not negative"
            .into(),
    ))
}

/// Flags that cannot go together, or name what is not there.
fn check_flags(args: &BenchArgs) -> Result<(), BenchError> {
    if args.rate.is_some() && args.pipeline > 1 {
        return Err(BenchError::Usage(
            "--pipeline bounds a closed loop's messages in flight; the open loop (--rate) sends              on its schedule however many are in flight: drop one of them"
                .into(),
        ));
    }
    if !(args.tolerate.is_finite() && (0.0..=100.0).contains(&args.tolerate)) {
        return Err(BenchError::Usage(
            "--tolerate is a percentage, from 0 to 100".into(),
        ));
    }
    if let Some(pid) = args.server_pid {
        if !procfs::is_alive(pid) {
            return Err(BenchError::Usage(format!(
                "--server-pid {pid}: there is no such process, so the server's CPU and memory                  could not be read"
            )));
        }
    }
    Ok(())
}

/// A time flag's value in seconds: a number of seconds, or a number with
/// a unit (`ms`, `s`, `m`, `h`), as `10`, `10s`, `1.5s`, `500ms`, `2m`.
fn seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3_600.0,
        _ => return Err(format!("'{unit}' is not a unit of time (ms, s, m or h)")),
    };
    number
        .trim()
        .parse::<f64>()
        .map(|n| n * scale)
        .map_err(|_| format!("'{text}' is not a time (10, 10s, 500ms, 2m)"))
}

/// How many load-generator processes the connections need (`--processes`,
/// or as many as the open-file limit requires), and whether each one's
/// share fits under that limit.
fn processes_needed(args: &BenchArgs, limits: &FdLimits) -> Result<usize, BenchError> {
    let connections = args.connections as usize;
    let hostile = args.chaos.unwrap_or(0) as usize;
    let room = limits.soft.saturating_sub(RESERVED_FDS) as usize;
    let processes = match args.processes {
        Some(n) => n as usize,
        None => connections.div_ceil(room.max(1)),
    };
    if processes > connections {
        return Err(BenchError::Usage(format!(
            "--processes {processes} is more than the {connections} connections to share"
        )));
    }
    if processes > 1 {
        if hostile > 0 {
            return Err(BenchError::Usage(
                "--chaos runs in one process: drop --processes, or run a second bench with \
                 --chaos beside this one"
                    .into(),
            ));
        }
        if connections.div_ceil(processes) > room {
            return Err(BenchError::Usage(format!(
                "{connections} connections over {processes} processes cannot fit: the open-file \
                 limit is {} (hard {}), so at most {room} connections in one process",
                limits.soft, limits.hard
            )));
        }
    } else if connections + hostile > room {
        return Err(BenchError::Usage(format!(
            "{} connections cannot fit: the open-file limit is {} (hard {}), so at most {room} \
             connections in one process",
            connections + hostile,
            limits.soft,
            limits.hard
        )));
    }
    Ok(processes)
}

/// The run in this process: the plan, the hostile peers beside the engine
/// if asked (`chaos::alongside`), the engine, and the report.
fn run_here(
    args: &BenchArgs,
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    limits: FdLimits,
) -> Result<bool, BenchError> {
    let plan = Plan::from_args(args, addr, sources.clone()).map_err(BenchError::Usage)?;
    let chaos_plan = ChaosPlan::from_args(args, &plan).map_err(BenchError::Usage)?;
    if let Some(parent) = args.coordinated {
        crate::children::watch_parent(parent)
            .map_err(|e| BenchError::Failed(format!("cannot stay tied to the parent: {e}")))?;
    } else {
        // A process of several: its parent has said it once.
        limits.log();
    }
    let progress = if args.coordinated.is_some() {
        Progress::for_parent()
    } else {
        Progress::new(true)
    }
    .streaming(args.json_stream);
    let failed = |e: std::io::Error| BenchError::Failed(format!("the load generator failed: {e}"));
    let ((outcome, lost), chaos, memory) =
        chaos::alongside(chaos_plan, || run_engine(&plan, args.udp, progress)).map_err(failed)?;
    let hostile_mismatches = chaos.as_ref().map_or(0, ChaosOutcome::mismatches);
    let workload = if args.udp {
        Workload::Udp
    } else {
        Workload::of(plan.role)
    };
    let report =
        Report::new(workload, &plan, &outcome, lost, limits, &sources).with_chaos(chaos, memory);
    let is_right = deliver(args, &report)?;
    Ok(is_right && outcome.mismatches == 0 && hostile_mismatches == 0)
}

/// The end of every run, here or over processes: the report printed, the
/// interval log and the page written if asked, and the run judged (a
/// process of several leaves that to its parent, which judges them all).
/// Returns whether every reply byte was right.
///
/// # Errors
/// A file that cannot be written, or a run that failed (`report/verdict.rs`).
pub(crate) fn deliver(args: &BenchArgs, report: &Report) -> Result<bool, BenchError> {
    report.print(args.json || args.json_stream);
    let unwritable = |path: &std::path::Path, e| {
        BenchError::Failed(format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &args.hdr_log {
        report
            .write_hdr_log(path)
            .map_err(|e| unwritable(path, e))?;
    }
    if let Some(path) = &args.report {
        report.write_page(path).map_err(|e| unwritable(path, e))?;
    }
    if args.coordinated.is_none() {
        report.verdict(args.tolerate).map_err(BenchError::Failed)?;
    }
    Ok(report.mismatches() == 0)
}

/// Runs the engine for the transport: what it measured, and for UDP the
/// datagrams lost.
fn run_engine(
    plan: &Plan,
    udp: bool,
    progress: Progress,
) -> std::io::Result<(Outcome, Option<u64>)> {
    if udp {
        let instruments = Instruments::new(plan.server_pid, progress)?;
        let (outcome, lost) = engine::udp::run(plan, instruments)?;
        return Ok((outcome, Some(lost)));
    }
    let instruments = Instruments::watching_the_opening(plan.server_pid, progress)?;
    Ok((Driver::new(plan.clone(), instruments)?.run()?, None))
}

/// `bench merge`: reads the reports and prints the merged one.
fn run_merge(args: &MergeArgs) -> Result<bool, BenchError> {
    let mut texts = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| BenchError::Usage(format!("cannot read {}: {e}", file.display())))?;
        texts.push((file.display().to_string(), text));
    }
    let report = report::merge::merge_texts(&texts).map_err(BenchError::Usage)?;
    report.print(args.json);
    Ok(report.mismatches() == 0)
}

fn resolve(text: &str) -> Result<SocketAddr, BenchError> {
    let has_port = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port {
        return Err(BenchError::Usage(format!(
            "invalid --addr '{text}': the port is missing (HOST:PORT, e.g. 127.0.0.1:8080)"
        )));
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| BenchError::Usage(format!("invalid --addr '{text}': it does not resolve")))
}

/// The source addresses to bind: none (the kernel picks) unless asked, or
/// unless the connections are more than one address should carry
/// ([`PER_SOURCE`]). Over several processes each gets addresses of its own
/// (`processes.rs`), enough for its share: the limit is per address, so two
/// processes must not fill one address past it between them.
fn choose_sources(
    addr: SocketAddr,
    connections: usize,
    processes: usize,
    asked: Option<usize>,
) -> Vec<IpAddr> {
    let count = match asked {
        Some(n) => n,
        None if addr.ip().is_loopback() && addr.is_ipv4() && connections > PER_SOURCE => {
            let share = connections.div_ceil(processes);
            processes * share.div_ceil(PER_SOURCE)
        }
        None => 0,
    };
    (0..count.min(250))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_only_past_one_address_worth() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(choose_sources(addr, 10_000, 1, None).is_empty());
        assert!(choose_sources(addr, 12_000, 1, None).is_empty());
        let spread = choose_sources(addr, 60_000, 1, None);
        assert_eq!(spread.len(), 5);
        assert_eq!(spread[0].to_string(), "127.0.0.2");
        assert_eq!(choose_sources(addr, 10, 1, Some(2)).len(), 2);
        // 100,000 over 6 processes: 16,667 each, two addresses each, so
        // that none carries more than 12,000.
        assert_eq!(choose_sources(addr, 100_000, 6, None).len(), 12);
        assert_eq!(choose_sources(addr, 1_000_000, 51, None).len(), 102);
    }

    #[test]
    fn times_take_units() {
        assert_eq!(seconds("10"), Ok(10.0));
        assert_eq!(seconds("10s"), Ok(10.0));
        assert_eq!(seconds("1.5s"), Ok(1.5));
        assert_eq!(seconds("500ms"), Ok(0.5));
        assert_eq!(seconds("2m"), Ok(120.0));
        assert!(seconds("10 parsecs").is_err());
        assert!(seconds("ten").is_err());
    }

    #[test]
    fn an_address_without_a_port_says_so() {
        let Err(BenchError::Usage(message)) = resolve("127.0.0.1") else {
            panic!("resolved");
        };
        assert!(message.contains("the port is missing"), "{message}");
        assert!(resolve("127.0.0.1:9").is_ok());
        assert!(resolve("[::1]:9").is_ok());
    }
}
