//! The course's ladder measured: `cargo bench --bench ladder`.
//!
//! Every step of `docs/course/` (the Cargo examples `01_blocking` ..
//! `07_io_uring`) and the project's reactor, side by side in one run, with
//! the same load generator (the C one: closed loop, 64-byte messages, every
//! reply byte checked), the server on CPU 0 and the generator on CPU 1:
//!
//! * messages/s at 10, 100 and 1,000 connections, and how many of the
//!   connections were answered at all;
//! * syscalls per message (`strace -f -c`, 100,000 minus 10,000 messages on
//!   100 connections; on one connection for step 1, which serves one at a
//!   time);
//! * the server's CPU while 1,000 connections sit idle, and its RSS per idle
//!   connection;
//! * messages/s of 100 active connections while 10,000 more sit idle: the
//!   C10K case, where a step that scans every connection per wake-up pays
//!   for the idle ones;
//! * where the step stops coping: the first connection count (10, 100,
//!   1,000, then 2,000, 5,000, 10,000, 19,000) at which a connection is left
//!   unanswered, a connect fails, a connection is lost, or p99 exceeds ten
//!   times p50 (some connections starved), with the reason, bounded by the
//!   20,000 descriptors a process may have; and messages/s at 10,000 when it
//!   got that far.
//!
//! It writes the table (with the command and the machine facts) to
//! `docs/course/ladder.md` and the plot of messages/s against connections
//! to `docs/course/ladder.svg` after a complete run; `-- --quick` (100
//! connections only, no strace, no breaking point) writes under
//! `target/bench-partial/`. Needs gcc, strace, taskset and the C sources
//! (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`); without one it
//! says which in one line and exits 1.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::support::Step;
use common::{
    Server, ServerSpec, build_anchors, build_release, cannot_run, loadgen, loadgen_command,
    machine_line, require_tools, strings, syscalls_per_message,
};
use reactor_echo::bench::measure::cpu_window::CpuTime;
use reactor_echo::bench::report::parse_json_numbers;

/// The loads of the throughput columns.
const LOADS: [usize; 3] = [10, 100, 1000];
/// Past the loads, the counts tried while a step still copes.
const BEYOND: [usize; 4] = [2000, 5000, 10_000, 19_000];
/// Connections per source address, under the point where `connect()` slows.
const PER_SOURCE: usize = 12_000;
/// Idle connections for the CPU and memory columns.
const IDLE: usize = 1000;
/// A p99 more than this many times the p50 means the step no longer copes:
/// some connections are starved while others are served. (An absolute
/// limit would not do: in a closed loop the median latency itself grows
/// with the connection count, by Little's law.)
const SPREAD_LIMIT: f64 = 10.0;
/// Idle connections beside the 100 active ones of the C10K column.
const C10K_IDLE: usize = 10_000;

