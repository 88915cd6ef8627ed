//! What one echoed message and one idle connection cost, in figures that do
//! not depend on the machine's noise: `cargo bench --bench cost`.
//!
//! For the reactor, the proactor, tokio's `current_thread` echo server, the
//! C `epoll_echo --short-read` and the C `uring_echo`:
//!
//! * **user-space instructions per echoed message**: the server runs under
//!   callgrind while the C load generator sends 20,000 messages of 64 bytes
//!   on 10 connections (one in flight each), minus a run of 1 message, so
//!   start-up and shutdown cancel out (the method of the C reference
//!   programs' `instructions.sh`);
//! * **syscalls per message**: `strace -f -c` over 100,000 messages on 100
//!   connections minus 10,000, divided by 90,000;
//! * **RSS per idle connection**: the server's resident memory growth (from
//!   the page tables) with 10,000 idle connections, divided by 10,000
//!   (medians of three rounds, the servers interleaved);
//! * **the kernel's share** of the same idle connections, which user space
//!   does not see: how far the kernel's slab grew and `MemAvailable` fell
//!   (each from the mean of a reading before and one after, so that a
//!   steady drift cancels), divided by 10,000, and the pages TCP buffers
//!   hold (`/proc/net/sockstat`, `TCP: mem`) before and with them open. All
//!   are machine-wide, so both ends of each loopback connection are in them
//!   (the load generator's socket as well as the server's), and whatever
//!   else the machine did meanwhile (`MemAvailable` most).
//!
//! And for the two load generators, `reactor-echo bench` and the C one,
//! against the same C server: **user-space instructions per message** of
//! the generator itself under callgrind (10 connections, 64 bytes, a 6 s run
//! minus a 2 s run, divided by the difference in messages), since a load
//! generator slower than the server under test measures itself.
//!
//! For the reactor and the proactor it also shows **where the instructions
//! go**: callgrind's count for each function (its own code and everything
//! inlined into it), over the same two runs, minus each other, per message.
//! And, for the reactor, **what the
//! disabled trace lines cost**: the same figure for a build with `trace!`
//! compiled out (`--features log/release_max_level_off`), since
//! `RUST_LOG=trace` must keep working in the release binary.
//!
//! `-- --before REV` measures the reactor at git revision `REV` too (built
//! from `git archive` under `target/cost-before/`) and puts its breakdown
//! beside today's: the before/after of a change to the hot path, from one
//! run.
//!
//! Instruction counts are deterministic (within a few instructions per
//! message: the number of wake-ups varies): they show a 2% change that
//! wall-clock throughput, moving 15% between runs here, cannot. This is the
//! bench a change to the hot path is judged by.
//!
//! Needs valgrind (with `callgrind_annotate`), strace, gcc, taskset, the C
//! sources (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`) and
//! liburing for `uring_echo`; without one it says which in one line and
//! exits 1. `-- --quick` counts fewer
//! messages and writes under `target/bench-partial/`; a complete run writes
//! `docs/benchmarks/cost.md`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Server, ServerSpec, build_anchors, build_release, build_uring_anchor, cannot_run,
    idle_cost_with_loadgen, loadgen, machine_line, median, proactor_spec, publish, require_tools,
    scratch_file, syscalls_per_message,
};
use reactor_echo::bench::report::parse_json_numbers;

/// Messages of the long callgrind run (the short one sends 1).
const MESSAGES: u64 = 20_000;
/// Idle connections for the memory figure.
const IDLE_CONNS: usize = 10_000;
/// Rounds of the idle measurement (medians are shown).
const IDLE_ROUNDS: usize = 3;
/// Functions shown by name in the breakdown; the rest are summed.
const BREAKDOWN_ROWS: usize = 14;

