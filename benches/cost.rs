//! What one echoed message and one idle connection cost, in figures that do
//! not depend on the machine's noise: `cargo bench --bench cost`.
//!
//! For the reactor, tokio's `current_thread` echo server and, when the C
//! sources are there, the C `epoll_echo --short-read`:
//!
//! * **user-space instructions per echoed message**: the server runs under
//!   callgrind while the C load generator sends 20,000 messages of 64 bytes
//!   on 10 connections (one in flight each), minus a run of 1 message, so
//!   start-up and shutdown cancel out (the method of the C reference
//!   programs' `instructions.sh`);
//! * **syscalls per message**: `strace -f -c` over 100,000 messages on 100
//!   connections minus 10,000, divided by 90,000;
//! * **RSS per idle connection**: the server's resident memory growth (from
//!   the page tables) with 10,000 idle connections, divided by 10,000.
//!
//! And for the two load generators, `reactor-echo bench` and the C one,
//! against the same C server: **user-space instructions per message** of
//! the generator itself under callgrind (10 connections, 64 bytes, a 6 s run
//! minus a 2 s run, divided by the difference in messages), since a load
//! generator slower than the server under test measures itself.
//!
//! Instruction counts are deterministic: they show a 2% change that
//! wall-clock throughput, moving 15% between runs here, cannot. This is the
//! bench a change to the hot path is judged by.
//!
//! Needs valgrind, strace, gcc, taskset and the C sources
//! (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`); without one it says
//! which in one line and exits 1. `-- --quick` counts fewer messages and
//! writes under `target/bench-partial/`; a complete run writes
//! `docs/benchmarks/cost.md`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Running, ServerSpec, build_anchors, build_release, cannot_run, idle_cost_with_loadgen, loadgen,
    machine_line, publish, require_tools, scratch_file, syscalls_per_message,
};
use reactor_echo::bench::report::parse_json_numbers;

/// Messages of the long callgrind run (the short one sends 1).
const MESSAGES: u64 = 20_000;
/// Idle connections for the memory figure.
const IDLE_CONNS: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--tokio-server") {
        let flavour = args.get(pos + 1).map_or("ct", String::as_str);
        return common::tokio_echo::serve(flavour == "mt");
    }
    let quick = args.iter().any(|a| a == "--quick");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["valgrind", "strace", "gcc", "taskset"]) {
        cannot_run("cost", &why);
    }
    let bin = build_release(&root);
    let anchors = build_anchors(&root).unwrap_or_else(|why| cannot_run("cost", &why));
    let me = std::env::current_exe()
        .expect("current exe")
        .display()
        .to_string();
    let servers = [
        ServerSpec::new(
            "reactor-echo serve",
            &bin,
            &["serve", "--tcp", "127.0.0.1:0", "--udp", "off"],
        ),
        ServerSpec::new("tokio current_thread", &me, &["--tokio-server", "ct"]),
        ServerSpec::new(
            "C epoll_echo --short-read",
            &anchors.server,
            &["0", "--short-read"],
        ),
    ];
    let messages = if quick { 2_000 } else { MESSAGES };
    let idle_conns = if quick { 1_000 } else { IDLE_CONNS };

    let mut out = format!(
        "One run; server on CPU 0, load generator on CPU 1; {}.\n\n",
        machine_line()
    );
    out += &format!(
        "| server | user-space instructions per message | syscalls per message | RSS bytes per idle connection ({idle_conns} idle) |\n|---|---:|---:|---:|\n"
    );
    for server in &servers {
        let instructions = server_instructions(server, &anchors.loadgen, messages);
        let syscalls = syscalls_per_message(server, &anchors.loadgen, 100);
        let idle = idle_cost_with_loadgen(server, &anchors.loadgen, idle_conns, &["--idle", "2"]);
        eprintln!(
            "{}: {instructions:?} instructions/msg, {syscalls:?} syscalls/msg, {:.0} B/idle conn",
            server.name, idle.bytes_per_connection
        );
        out += &format!(
            "| {} | {} | {} | {:.0} |\n",
            server.name,
            shown(instructions, 0),
            shown(syscalls, 3),
            idle.bytes_per_connection
        );
    }
    out += &format!(
        "\nInstructions: callgrind's total over {messages} messages minus a run of 1, divided by {} \
         (10 connections, 64 B, the C load generator). Syscalls: `strace -f -c`, 100,000 minus \
         10,000 messages on 100 connections, divided by 90,000.\n",
        messages - 1
    );

    out += "\n| load generator (against the C server) | user-space instructions per message |\n|---|---:|\n";
    let (long, short) = if quick { (3.0, 1.0) } else { (6.0, 2.0) };
    let ours = ServerSpec::new(
        "reactor-echo bench",
        &bin,
        &[
            "bench",
            "--json",
            "--connections",
            "10",
            "--size",
            "64",
            "--warmup",
            "0",
        ],
    );
    let theirs = ServerSpec::new(
        "C loadgen",
        &anchors.loadgen,
        &["--conns", "10", "--size", "64", "--warmup", "0"],
    );
    for generator in [&ours, &theirs] {
        let per = generator_instructions(generator, &servers[2], long, short);
        eprintln!("{}: {per:?} instructions/msg", generator.name);
        out += &format!("| {} | {} |\n", generator.name, shown(per, 0));
    }
    out += &format!(
        "\nThe generator under callgrind for {long} s and for {short} s, no warm-up; the difference in its \
         instructions divided by the difference in the messages it completed.\n"
    );
    print!("\n{out}");
    let path = publish(&root, "cost.md", &out, !quick);
    eprintln!("wrote {}", path.display());
}

