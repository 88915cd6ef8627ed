//! Past one process: N connections held on one machine by several reactor
//! processes, side by side with the C reference pair:
//! `cargo bench --bench scale -- --connections 1000000`.
//!
//! The server runs as W share-nothing workers on one port (`serve --workers
//! W`, and the C `epoll_echo --workers W`), pinned to CPU 0; the load
//! generator as many processes as its descriptors need (`bench`, which
//! spreads itself, and the C `loadgen`, which forks), pinned to CPU 1.
//! Four pairings, in this order, each on a fresh server:
//!
//! 1. C server, C load generator: the reference;
//! 2. C server, `reactor-echo bench`: our load generator alone;
//! 3. `reactor-echo serve`, C load generator: our server alone;
//! 4. `reactor-echo serve`, `reactor-echo bench`: the two together.
//!
//! Each opens N connections (paced, over source addresses 127.0.0.2, ...,
//! at most 12,000 each), holds them idle for `--hold` seconds, then makes
//! one verified round trip on every one. Measured: the time until all were
//! open and the time the wave of round trips took, round trips that came
//! back right, failed connects, errors and wrong bytes; the server's memory
//! growth per connection (the workers' summed `Rss`, from `smaps_rollup`)
//! and the machine's (`MemAvailable`'s fall, both ends, nearly all of it
//! the kernel's), the spread of connections over the workers (their open
//! descriptors), and the server's CPU time.
//!
//! Then throughput with `--throughput-connections` (default 100,000) open:
//! closed loop, 64 B, pipeline 1, `reactor-echo serve --workers W` against
//! `epoll_echo --workers W` (the same W), both driven by the C load
//! generator (the reference instrument), interleaved, `--repeats` times
//! (default 3); the medians and their ratio.
//!
//! Options: `--connections N` (default 100,000), `--workers W` (default: at
//! least 8, and enough that each holds at most about 16,700), `--hold S`
//! (default 20), `--repeats R`, `--throughput-connections N` (0: skip),
//! `--quick` (10,000 connections, 2 s hold, one repeat: a smoke test).
//! Needs gcc, taskset and the C sources (see `common::anchors_dir`). A run
//! at 100,000 connections or more that is not `--quick` writes
//! `docs/benchmarks/scale-N.md`; any other run writes under
//! `target/bench-partial/`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reactor_echo::bench::PER_SOURCE;
use reactor_echo::bench::measure::cpu_window::CpuTime;
use reactor_echo::bench::measure::kernel::KernelReading;
use reactor_echo::bench::procfs::{self, resident_kib};
use reactor_echo::bench::report::parse_json_numbers;

use common::{
    Server, ServerSpec, build_anchors, build_release, cannot_run, loadgen, loadgen_command,
    machine_line, median, publish, require_tools, strings,
};

struct Options {
    connections: usize,
    workers: usize,
    hold: f64,
    repeats: usize,
    throughput_connections: usize,
    quick: bool,
}

fn options() -> Options {
    let mut o = Options {
        connections: 100_000,
        workers: 0,
        hold: 20.0,
        repeats: 3,
        throughput_connections: 100_000,
        quick: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--connections" => o.connections = value(i).parse().expect("--connections N"),
            "--workers" => o.workers = value(i).parse().expect("--workers W"),
            "--hold" => o.hold = value(i).parse().expect("--hold S"),
            "--repeats" => o.repeats = value(i).parse().expect("--repeats R"),
            "--throughput-connections" => {
                o.throughput_connections = value(i).parse().expect("--throughput-connections N")
            }
            "--quick" => {
                o.quick = true;
                o.connections = 10_000;
                o.hold = 2.0;
                o.repeats = 1;
                o.throughput_connections = 10_000;
                i -= 1;
            }
            _ => i -= 1,
        }
        i += 2;
    }
    if o.workers == 0 {
        o.workers = o.connections.div_ceil(16_700).max(8);
    }
    o
}