fn main() {
    if common::tokio_echo::serve_if_asked() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let before = args
        .iter()
        .position(|a| a == "--before")
        .and_then(|i| args.get(i + 1).cloned());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&[
        "valgrind",
        "callgrind_annotate",
        "strace",
        "gcc",
        "taskset",
        "git",
    ]) {
        cannot_run("cost", &why);
    }
    let bin = build_release(&root);
    let no_trace = build_variant(
        &root,
        &root,
        "target/cost-no-trace",
        &["--features", "log/release_max_level_off"],
    )
    .unwrap_or_else(|why| cannot_run("cost", &why));
    let before_bin = before
        .as_ref()
        .map(|rev| build_revision(&root, rev).unwrap_or_else(|why| cannot_run("cost", &why)));
    let anchors = build_anchors(&root).unwrap_or_else(|why| cannot_run("cost", &why));
    let uring = build_uring_anchor(&root).unwrap_or_else(|why| cannot_run("cost", &why));
    let c_epoll = ServerSpec::new(
        "C epoll_echo --short-read",
        &anchors.server,
        &["0", "--short-read"],
    );
    let servers = [
        ServerSpec::new(
            "reactor-echo serve",
            &bin,
            &["serve", "--tcp", "127.0.0.1:0", "--udp", "off"],
        ),
        ServerSpec {
            name: "reactor-echo proactor".to_owned(),
            ..proactor_spec(&bin)
        },
        common::tokio_echo::spec(false),
        c_epoll.clone(),
        ServerSpec::new("C uring_echo", &uring, &["0"]),
    ];
    let messages = if quick { 2_000 } else { MESSAGES };
    let idle_conns = if quick { 1_000 } else { IDLE_CONNS };

    let mut out = format!(
        "One run; server on CPU 0, load generator on CPU 1; {}.\n\n",
        machine_line()
    );
    out += &format!(
        "| server | user-space instructions per message | syscalls per message | RSS bytes per idle connection ({idle_conns} idle) \
         | kernel: slab growth per idle connection, both ends (bytes) \
         | kernel: `MemAvailable` fall per idle connection, both ends (bytes) | kernel: TCP `mem` pages, before / with them open |\n\
         |---|---:|---:|---:|---:|---:|---:|\n"
    );
    // Each server's callgrind profiles, by name, for the breakdowns below.
    let mut profiles_of = BTreeMap::new();
    let mut per_message = Vec::new();
    for server in &servers {
        let profiles = server_profiles(server, &anchors.loadgen, messages);
        let instructions = profiles.as_ref().map(|p| p.per_message());
        let syscalls = syscalls_per_message(server, &anchors.loadgen, 100);
        eprintln!(
            "{}: {instructions:?} instructions/msg, {syscalls:?} syscalls/msg",
            server.name
        );
        per_message.push((instructions, syscalls));
        profiles_of.insert(server.name.clone(), profiles);
    }
    // The idle connections, in interleaved rounds (the machine-wide
    // figures move with whatever else the machine does).
    let mut idle: Vec<BTreeMap<&str, Vec<f64>>> = vec![BTreeMap::new(); servers.len()];
    for round in 0..IDLE_ROUNDS {
        for (k, server) in servers.iter().enumerate() {
            let cost =
                idle_cost_with_loadgen(server, &anchors.loadgen, idle_conns, &["--idle", "2"]);
            let figures = [
                ("rss", cost.bytes_per_connection),
                ("slab", cost.slab_growth_per_connection(idle_conns)),
                ("available", cost.available_fall_per_connection(idle_conns)),
                ("pages before", cost.kernel[0].reading.tcp_mem_pages as f64),
                ("pages open", cost.kernel[1].reading.tcp_mem_pages as f64),
            ];
            eprintln!("round {round} {}: idle {figures:?}", server.name);
            for (name, value) in figures {
                idle[k].entry(name).or_default().push(value);
            }
        }
    }
    for (k, server) in servers.iter().enumerate() {
        let (instructions, syscalls) = per_message[k];
        let med = |name: &str| median(idle[k].get(name).cloned().unwrap_or_default());
        out += &format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} |\n",
            server.name,
            shown(instructions, 0),
            shown(syscalls, 3),
            med("rss"),
            med("slab"),
            med("available"),
            med("pages before"),
            med("pages open"),
        );
    }
    out += &format!(
        "\nInstructions: callgrind's total over {messages} messages minus a run of 1, divided by {} \
         (10 connections, 64 B, the C load generator). Syscalls: `strace -f -c`, 100,000 minus \
         10,000 messages on 100 connections, divided by 90,000 (for the io_uring servers nearly all \
         are `io_uring_enter`). The idle columns are medians of {IDLE_ROUNDS} rounds, the servers \
         interleaved, each read half a second after the {idle_conns} connections were open. The \
         kernel's columns: how far the kernel's object caches (`Slab` in `/proc/meminfo`: sockets, \
         their inodes, files and dentries, epoll items, io_uring requests) grew and how far \
         `MemAvailable` fell with them open, each from the mean of a reading before the first \
         connection and one half a second after the last closed (which cancels a steady drift of \
         the rest of the machine), divided by {idle_conns}; and the pages TCP buffers hold \
         (`/proc/net/sockstat`), before and with them open. All are the whole machine's: on \
         loopback they count both ends of every connection (the load generator's sockets, and for \
         `MemAvailable` its memory too, as well as the server's), so a server's own kernel share is \
         part of the figure, and the difference between two servers is theirs. `MemAvailable` also \
         moves with whatever else the machine does; the slab far less.\n",
        messages - 1
    );
    let mut take_profiles = |name: &str| profiles_of.remove(name).flatten();
    let breakdown_now = take_profiles(&servers[0].name);
    let proactor_breakdown = take_profiles(&servers[1].name);

    // What the disabled trace lines cost: the same server with them compiled out.
    let without_trace = ServerSpec::new(
        "reactor-echo serve, trace compiled out",
        &no_trace,
        &servers[0]
            .args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let traced = breakdown_now.as_ref().map(Pairs::per_message);
    let untraced =
        server_profiles(&without_trace, &anchors.loadgen, messages).map(|p| p.per_message());
    eprintln!("trace compiled out: {untraced:?} instructions/msg");
    out += "\n| build | user-space instructions per message |\n|---|---:|\n";
    out += &format!(
        "| release, trace lines compiled in (`RUST_LOG` unset: disabled) | {} |\n",
        shown(traced, 0)
    );
    out += &format!(
        "| release with `--features log/release_max_level_off` (trace compiled out) | {} |\n",
        shown(untraced, 0)
    );
    out += &format!(
        "\nWhat the disabled trace lines cost per message: {} instructions.\n",
        shown(traced.zip(untraced).map(|(a, b)| a - b), 0)
    );

    // Where the reactor's instructions go, per function (and before a change).
    let breakdown_before = before_bin.as_ref().and_then(|program| {
        let earlier = ServerSpec::new(
            "before",
            program,
            &servers[0]
                .args
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        server_profiles(&earlier, &anchors.loadgen, messages)
    });
    if let Some(now) = &breakdown_now {
        out += &breakdown_table(
            "the reactor",
            now,
            breakdown_before.as_ref(),
            before.as_deref(),
            messages,
        );
    }
    if let Some(now) = &proactor_breakdown {
        out += &breakdown_table("the proactor", now, None, None, messages);
    }

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
        let per = generator_instructions(generator, &c_epoll, long, short);
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

/// A callgrind profile read back: the total, and the instructions of each
/// function (its own code and what was inlined into it).
struct Profile {
    total: f64,
    by_function: BTreeMap<String, f64>,
}

/// The profiles of a server over `messages` and over 1 message.
struct Pairs {
    many: Profile,
    one: Profile,
    messages: u64,
}

impl Pairs {
    /// Instructions per message: the difference of the totals.
    fn per_message(&self) -> f64 {
        (self.many.total - self.one.total) / (self.messages - 1) as f64
    }

    /// Each function's instructions per message, the same way.
    fn function_per_message(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (name, &many) in &self.many.by_function {
            let one = self.one.by_function.get(name).copied().unwrap_or(0.0);
            out.insert(name.clone(), (many - one) / (self.messages - 1) as f64);
        }
        out
    }
}

/// `server` under callgrind over `messages` and over 1.
fn server_profiles(server: &ServerSpec, lg: &Path, messages: u64) -> Option<Pairs> {
    Some(Pairs {
        many: server_run_profile(server, lg, messages)?,
        one: server_run_profile(server, lg, 1)?,
        messages,
    })
}

/// The profile of one server process under callgrind, while the C load
/// generator completes `messages` on 10 connections.
fn server_run_profile(server: &ServerSpec, lg: &Path, messages: u64) -> Option<Profile> {
    let profile = scratch_file(&format!("callgrind-server-{messages}.out"));
    let wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", profile.display()),
    ];
    let running = Server::start_pinned(server, &wrapper);
    let args: Vec<String> = ["--conns", "10", "--size", "64", "--duration", "120"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(["--messages".to_owned(), messages.to_string()])
        .collect();
    loadgen(lg, running.port(), &args);
    running.end_within(Duration::from_secs(60));
    let read = read_profile(&profile);
    let _ = std::fs::remove_file(&profile);
    read
}

/// Reads a callgrind profile: the total, and per function from
/// `callgrind_annotate --inclusive=no` (lines `COUNT (P%)  FILE:FUNCTION
/// [OBJECT]`, summed over the files that code was inlined from).
fn read_profile(profile: &Path) -> Option<Profile> {
    let total = callgrind_total(profile)?;
    let output = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100", "--auto=no"])
        .arg(profile)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The function list follows its header line, up to the next rule.
    let listing = text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .take_while(|l| !l.starts_with("---"));
    let mut by_function = BTreeMap::new();
    for line in listing {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<f64>() else {
            continue;
        };
        let Some((_, place)) = rest.split_once("%)") else {
            continue;
        };
        let place = place.trim();
        let place = place.rsplit_once(" [").map_or(place, |(p, _)| p);
        let Some((_, function)) = place.split_once(':') else {
            continue;
        };
        let name = function.trim_start_matches("reactor_echo::").to_owned();
        *by_function.entry(name).or_insert(0.0) += count;
    }
    Some(Profile { total, by_function })
}

/// The per-function table of `server` (named so in its title): today's
/// figures, and `before`'s beside them.
fn breakdown_table(
    server: &str,
    now: &Pairs,
    before: Option<&Pairs>,
    rev: Option<&str>,
    messages: u64,
) -> String {
    let now_f = now.function_per_message();
    let before_f = before.map(Pairs::function_per_message);
    // The largest functions of either build, by their larger figure.
    let mut names: Vec<&String> = now_f
        .keys()
        .chain(before_f.iter().flat_map(|b| b.keys()))
        .collect();
    names.sort();
    names.dedup();
    let size = |name: &str| {
        let a = now_f.get(name).copied().unwrap_or(0.0);
        let b = before_f
            .as_ref()
            .and_then(|f| f.get(name))
            .copied()
            .unwrap_or(0.0);
        a.max(b)
    };
    names.sort_by(|a, b| size(b).total_cmp(&size(a)));
    let shown_names: Vec<&String> = names.iter().copied().take(BREAKDOWN_ROWS).collect();
    let mut out = format!(
        "\nWhere {server}'s instructions go: each function's own code and what was inlined into it, \
         per message (the same two callgrind runs, the short one subtracted).\n\n",
    );
    let rest = |figures: &BTreeMap<String, f64>| -> f64 {
        figures
            .iter()
            .filter(|(name, _)| !shown_names.contains(name))
            .map(|(_, v)| v)
            .sum()
    };
    match (&before_f, before) {
        (Some(bf), Some(b)) => {
            let rev = rev.unwrap_or("before");
            out += &format!("| function | before ({rev}) | now |\n|---|---:|---:|\n");
            for name in &shown_names {
                out += &format!(
                    "| `{name}` | {:.1} | {:.1} |\n",
                    bf.get(*name).copied().unwrap_or(0.0),
                    now_f.get(*name).copied().unwrap_or(0.0)
                );
            }
            out += &format!(
                "| everything else | {:.1} | {:.1} |\n",
                rest(bf),
                rest(&now_f)
            );
            out += &format!(
                "| **total** | **{:.0}** | **{:.0}** |\n",
                b.per_message(),
                now.per_message()
            );
        }
        _ => {
            out += "| function | instructions per message |\n|---|---:|\n";
            for name in &shown_names {
                out += &format!(
                    "| `{name}` | {:.1} |\n",
                    now_f.get(*name).copied().unwrap_or(0.0)
                );
            }
            out += &format!("| everything else | {:.1} |\n", rest(&now_f));
            out += &format!("| **total** | **{:.0}** |\n", now.per_message());
        }
    }
    out += &format!("\n({messages} messages minus 1 on 10 connections, 64 B.)\n");
    out
}

/// Builds the release binary of `source` into `target_dir` with extra cargo
/// arguments; returns the binary's path.
fn build_variant(
    root: &Path,
    source: &Path,
    target_dir: &str,
    extra: &[&str],
) -> Result<String, String> {
    let target = root.join(target_dir);
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(&target)
        .args(extra)
        .current_dir(source)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build in {} failed", source.display()));
    }
    Ok(target.join("release/reactor-echo").display().to_string())
}

/// Builds the project as it was at git revision `rev` (from `git archive`,
/// so the working tree is left alone) under `target/cost-before/`.
fn build_revision(root: &Path, rev: &str) -> Result<String, String> {
    let source = root.join("target/cost-before/src");
    let _ = std::fs::remove_dir_all(&source);
    std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
    let archive = Command::new("git")
        .args(["archive", "--format=tar", rev])
        .current_dir(root)
        .output()
        .map_err(|e| format!("git archive: {e}"))?;
    if !archive.status.success() {
        return Err(format!("git archive {rev} failed: no such revision?"));
    }
    let mut untar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(&source)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tar: {e}"))?;
    if let Some(mut stdin) = untar.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(&archive.stdout)
            .map_err(|e| e.to_string())?;
    }
    if !untar.wait().is_ok_and(|s| s.success()) {
        return Err("tar -x failed".to_owned());
    }
    build_variant(root, &source, "target/cost-before/target", &[])
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
    let running = Server::start_pinned(server, &[]);
    let profile = scratch_file(&format!("callgrind-generator-{seconds}.out"));
    let output = Command::new("taskset")
        .args(["-c", "1", "valgrind", "--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(&generator.program)
        .args(&generator.args)
        .args(["--addr", &format!("127.0.0.1:{}", running.port())])
        .args(["--duration", &seconds.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    running.end();
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
