//! End-to-end comparison of servers, side by side in one run:
//! `cargo bench --bench compare` (`-- --quick` for a few-second smoke test).
//!
//! Each server runs as its own process pinned to CPU 0 and is driven by
//! `reactor-echo bench --json` pinned to CPU 1. The servers are interleaved
//! (A B C A B C ...) for `--repeats` rounds (default 3) and medians reported:
//!
//! * `serve`: the reactor;
//! * `proactor`: the io_uring server;
//! * `blocking --model threads`: a thread per connection;
//! * `tokio current_thread` and `tokio multi_thread`: the echo server from
//!   tokio's documentation (task per connection, 4 KiB buffer), which this
//!   same binary runs when started with `--tokio-server ct|mt`;
//! * any `--server NAME=COMMAND` (a command that prints the `listening
//!   tcp=...` line): this is how a C reference program is
//!   measured beside them without entering the repository. `--anchors` adds
//!   the C `epoll_echo --short-read` and the C `uring_echo`, built with gcc
//!   under `target/`.
//!
//! Workloads: 64-byte messages on 1, 100, 1,000 and 10,000 connections; one
//! connection streaming 4 KiB messages (4 in flight); RSS per idle connection
//! with 10,000 idle connections; churn (connections per second).
//!
//! Other options (after `--`): `--repeats N`, `--duration S`, `--conns
//! 100,1000`, `--throughput-only` (skip streaming, churn and idle).
//!
//! Output: a markdown table and three SVG plots (plotters). Only a complete
//! run (every workload at the default connection counts, not `--quick`)
//! writes them into `docs/benchmarks/`, the published figures; `--quick`
//! writes to `target/compare-quick/` and any other partial run to
//! `target/compare-partial/`. A server that fails a workload (threads,
//! memory, connections never answered) gets its failure listed under the
//! table, never a hidden row. Needs `taskset`; `--anchors` also needs gcc,
//! the C sources (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`) and
//! liburing, and says so in one line, exiting 1, when one is missing.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Server, ServerSpec, bench_json, build_anchors, build_release, build_uring_anchor, cannot_run,
    machine_line, median, proactor_spec, reactor_spec, require_tools, threads_spec,
};

/// One measurement: the bench JSON's numbers, flattened.
type Sample = BTreeMap<String, f64>;

struct Options {
    repeats: usize,
    duration: f64,
    conns: Vec<usize>,
    idle_conns: usize,
    quick: bool,
    extra: Vec<(String, String)>,
    anchors: bool,
    throughput_only: bool,
}

/// The connection counts of a complete run.
const DEFAULT_CONNS: [usize; 4] = [1, 100, 1000, 10_000];
/// Idle connections held for the memory figure in a complete run.
const DEFAULT_IDLE_CONNS: usize = 10_000;

impl Options {
    /// Every workload at every default connection count: the only kind of
    /// run whose tables and plots go into `docs/`.
    fn is_complete(&self) -> bool {
        !self.quick
            && !self.throughput_only
            && self.conns == DEFAULT_CONNS
            && self.idle_conns == DEFAULT_IDLE_CONNS
    }
}

fn options() -> Options {
    let mut o = Options {
        repeats: 3,
        duration: 4.0,
        conns: DEFAULT_CONNS.to_vec(),
        idle_conns: DEFAULT_IDLE_CONNS,
        quick: false,
        extra: Vec::new(),
        anchors: false,
        throughput_only: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--repeats" => {
                o.repeats = next.parse().expect("--repeats N");
                i += 1;
            }
            "--duration" => {
                o.duration = next.parse().expect("--duration S");
                i += 1;
            }
            "--server" => {
                let (name, command) = next.split_once('=').expect("--server NAME=COMMAND");
                o.extra.push((name.to_owned(), command.to_owned()));
                i += 1;
            }
            "--conns" => {
                o.conns = next
                    .split(',')
                    .map(|c| c.parse().expect("--conns list"))
                    .collect();
                i += 1;
            }
            "--anchors" => o.anchors = true,
            "--throughput-only" => o.throughput_only = true,
            "--quick" => {
                o.quick = true;
                o.repeats = 1;
                o.duration = 1.0;
                o.conns = vec![1, 100];
                o.idle_conns = 500;
            }
            _ => {} // cargo passes --bench
        }
        i += 1;
    }
    o
}