/// What one pairing measured.
#[derive(Default)]
struct Hold {
    opened_s: f64,
    wave_s: f64,
    round_trips_ok: f64,
    failed: f64,
    errors: f64,
    mismatches: f64,
    server_bytes_per_conn: f64,
    machine_bytes_per_conn: f64,
    spread: (usize, usize),
    server_cpu_s: f64,
}

/// Each worker's open sockets (its connections and its own listener):
/// every process of the tree that holds more than a few. A supervisor
/// holds pipes to its workers, not sockets, so it is left out.
fn connections_per_worker(server: &Server) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut stack = vec![server.pid()];
    while let Some(pid) = stack.pop() {
        let sockets = procfs::open_descriptors(pid).map_or(0, |(_, sockets)| sockets);
        stack.extend(procfs::live_children(pid));
        if sockets > 8 {
            counts.push(sockets);
        }
    }
    counts
}

/// Runs the C load generator's idle hold; measures at `idle-ready`.
fn hold_with_c_loadgen(server: &Server, lg: &Path, o: &Options) -> Hold {
    let before_rss = resident_kib(server.pid()).unwrap_or(0);
    let before = KernelReading::now();
    let cpu_before = CpuTime::of_tree(server.pid()).ok();
    let sources = o.connections.div_ceil(PER_SOURCE).max(1);
    let started = Instant::now();
    let mut child = loadgen_command(lg, server.port())
        .args(["--conns", &o.connections.to_string(), "--size", "64"])
        .args(["--idle", &o.hold.to_string()])
        .args(["--connect-timeout", "600", "--rtt-timeout", "300"])
        .args(["--src-addrs", &sources.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run loadgen");
    let mut hold = Hold::default();
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.starts_with("idle-ready") {
            hold.opened_s = started.elapsed().as_secs_f64();
            measure_open(server, o.connections, before_rss, &before, &mut hold);
        }
        if line.starts_with('{') {
            let r = parse_json_numbers(&line);
            let get = |k: &str| r.get(k).copied().unwrap_or(f64::NAN);
            hold.wave_s = get("duration_s");
            hold.round_trips_ok = get("idle_ok");
            hold.failed = get("conns_failed");
            hold.errors = get("errors");
            hold.mismatches = get("mismatches");
        }
    }
    let _ = child.wait();
    hold.server_cpu_s = cpu_since(server, cpu_before);
    hold
}

/// Runs `reactor-echo bench --idle` over its processes.
fn hold_with_bench(server: &Server, bin: &str, o: &Options) -> Hold {
    let cpu_before = CpuTime::of_tree(server.pid()).ok();
    let mut child = Command::new("taskset")
        .args(["-c", "1", bin, "bench", "--json", "--idle"])
        .args(["--addr", &format!("127.0.0.1:{}", server.port())])
        .args(["--connections", &o.connections.to_string()])
        .args(["--duration", &o.hold.to_string()])
        .args(["--connect-timeout", "600", "--reply-timeout", "300"])
        .args(["--server-pid", &server.pid().to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bench");
    // The spread is read while the connections are held: when the
    // progress line first shows all of them up.
    let stderr = child.stderr.take().expect("stderr");
    let all = format!("{0}/{0} connections up", o.connections);
    let mut spread = (0, 0);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        // Its progress line, passed on, while the connections open.
        eprintln!("{line}");
        if spread == (0, 0) && line.contains(&all) {
            spread = min_max(&connections_per_worker(server));
        }
    }
    let out = child.wait_with_output().expect("bench output");
    let text = String::from_utf8_lossy(&out.stdout);
    let r = text
        .lines()
        .find(|l| l.starts_with('{'))
        .map(parse_json_numbers)
        .unwrap_or_default();
    let get = |k: &str| r.get(k).copied().unwrap_or(f64::NAN);
    let established = get("established").max(1.0);
    Hold {
        opened_s: get("opened_s"),
        wave_s: get("latency_us.max") / 1e6,
        round_trips_ok: get("idle_ok"),
        failed: get("failed"),
        errors: get("errors"),
        mismatches: get("mismatches"),
        server_bytes_per_conn: (get("server_rss_open_kib.open")
            - get("server_rss_open_kib.before"))
            * 1024.0
            / established,
        machine_bytes_per_conn: (get("kernel_before.mem_available_kib")
            - get("kernel_during.mem_available_kib"))
            * 1024.0
            / established,
        spread,
        server_cpu_s: cpu_since(server, cpu_before),
    }
}

fn measure_open(
    server: &Server,
    connections: usize,
    before_rss: u64,
    before: &KernelReading,
    hold: &mut Hold,
) {
    let rss = resident_kib(server.pid()).unwrap_or(0);
    let now = KernelReading::now();
    hold.server_bytes_per_conn =
        rss.saturating_sub(before_rss) as f64 * 1024.0 / connections as f64;
    hold.machine_bytes_per_conn = before
        .mem_available_kib
        .saturating_sub(now.mem_available_kib) as f64
        * 1024.0
        / connections as f64;
    hold.spread = min_max(&connections_per_worker(server));
}

fn cpu_since(server: &Server, before: Option<CpuTime>) -> f64 {
    let (Some(before), Ok(after)) = (before, CpuTime::of_tree(server.pid())) else {
        return f64::NAN;
    };
    let spent = after.since(before);
    (spent.user + spent.system).as_secs_f64()
}

fn min_max(v: &[usize]) -> (usize, usize) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

/// Closed-loop messages/s with `conns` open, by the C load generator.
fn throughput(server: &Server, lg: &Path, conns: usize, duration: u64) -> f64 {
    let sources = conns.div_ceil(PER_SOURCE).max(1);
    let r = loadgen(
        lg,
        server.port(),
        &strings(&[
            "--conns",
            &conns.to_string(),
            "--size",
            "64",
            "--duration",
            &duration.to_string(),
            "--warmup",
            "2",
            "--connect-timeout",
            "600",
            "--src-addrs",
            &sources.to_string(),
        ]),
    );
    if r.get("mismatches").copied().unwrap_or(1.0) != 0.0 {
        eprintln!("a throughput run had mismatches: {r:?}");
        return f64::NAN;
    }
    r.get("msgs_per_s").copied().unwrap_or(f64::NAN)
}

fn main() {
    let o = options();
    if let Err(why) = require_tools(&["gcc", "taskset"]) {
        cannot_run("scale", &why);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let anchors = build_anchors(root).unwrap_or_else(|why| cannot_run("scale", &why));
    let bin = build_release(root);
    let workers = o.workers.to_string();
    let ours = ServerSpec::new(
        "reactor-echo serve",
        &bin,
        &[
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "off",
            "--workers",
            &workers,
        ],
    );
    let c_server = ServerSpec::new(
        "epoll_echo --short-read",
        &anchors.server,
        &["0", "--short-read", "--workers", &workers],
    );
    eprintln!(
        "scale: {} connections, {} workers, {} s hold",
        o.connections, o.workers, o.hold
    );
    let pairings: [(&str, &ServerSpec, bool); 4] = [
        ("C server, C load generator", &c_server, false),
        ("C server, reactor-echo bench", &c_server, true),
        ("reactor-echo serve, C load generator", &ours, false),
        ("reactor-echo serve, reactor-echo bench", &ours, true),
    ];
    let mut holds = Vec::new();
    for (name, spec, with_bench) in pairings {
        eprintln!("scale: {name} ...");
        let server = Server::start_pinned(spec, &[]);
        std::thread::sleep(Duration::from_millis(500));
        let hold = if with_bench {
            hold_with_bench(&server, &bin, &o)
        } else {
            hold_with_c_loadgen(&server, &anchors.loadgen, &o)
        };
        server.end_root_within(Duration::from_secs(60));
        // Let the closed connections' TIME-WAIT and memory go before the next.
        std::thread::sleep(Duration::from_secs(5));
        holds.push((name, hold));
    }
    let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let tc = o.throughput_connections;
    if tc > 0 {
        for repeat in 0..o.repeats {
            let order: [&ServerSpec; 2] = if repeat % 2 == 0 {
                [&ours, &c_server]
            } else {
                [&c_server, &ours]
            };
            for spec in order {
                eprintln!("scale: throughput, {} with {tc} connections ...", spec.name);
                let server = Server::start_pinned(spec, &[]);
                std::thread::sleep(Duration::from_millis(500));
                let rate = throughput(&server, &anchors.loadgen, tc, 10);
                server.end_root_within(Duration::from_secs(60));
                std::thread::sleep(Duration::from_secs(3));
                rates.entry(spec.name.as_str()).or_default().push(rate);
            }
        }
    }

    let mut out = format!(
        "# Past one process: {} connections\n\n{}. The server ({} workers) pinned to CPU 0, \
         the load generator (as many processes as its descriptors need) to CPU 1; each pairing \
         on a fresh server. `cargo bench --bench scale -- --connections {}`.\n\n",
        o.connections,
        machine_line(),
        o.workers,
        o.connections
    );
    out += &format!(
        "Every connection opened, held idle {} s, then one verified 64-byte round trip on each.\n\n",
        o.hold
    );
    out += "| pairing | all open after | wave of round trips | round trips right | failed connects | errors | wrong bytes | server memory per connection | machine memory per connection | connections per worker (min–max) | server CPU |\n";
    out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (name, h) in &holds {
        out += &format!(
            "| {name} | {:.1} s | {:.1} s | {:.0} of {} | {:.0} | {:.0} | {:.0} | {:.0} B | {:.0} B | {}–{} | {:.1} s |\n",
            h.opened_s,
            h.wave_s,
            h.round_trips_ok,
            o.connections,
            h.failed,
            h.errors,
            h.mismatches,
            h.server_bytes_per_conn,
            h.machine_bytes_per_conn,
            h.spread.0,
            h.spread.1,
            h.server_cpu_s
        );
    }
    out += "\nServer memory: the growth of the workers' summed `Rss` (`smaps_rollup`) from before the first connect to all open. \
            Machine memory: the fall of `MemAvailable` over the same span, both ends of every connection (loopback), nearly all of it the kernel's. \
            Connections per worker: each worker's open sockets with all open (its listener among them). \
            The wave: from the first round trip sent to the last answered (the C load generator's `duration_s`, `bench`'s largest latency). \
            Server CPU: the workers' user + system time over the whole pairing.\n";
    if tc > 0 {
        out += &format!(
            "\nThroughput with {tc} connections open: closed loop, 64 B, pipeline 1, 10 s after 2 s warm-up, \
             the C load generator against each server ({} workers each), interleaved, {} repeats; medians.\n\n",
            o.workers, o.repeats
        );
        out += "| server | messages/s (median) | runs | ratio to the C server |\n|---|---:|---|---:|\n";
        let c = median(
            rates
                .get(c_server.name.as_str())
                .cloned()
                .unwrap_or_default(),
        );
        for spec in [&ours, &c_server] {
            let runs = rates.get(spec.name.as_str()).cloned().unwrap_or_default();
            let list: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            let m = median(runs);
            out += &format!(
                "| {} | {m:.0} | {} | {:.2} |\n",
                spec.name,
                list.join(", "),
                m / c
            );
        }
    }
    println!("{out}");
    let complete = !o.quick && o.connections >= 100_000;
    let path = publish(root, &format!("scale-{}.md", o.connections), &out, complete);
    eprintln!("scale: wrote {}", path.display());
}