/// One load's result.
struct Load {
    msgs_per_s: f64,
    answered: f64,
    /// Why the step did not cope at this load, if it did not.
    broke: Option<String>,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools: &[&str] = if quick {
        &["gcc", "taskset"]
    } else {
        &["gcc", "taskset", "strace"]
    };
    if let Err(why) = require_tools(tools) {
        cannot_run("ladder", &why);
    }
    // The steps do not raise their own descriptor limit: they inherit ours.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let bin = build_release(&root);
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--examples"])
        .current_dir(&root)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        cannot_run("ladder", "cargo build --release --examples failed");
    }
    let anchors = build_anchors(&root).unwrap_or_else(|why| cannot_run("ladder", &why));
    let lg = anchors.loadgen;
    let examples = root.join("target/release/examples");
    let servers: Vec<ServerSpec> = Step::ALL
        .iter()
        .map(|step| step.spec_in(&examples))
        .chain([ServerSpec::new(
            "reactor-echo serve",
            &bin,
            &["serve", "--tcp", "127.0.0.1:0", "--udp", "off"],
        )])
        .collect();
    let loads: &[usize] = if quick { &[100] } else { &LOADS };

    let mut rows = Vec::new();
    let mut curves = Vec::new();
    for server in &servers {
        let mut results = BTreeMap::new();
        for &conns in loads {
            let load = run_load(server, &lg, conns);
            eprintln!(
                "{:<22} {conns:>6} conns: {:>9.0} msg/s, {} answered{}",
                server.name,
                load.msgs_per_s,
                load.answered,
                load.broke
                    .as_deref()
                    .map_or(String::new(), |b| format!(", broke: {b}"))
            );
            results.insert(conns, load);
        }
        let mut broke_at = results
            .iter()
            .find_map(|(conns, load)| load.broke.clone().map(|why| (*conns, why)));
        let mut at_10k = None;
        if !quick && broke_at.is_none() {
            for &conns in &BEYOND {
                let load = run_load(server, &lg, conns);
                if conns == 10_000 {
                    at_10k = Some(load.msgs_per_s);
                }
                eprintln!(
                    "{:<22} {conns:>6} conns: {:>9.0} msg/s{}",
                    server.name,
                    load.msgs_per_s,
                    load.broke
                        .as_deref()
                        .map_or(String::new(), |b| format!(", broke: {b}"))
                );
                if let Some(why) = load.broke {
                    broke_at = Some((conns, why));
                    break;
                }
            }
        }
        let syscalls = if quick {
            None
        } else {
            let conns = if server.name == "01_blocking" { 1 } else { 100 };
            syscalls_per_message(server, &lg, conns).map(|s| (s, conns))
        };
        let idle = idle_cost(server, &lg, IDLE);
        let c10k = if quick {
            None
        } else {
            Some(active_among_idle(server, &lg))
        };
        eprintln!(
            "{:<22} 100 active among {C10K_IDLE} idle: {c10k:?} msg/s",
            server.name
        );
        eprintln!("{:<22} syscalls/msg {syscalls:?}", server.name);
        curves.push(
            loads
                .iter()
                .map(|c| (*c as f64, results[c].msgs_per_s))
                .collect::<Vec<_>>(),
        );
        rows.push(render_row(
            server,
            loads,
            &Measured {
                results,
                syscalls,
                idle,
                c10k,
                at_10k,
                broke_at,
            },
            quick,
        ));
    }

    let mut out = format!(
        "`cargo bench --bench ladder`: one run; server on CPU 0, the C load generator on CPU 1 \
         (closed loop, 64-byte messages, every reply byte checked, 1 s warm-up and 3 s measured per load); {}.\n\n",
        machine_line()
    );
    out += "| step |";
    let mut rule = String::from("|---|");
    for c in loads {
        out += &format!(" msg/s @{c} (answered) |");
        rule += "---:|";
    }
    out += &format!(
        " msg/s, 100 active + {C10K_IDLE} idle | syscalls/msg | CPU while {IDLE} idle | RSS B/idle conn | stops coping at | msg/s @10000 |\n"
    );
    rule += "---:|---:|---:|---:|---|---:|\n";
    out += &rule;
    for row in &rows {
        out += row;
    }
    out += &format!(
        "\nAnswered: connections that got at least one reply. Syscalls: `strace -f -c`, 100,000 minus 10,000 \
         messages, divided by 90,000, on 100 connections (step 1 on 1: it serves one at a time). 100 active + \
         {C10K_IDLE} idle: the same closed loop on 100 connections while another load generator holds {C10K_IDLE} more \
         open and silent. CPU while idle: the server's user + system time over 2 s with {IDLE} connections open and \
         silent. Stops coping: the first count of 10, 100, 1,000, 2,000, 5,000, 10,000, 19,000 connections at which a \
         connection is left unanswered, a connect fails, a connection is lost or p99 exceeds ten times p50.\n"
    );
    print!("\n{out}");
    let dir = if quick {
        root.join("target/bench-partial")
    } else {
        root.join("docs/course")
    };
    std::fs::create_dir_all(&dir).expect("create the output folder");
    std::fs::write(dir.join("ladder.md"), &out).expect("write the table");
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    common::plot::lines(
        &dir.join("ladder.svg"),
        "the ladder: messages/s (64-byte, 1 in flight per connection)",
        "messages/s",
        &names,
        &curves,
    );
    eprintln!("wrote {}", dir.display());
}

/// One closed-loop run of the C load generator at `conns` connections.
fn run_load(server: &ServerSpec, lg: &Path, conns: usize) -> Load {
    let running = Server::start_pinned(server, &[]);
    let mut args: Vec<String> = strings(&[
        "--conns",
        &conns.to_string(),
        "--size",
        "64",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--connect-timeout",
        "20",
    ]);
    if conns > PER_SOURCE {
        args.extend([
            "--src-addrs".to_owned(),
            conns.div_ceil(PER_SOURCE).to_string(),
        ]);
    }
    let r = loadgen(lg, running.port(), &args);
    running.end();
    let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
    let established = get("conns_established");
    let answered = established - get("conns_stalled");
    let broke = if r.is_empty() {
        Some("the load generator failed".to_owned())
    } else if get("conns_failed") > 0.0 || established < conns as f64 {
        Some(format!(
            "{} of {conns} connects failed",
            conns as f64 - established
        ))
    } else if get("errors") > 0.0 {
        Some(format!("{} connections lost", get("errors")))
    } else if answered < conns as f64 {
        Some(format!("{answered} of {conns} connections answered"))
    } else if get("lat_p99_us") > SPREAD_LIMIT * get("lat_p50_us") {
        Some(format!(
            "p99 {:.1} ms, {:.0}x the p50",
            get("lat_p99_us") / 1000.0,
            get("lat_p99_us") / get("lat_p50_us")
        ))
    } else if get("mismatches") > 0.0 {
        Some(format!("{} mismatched bytes", get("mismatches")))
    } else {
        None
    };
    Load {
        msgs_per_s: get("msgs_per_s"),
        answered,
        broke,
    }
}