fn shown(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "failed".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Instructions per message of `server`: callgrind over `messages` minus 1.
fn server_instructions(server: &ServerSpec, lg: &Path, messages: u64) -> Option<f64> {
    let many = server_run_instructions(server, lg, messages)?;
    let one = server_run_instructions(server, lg, 1)?;
    Some((many - one) / (messages - 1) as f64)
}

/// The total instructions of one server process under callgrind, while the
/// C load generator completes `messages` on 10 connections.
fn server_run_instructions(server: &ServerSpec, lg: &Path, messages: u64) -> Option<f64> {
    let profile = scratch_file(&format!("callgrind-server-{messages}.out"));
    let wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", profile.display()),
    ];
    let running = Running::start(server, &wrapper);
    let args: Vec<String> = ["--conns", "10", "--size", "64", "--duration", "120"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(["--messages".to_owned(), messages.to_string()])
        .collect();
    loadgen(lg, running.port, &args);
    running.stop_within(Duration::from_secs(60));
    let total = callgrind_total(&profile);
    let _ = std::fs::remove_file(&profile);
    total
}

/// The `summary:` line of a callgrind profile: the instructions executed.
fn callgrind_total(profile: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(profile).ok()?;
    let line = text.lines().find(|l| l.starts_with("summary:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Instructions per message of a load generator: callgrind over a `long`
/// and a `short` run against `server`.
fn generator_instructions(
    generator: &ServerSpec,
    server: &ServerSpec,
    long: f64,
    short: f64,
) -> Option<f64> {
    let (many_instr, many_msgs) = generator_run(generator, server, long)?;
    let (few_instr, few_msgs) = generator_run(generator, server, short)?;
    (many_msgs > few_msgs).then(|| (many_instr - few_instr) / (many_msgs - few_msgs))
}

/// One load generator run under callgrind: its instructions and the
/// messages it completed.
fn generator_run(generator: &ServerSpec, server: &ServerSpec, seconds: f64) -> Option<(f64, f64)> {
    let running = Running::start(server, &[]);
    let profile = scratch_file(&format!("callgrind-generator-{seconds}.out"));
    let output = Command::new("taskset")
        .args(["-c", "1", "valgrind", "--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(&generator.program)
        .args(&generator.args)
        .args(["--addr", &format!("127.0.0.1:{}", running.port)])
        .args(["--duration", &seconds.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    running.stop();
    let text = String::from_utf8_lossy(&output.stdout);
    let report: BTreeMap<String, f64> = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(parse_json_numbers)?;
    // Ours reports "messages", the C one "msgs".
    let messages = report
        .get("messages")
        .or_else(|| report.get("msgs"))
        .copied()?;
    let total = callgrind_total(&profile);
    let _ = std::fs::remove_file(&profile);
    Some((total?, messages))
}