fn main() {
    if common::tokio_echo::serve_if_asked() {
        return;
    }
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["taskset"]) {
        cannot_run("compare", &why);
    }
    let bin = build_release(&root);
    let mut kinds = vec![
        reactor_spec(&bin),
        proactor_spec(&bin),
        threads_spec(&bin),
        common::tokio_echo::spec(false),
        common::tokio_echo::spec(true),
    ];
    if o.anchors {
        let c_server = build_anchors(&root)
            .unwrap_or_else(|why| cannot_run("compare -- --anchors", &why))
            .server;
        let c_uring = build_uring_anchor(&root)
            .unwrap_or_else(|why| cannot_run("compare -- --anchors", &why));
        kinds.push(ServerSpec::new(
            "C epoll --short-read",
            c_server,
            &["0", "--short-read"],
        ));
        kinds.push(ServerSpec::new("C uring_echo", c_uring, &["0"]));
    }
    for (name, command) in &o.extra {
        let mut words = command.split_whitespace();
        let program = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        kinds.push(ServerSpec::new(name, program, &args));
    }

    // Wake the machine up (CPU frequency, caches, page cache) before anything
    // counts: the first run of a cold machine is an outlier.
    let _ = drive(&bin, &kinds[0], &["--connections", "100"], 2.0);

    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); kinds.len()];
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); kinds.len()];
    for repeat in 0..o.repeats {
        for (k, kind) in kinds.iter().enumerate() {
            let mut record =
                |key: String, value: f64| samples[k].entry(key).or_default().push(value);
            for &conns in &o.conns {
                let r = drive(
                    &bin,
                    kind,
                    &["--connections", &conns.to_string()],
                    o.duration,
                );
                eprintln!(
                    "repeat {repeat} {:<22} {conns:>6} conns: {:>9.0} msg/s p50 {:>7} us p99 {:>7} us failed {} errors {} mismatches {}",
                    kind.name,
                    get(&r, "messages_per_sec"),
                    get(&r, "latency_us.p50"),
                    get(&r, "latency_us.p99"),
                    get(&r, "failed"),
                    get(&r, "errors"),
                    get(&r, "mismatches")
                );
                if get(&r, "failed") > 0.0
                    || get(&r, "errors") > 0.0
                    || get(&r, "mismatches") > 0.0
                    || r.is_empty()
                {
                    notes[k].push(format!(
                        "repeat {repeat}, {conns} connections: {} failed connects, {} lost, {} mismatched bytes{}",
                        get(&r, "failed"), get(&r, "errors"), get(&r, "mismatches"),
                        if r.is_empty() { " (no report: the run itself failed)" } else { "" }
                    ));
                }
                record(format!("msgs@{conns}"), get(&r, "messages_per_sec"));
                record(format!("p50@{conns}"), get(&r, "latency_us.p50"));
                record(format!("p99@{conns}"), get(&r, "latency_us.p99"));
            }
            if o.throughput_only {
                continue;
            }
            let r = drive(
                &bin,
                kind,
                &["--connections", "1", "--size", "4096", "--pipeline", "4"],
                o.duration,
            );
            record("stream_bytes".into(), get(&r, "bytes_per_sec"));
            let r = drive(&bin, kind, &["--connections", "10", "--churn"], o.duration);
            record("churn".into(), get(&r, "messages_per_sec"));
            let (per_conn, ok) = idle_cost(&bin, kind, o.idle_conns);
            eprintln!(
                "repeat {repeat} {:<22} idle: {per_conn:.0} B/conn, {ok} of {} round trips",
                kind.name, o.idle_conns
            );
            if ok < o.idle_conns as f64 {
                notes[k].push(format!(
                    "repeat {repeat}: only {ok} of {} idle connections answered afterwards",
                    o.idle_conns
                ));
            }
            record("idle_bytes".into(), per_conn);
        }
    }

    let med = |k: usize, key: &str| median(samples[k].get(key).cloned().unwrap_or_default());
    // Only a complete run may replace the published figures.
    let out_dir = if o.quick {
        root.join("target/compare-quick")
    } else if o.is_complete() {
        root.join("docs/benchmarks")
    } else {
        root.join("target/compare-partial")
    };
    std::fs::create_dir_all(&out_dir).expect("create output dir");
    let table = render_table(&o, &kinds, &med, &notes);
    std::fs::write(out_dir.join("compare.md"), &table).expect("write compare.md");
    print!("{table}");
    let names: Vec<&str> = kinds.iter().map(|k| k.name.as_str()).collect();
    let series = |prefix: &str| -> Vec<Vec<(f64, f64)>> {
        (0..kinds.len())
            .map(|k| {
                o.conns
                    .iter()
                    .map(|&c| (c as f64, med(k, &format!("{prefix}@{c}"))))
                    .collect()
            })
            .collect()
    };
    common::plot::lines(
        &out_dir.join("messages_per_sec.svg"),
        "messages/s (64-byte, 1 in flight per connection)",
        "messages/s",
        &names,
        &series("msgs"),
    );
    common::plot::lines(
        &out_dir.join("p99_latency.svg"),
        "p99 latency (us)",
        "p99 latency, us",
        &names,
        &series("p99"),
    );
    let idle: Vec<f64> = (0..kinds.len()).map(|k| med(k, "idle_bytes")).collect();
    common::plot::bars(
        &out_dir.join("idle_bytes.svg"),
        &format!("RSS bytes per idle connection ({} idle)", o.idle_conns),
        &names,
        &idle,
    );
    eprintln!("wrote {}", out_dir.display());
}