/// Messages/s of 100 active connections while [`C10K_IDLE`] more sit idle
/// (a second load generator holds them, and does one round trip on each at
/// the end, which is not counted here).
fn active_among_idle(server: &ServerSpec, lg: &Path) -> f64 {
    let running = Server::start_pinned(server, &[]);
    let idle_args: Vec<String> = strings(&[
        "--conns",
        &C10K_IDLE.to_string(),
        "--size",
        "64",
        "--idle",
        "8",
        "--connect-timeout",
        "20",
    ]);
    let holder = loadgen_command(lg, running.port())
        .args(&idle_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut rate = f64::NAN;
    if let Ok(mut holder) = holder {
        if let Some(stdout) = holder.stdout.take() {
            let mut lines = BufReader::new(stdout).lines();
            // Wait until the idle connections are all open (or the holder gave up).
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.starts_with("idle-ready") {
                    let args: Vec<String> = strings(&[
                        "--conns",
                        "100",
                        "--size",
                        "64",
                        "--duration",
                        "3",
                        "--warmup",
                        "1",
                    ]);
                    rate = loadgen(lg, running.port(), &args)
                        .get("msgs_per_s")
                        .copied()
                        .unwrap_or(f64::NAN);
                    break;
                }
            }
            for _ in lines {}
        }
        let _ = holder.wait();
    }
    running.end();
    rate
}

/// What holding connections idle cost a server: its CPU share and its RSS
/// growth per connection, or why they could not all be opened.
enum Idle {
    Held { cpu_percent: f64, bytes: f64 },
    NotReached { connected: f64 },
}

/// The server's CPU share while `conns` connections sit idle, and its RSS
/// growth per connection.
fn idle_cost(server: &ServerSpec, lg: &Path, conns: usize) -> Idle {
    let running = Server::start_pinned(server, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = running.rss_bytes();
    let mut result = Idle::NotReached { connected: 0.0 };
    let child = loadgen_command(lg, running.port())
        .args(["--conns", &conns.to_string(), "--size", "64", "--idle", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("idle-ready") {
                    let pid = running.server_pid();
                    thread::sleep(Duration::from_millis(300));
                    let bytes = running.rss_bytes().saturating_sub(before) as f64 / conns as f64;
                    let start = CpuTime::of(pid).ok();
                    let window = Duration::from_secs(2);
                    thread::sleep(window);
                    let cpu = start
                        .zip(CpuTime::of(pid).ok())
                        .map(|(a, b)| {
                            let spent = b.since(a);
                            (spent.user + spent.system).as_secs_f64() / window.as_secs_f64() * 100.0
                        })
                        .unwrap_or(f64::NAN);
                    result = Idle::Held {
                        cpu_percent: cpu,
                        bytes,
                    };
                }
                if line.starts_with('{') {
                    if let Idle::NotReached { connected } = &mut result {
                        *connected = parse_json_numbers(&line)
                            .get("conns_established")
                            .copied()
                            .unwrap_or(0.0);
                    }
                }
            }
        }
        let _ = child.wait();
    }
    running.end();
    result
}

/// Everything measured of one server.
struct Measured {
    results: BTreeMap<usize, Load>,
    syscalls: Option<(f64, usize)>,
    idle: Idle,
    c10k: Option<f64>,
    at_10k: Option<f64>,
    broke_at: Option<(usize, String)>,
}

/// One table row.
fn render_row(server: &ServerSpec, loads: &[usize], m: &Measured, quick: bool) -> String {
    let mut row = format!("| `{}` |", server.name);
    for c in loads {
        let load = &m.results[c];
        row += &format!(" {:.0} ({:.0} of {c}) |", load.msgs_per_s, load.answered);
    }
    row += &match m.c10k {
        Some(rate) => format!(" {rate:.0} |"),
        None => " not measured |".to_owned(),
    };
    row += &match m.syscalls {
        Some((s, 1)) => format!(" {s:.3} (1 conn) |"),
        Some((s, _)) => format!(" {s:.3} |"),
        None if quick => " not measured |".to_owned(),
        None => " failed |".to_owned(),
    };
    row += &match &m.idle {
        Idle::Held { cpu_percent, bytes } => format!(" {cpu_percent:.1}% | {bytes:.0} |"),
        Idle::NotReached { connected } => {
            format!(" not reached: {connected:.0} of {IDLE} connected | not reached |")
        }
    };
    row += &match &m.broke_at {
        Some((conns, why)) => format!(" {conns}: {why} |"),
        None if quick => " not searched |".to_owned(),
        None => " copes at 19000 |".to_owned(),
    };
    row += &match m.at_10k {
        Some(rate) => format!(" {rate:.0} |\n"),
        None => " not reached |\n".to_owned(),
    };
    row
}
