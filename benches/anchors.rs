//! The reactor and the proactor measured against the C reference programs
//! (see `common::anchors_dir`), side by side in one run: `cargo bench --bench
//! anchors`.
//!
//! It builds the C epoll echo server, the C io_uring echo server and the C
//! load generator with gcc under `target/anchors/` (they are instruments,
//! never committed), then for each server (the reactor, `epoll_echo
//! --short-read`, `epoll_echo`, the proactor, `uring_echo`) in interleaved
//! order (A B C D E A B C D E ...) it measures:
//!
//! * messages/s and latency at 100, 1,000 and 10,000 connections, 64-byte
//!   messages, pipeline 1 (closed loop, every reply byte verified);
//! * the server's CPU time per message in the same runs, split into user
//!   and system: the load generator reads the server's total over its
//!   measured window (`--server-pid`), and `/proc/PID/stat` read before and
//!   after the whole run splits it (where a server that loses on messages/s
//!   loses: in its own code, or in the kernel on its behalf);
//! * RSS bytes per idle connection with 10,000 idle connections open;
//! * syscalls per echoed message at 100 and at 1,000 connections: `strace
//!   -c -f` over 100,000 messages, minus the same run with 10,000 messages,
//!   divided by 90,000 (the difference removes start-up, accepts and
//!   closes). For the io_uring servers nearly all of them are
//!   `io_uring_enter`, one per loop turn for every connection's operations.
//!
//! The server is pinned to CPU 0 and the load generator to CPU 1. Medians
//! over the repeats are printed as a markdown table, with the ratio to
//! `epoll_echo --short-read`.
//!
//! * **the load generator check**: against the same C server
//!   (`epoll_echo --short-read`), `reactor-echo bench` and the C load
//!   generator alternate at each connection count (which goes first flips
//!   every repeat), both pinned to CPU 1; the ratio of their medians shows
//!   whether our generator keeps up with the C one, and each one's own CPU
//!   time per message (which both report over their measured window) shows
//!   what a message costs it, a figure the machine's noise moves far less.
//!
//! Options (after `--`): `--repeats N` (default 5), `--duration S` (default
//! 5), `--conns 100,1000,10000`, `--quick` (1 repeat, 2 s, 100 connections,
//! syscalls at 100 only: a smoke test), `--no-strace`.
//!
//! Needs gcc, taskset and strace, the C sources (`REACTOR_ECHO_ANCHORS`,
//! default `../shared/anchors`) and liburing for `uring_echo`; without one
//! it says which in one line and exits 1. A complete run (default
//! connection counts, strace on, not `--quick`) writes its table to
//! `docs/benchmarks/anchors.md`; any other run writes under
//! `target/bench-partial/`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    SYSTEM_US, Server, ServerSpec, USER_US, bench_json, build_anchors, build_release,
    build_uring_anchor, cannot_run, closed_loop, idle_cost_with_loadgen, machine_line, median,
    proactor_spec, publish, require_tools, run_with_cpu_split, syscalls_per_message,
};

/// The connection counts of a complete run.
const DEFAULT_CONNS: [usize; 3] = [100, 1000, 10_000];
/// The connection counts of a complete run's syscall counts.
const DEFAULT_SYSCALL_CONNS: [usize; 2] = [100, 1000];

struct Options {
    quick: bool,
    repeats: usize,
    duration: u64,
    conns: Vec<usize>,
    strace: bool,
    syscall_conns: Vec<usize>,
    idle_conns: usize,
}

fn options() -> Options {
    let mut o = Options {
        quick: false,
        repeats: 5,
        duration: 5,
        conns: DEFAULT_CONNS.to_vec(),
        strace: true,
        syscall_conns: DEFAULT_SYSCALL_CONNS.to_vec(),
        idle_conns: 10_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--repeats" => o.repeats = value(i).parse().expect("--repeats N"),
            "--duration" => o.duration = value(i).parse().expect("--duration S"),
            "--conns" => {
                o.conns = value(i)
                    .split(',')
                    .map(|c| c.parse().expect("--conns list"))
                    .collect()
            }
            "--no-strace" => {
                o.strace = false;
                i -= 1;
            }
            "--quick" => {
                o.quick = true;
                o.repeats = 1;
                o.duration = 2;
                o.conns = vec![100];
                o.syscall_conns = vec![100];
                o.idle_conns = 1000;
                i -= 1;
            }
            // cargo bench passes --bench; ignore anything else unknown.
            _ => i -= 1,
        }
        i += 2;
    }
    o
}