fn get(r: &Sample, key: &str) -> f64 {
    r.get(key).copied().unwrap_or(f64::NAN)
}

/// Starts the server, runs one `reactor-echo bench --json` against it, stops it.
fn drive(bin: &str, kind: &ServerSpec, args: &[&str], duration: f64) -> Sample {
    let server = Server::start_pinned(kind, &[]);
    let r = bench_json(bin, server.port(), args, duration, 1.0);
    server.end();
    r
}

/// RSS growth per connection while `n` connections are held idle: the peak of
/// samples taken while the load generator holds them, minus the RSS before.
fn idle_cost(bin: &str, kind: &ServerSpec, n: usize) -> (f64, f64) {
    let server = Server::start_pinned(kind, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let port = server.port();
    let bin_owned = bin.to_owned();
    let generator = thread::spawn(move || {
        bench_json(
            &bin_owned,
            port,
            &["--connections", &n.to_string(), "--idle"],
            3.0,
            1.0,
        )
    });
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !generator.is_finished() && Instant::now() < deadline {
        peak = peak.max(server.rss_bytes());
        thread::sleep(Duration::from_millis(100));
    }
    let r = generator.join().unwrap_or_default();
    server.end();
    (
        peak.saturating_sub(before) as f64 / n as f64,
        get(&r, "idle_ok"),
    )
}

fn render_table(
    o: &Options,
    kinds: &[ServerSpec],
    med: &dyn Fn(usize, &str) -> f64,
    notes: &[Vec<String>],
) -> String {
    let mut s = format!(
        "Medians of {} interleaved repeats, {} s measured after 1 s warm-up; servers on CPU 0, `reactor-echo bench` on CPU 1; \
         {}.\n\n",
        o.repeats,
        o.duration,
        machine_line()
    );
    s += "| server |";
    for c in &o.conns {
        s += &format!(" msg/s @{c} |");
    }
    for c in &o.conns {
        s += &format!(" p99/p50 @{c} |");
    }
    let extra = if o.throughput_only { 0 } else { 3 };
    if extra > 0 {
        s += " 1 conn 4 KiB MB/s | churn conn/s | idle B/conn |";
    }
    s += "\n|---|";
    s += &"---:|".repeat(o.conns.len() * 2 + extra);
    s += "\n";
    for (k, kind) in kinds.iter().enumerate() {
        s += &format!("| {} |", kind.name);
        for c in &o.conns {
            let ratio = med(k, &format!("msgs@{c}")) / med(0, &format!("msgs@{c}"));
            s += &format!(" {:.0} ({ratio:.2}x) |", med(k, &format!("msgs@{c}")));
        }
        for c in &o.conns {
            s += &format!(
                " {:.2} |",
                med(k, &format!("p99@{c}")) / med(k, &format!("p50@{c}"))
            );
        }
        if extra > 0 {
            s += &format!(
                " {:.0} | {:.0} | {:.0} |",
                med(k, "stream_bytes") / 1e6,
                med(k, "churn"),
                med(k, "idle_bytes")
            );
        }
        s += "\n";
    }
    s += "\n(The ratio after each messages/s figure is to the reactor in the same run.)\n";
    let failures: Vec<String> = kinds
        .iter()
        .zip(notes)
        .flat_map(|(kind, n)| n.iter().map(move |line| format!("- {}: {line}", kind.name)))
        .collect();
    if failures.is_empty() {
        s += "\nNo server failed a connection, lost one, or sent a wrong byte.\n";
    } else {
        s += "\nFailures seen (nothing is hidden from the table):\n\n";
        s += &failures.join("\n");
        s += "\n";
    }
    s
}