fn main() {
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&root);
    if let Err(why) = require_tools(if o.strace {
        &["gcc", "taskset", "strace"]
    } else {
        &["gcc", "taskset"]
    }) {
        cannot_run("anchors", &why);
    }
    let anchors = build_anchors(&root).unwrap_or_else(|why| cannot_run("anchors", &why));
    let uring = build_uring_anchor(&root).unwrap_or_else(|why| cannot_run("anchors", &why));
    let (c_server, lg) = (anchors.server, anchors.loadgen);
    let kinds = [
        ServerSpec::new(
            "reactor-echo serve",
            &bin,
            &["serve", "--tcp", "127.0.0.1:0", "--udp", "off"],
        ),
        ServerSpec::new("epoll_echo --short-read", &c_server, &["0", "--short-read"]),
        ServerSpec::new("epoll_echo", &c_server, &["0"]),
        ServerSpec {
            name: "reactor-echo proactor".to_owned(),
            ..proactor_spec(&bin)
        },
        ServerSpec::new("uring_echo", &uring, &["0"]),
    ];

    // results[kind][metric] = samples
    let mut results: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); kinds.len()];
    for repeat in 0..o.repeats {
        for (k, kind) in kinds.iter().enumerate() {
            for &conns in &o.conns {
                let server = Server::start_pinned(kind, &[]);
                let r = run_with_cpu_split(&lg, &server, conns, o.duration as f64);
                server.end();
                let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
                eprintln!(
                    "repeat {repeat} {:<24} {conns:>6} conns: {:>9.0} msg/s p50 {:>8.1} us p99 {:>8.1} us errors {} mismatches {} server CPU {:.2} user + {:.2} system us/msg",
                    kind.name,
                    get("msgs_per_s"),
                    get("lat_p50_us"),
                    get("lat_p99_us"),
                    get("errors"),
                    get("mismatches"),
                    get(USER_US),
                    get(SYSTEM_US)
                );
                let m = &mut results[k];
                m.entry(format!("msgs_{conns}"))
                    .or_default()
                    .push(get("msgs_per_s"));
                m.entry(format!("p50_{conns}"))
                    .or_default()
                    .push(get("lat_p50_us"));
                m.entry(format!("p99_{conns}"))
                    .or_default()
                    .push(get("lat_p99_us"));
                for key in [USER_US, SYSTEM_US] {
                    m.entry(format!("{key}_{conns}"))
                        .or_default()
                        .push(get(key));
                }
            }
            // Idle memory: RSS before and after `idle_conns` connections.
            let idle = idle_cost_with_loadgen(kind, &lg, o.idle_conns, &["--idle", "2"]);
            let per_conn = idle.bytes_per_connection;
            eprintln!(
                "repeat {repeat} {:<24} idle: {per_conn:.0} B/conn, {} of {} round trips ok",
                kind.name, idle.round_trips_ok, o.idle_conns
            );
            results[k]
                .entry("idle_bytes".into())
                .or_default()
                .push(per_conn);
        }
    }
    if o.strace {
        for (k, kind) in kinds.iter().enumerate() {
            for &conns in &o.syscall_conns {
                if let Some(per) = syscalls_per_message(kind, &lg, conns) {
                    eprintln!(
                        "{:<24} syscalls/message at {conns} conns {per:.3}",
                        kind.name
                    );
                    results[k]
                        .entry(format!("syscalls_{conns}"))
                        .or_default()
                        .push(per);
                }
            }
        }
    }

    // The load generator check: ours against the C one, on the C server.
    let mut generator: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for repeat in 0..o.repeats {
        for &conns in &o.conns {
            let mut order = ["c", "ours"];
            if repeat % 2 == 1 {
                order.reverse();
            }
            for who in order {
                let server = Server::start_pinned(&kinds[1], &[]);
                let (rate, cpu_us) = if who == "c" {
                    c_generator_run(&lg, server.port(), conns, o.duration)
                } else {
                    our_generator_run(&bin, server.port(), conns, o.duration)
                };
                server.end();
                eprintln!(
                    "repeat {repeat} load generator {who:<4} at {conns:>6} conns: {rate:>9.0} msg/s, {cpu_us:.2} us CPU per message"
                );
                generator
                    .entry(format!("{who}@{conns}"))
                    .or_default()
                    .push(rate);
                generator
                    .entry(format!("{who}-cpu@{conns}"))
                    .or_default()
                    .push(cpu_us);
            }
        }
    }

    let med = |k: usize, key: &str| median(results[k].get(key).cloned().unwrap_or_default());
    let mut out = format!(
        "Medians of {} interleaved repeats, {} s each; server on CPU 0, the C load generator on CPU 1; {}.\n\n",
        o.repeats,
        o.duration,
        machine_line()
    );
    let columns: Vec<String> = o
        .conns
        .iter()
        .flat_map(|c| [format!("msg/s @{c}"), format!("p99/p50 @{c}")])
        .chain([format!("idle B/conn ({} idle)", o.idle_conns)])
        .chain(o.syscall_conns.iter().map(|c| format!("syscalls/msg @{c}")))
        .collect();
    out += &table_head(&columns);
    for (k, kind) in kinds.iter().enumerate() {
        let mut row = format!("| {} |", kind.name);
        for c in &o.conns {
            let ratio = med(k, &format!("msgs_{c}")) / med(1, &format!("msgs_{c}"));
            row += &format!(
                " {:.0} ({ratio:.2}x) | {:.2} |",
                med(k, &format!("msgs_{c}")),
                med(k, &format!("p99_{c}")) / med(k, &format!("p50_{c}"))
            );
        }
        row += &format!(" {:.0} |", med(k, "idle_bytes"));
        for c in &o.syscall_conns {
            row += &if o.strace {
                format!(" {:.3} |", med(k, &format!("syscalls_{c}")))
            } else {
                " not measured |".to_owned()
            };
        }
        out += &format!("{row}\n");
    }
    out += "\n(The ratio after each messages/s figure is to `epoll_echo --short-read` in the same run. \
            Syscalls per message: `strace -f -c` over 100,000 messages minus 10,000, divided by 90,000, on 100 \
            and on 1,000 connections; for `reactor-echo proactor` and `uring_echo` nearly all are `io_uring_enter`.)\n";
    out += "\nThe server's CPU time per message in the same runs (medians), user + system, in microseconds: \
            its total over the load generator's measured window (`loadgen --server-pid`), split in the \
            proportion of user to system time in `/proc/PID/stat` over the whole run (which the kernel \
            counts in 10 ms ticks: about 0.01 us per message at these rates). System time is the \
            kernel working on the server's behalf: its syscalls, and the TCP work done in its context.\n\n";
    let columns: Vec<String> = o
        .conns
        .iter()
        .map(|c| format!("user + system us/msg @{c}"))
        .collect();
    out += &table_head(&columns);
    for (k, kind) in kinds.iter().enumerate() {
        let mut row = format!("| {} |", kind.name);
        for c in &o.conns {
            let (user, system) = (
                med(k, &format!("{USER_US}_{c}")),
                med(k, &format!("{SYSTEM_US}_{c}")),
            );
            row += &format!(" {user:.2} + {system:.2} = {:.2} |", user + system);
        }
        out += &format!("{row}\n");
    }
    out += "\nLoad generators against the same C server (`epoll_echo --short-read` on CPU 0, the generator on CPU 1; \
            medians of alternating runs, which one goes first flips every repeat; CPU: the generator's own user + system \
            time over its measured window, per message):\n\n";
    out += "| connections | C loadgen msg/s | reactor-echo bench msg/s | ratio | C loadgen CPU us/msg | reactor-echo bench CPU us/msg |\n|---:|---:|---:|---:|---:|---:|\n";
    let gen_median = |key: String| median(generator.get(&key).cloned().unwrap_or_default());
    for &conns in &o.conns {
        let c = gen_median(format!("c@{conns}"));
        let ours = gen_median(format!("ours@{conns}"));
        out += &format!(
            "| {conns} | {c:.0} | {ours:.0} | {:.2} | {:.2} | {:.2} |\n",
            ours / c,
            gen_median(format!("c-cpu@{conns}")),
            gen_median(format!("ours-cpu@{conns}"))
        );
    }
    print!("\n{out}");
    let complete = !o.quick
        && o.strace
        && o.conns == DEFAULT_CONNS
        && o.syscall_conns == DEFAULT_SYSCALL_CONNS;
    let path = publish(&root, "anchors.md", &out, complete);
    eprintln!("wrote {}", path.display());
}

/// A markdown table's header and rule: `server`, then `columns`, aligned
/// right.
fn table_head(columns: &[String]) -> String {
    let mut header = String::from("| server |");
    let mut rule = String::from("|---|");
    for column in columns {
        header += &format!(" {column} |");
        rule += "---:|";
    }
    format!("{header}\n{rule}\n")
}

/// The C load generator against `port`: messages per second, and its own
/// CPU microseconds per message (from `client_cpu_pct` over its window).
fn c_generator_run(lg: &Path, port: u16, conns: usize, duration: u64) -> (f64, f64) {
    let r = closed_loop(lg, port, conns, duration as f64);
    let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
    let cpu_us = get("client_cpu_pct") / 100.0 * get("duration_s") * 1e6 / get("msgs");
    (get("msgs_per_s"), cpu_us)
}

/// `reactor-echo bench` against `port`, pinned to CPU 1 with the same
/// warm-up as the C generator: messages per second, and its own CPU
/// microseconds per message (`bench_cpu.us_per_msg`).
fn our_generator_run(bin: &str, port: u16, conns: usize, duration: u64) -> (f64, f64) {
    let conns = conns.to_string();
    let report = bench_json(
        bin,
        port,
        &["--connections", &conns, "--size", "64"],
        duration as f64,
        1.0,
    );
    let get = |key: &str| report.get(key).copied().unwrap_or(f64::NAN);
    (get("messages_per_sec"), get("bench_cpu.us_per_msg"))
}
