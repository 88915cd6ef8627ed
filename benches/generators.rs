//! Both load generators against the reactor and the proactor, in one
//! interleaved run, with each CPU's time per message: `cargo bench --bench
//! generators`.
//!
//! Why it exists: two published tables disagree. Driven by the C load
//! generator (the anchors table), the proactor moved more messages per
//! second than the reactor at 1,000 and 10,000 connections; driven by
//! `reactor-echo bench` (the comparison table, another run), fewer. Two
//! runs on a noisy machine are not one comparison, so this bench puts the
//! four pairs (two servers, two generators) side by side at each
//! connection count, in an order that rotates every repeat, and asks the
//! question a messages-per-second figure cannot answer: which CPU was full,
//! and whose cost per message moved.
//!
//! The server is pinned to CPU 0 and the generator to CPU 1, so each CPU's
//! line of `/proc/stat` is one program's work and the kernel work it
//! caused there (on loopback a sender's softirq carries the packet into
//! the receiving socket, so part of each side's TCP work is done on the
//! other's CPU). Both lines are read three seconds after the generator
//! starts (its connections are open and its one-second warm-up is over)
//! and half a second before its measured window ends; the time between,
//! split into user, system and interrupts, is divided by the messages of
//! that interval (the generator's messages per second times its length: a
//! closed loop runs at a steady rate). The server process's own user and
//! system time over the same interval are read from `/proc/PID/stat`.
//!
//! A closed loop on two CPUs runs as fast as the fuller CPU lets it; the
//! table shows, for each pair, how busy each CPU was and what a message
//! cost on each, which says why one pair is faster than another.
//!
//! Options (after `--`): `--repeats N` (default 5), `--duration S`
//! (default 6, at least 4), `--conns 100,1000,10000`, `--quick` (1 repeat,
//! 100 connections: a smoke test). Needs gcc and taskset, the C sources
//! (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`) for the C load
//! generator; without one it says which in one line and exits 1. A
//! complete run (the defaults) writes `docs/benchmarks/generators.md`; any
//! other run writes under `target/bench-partial/`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Args, Server, ServerSpec, bench_command, bench_report, build_anchors, build_release,
    cannot_run, closed_loop_args, loadgen_command, machine_line, median, proactor_spec, publish,
    reactor_spec, require_tools,
};
use reactor_echo::bench::measure::cpu_window::CpuTime;
use reactor_echo::bench::procfs::{CpuSplit, cpu_split};

/// The connection counts of a complete run.
const DEFAULT_CONNS: [usize; 3] = [100, 1000, 10_000];
const DEFAULT_REPEATS: usize = 5;
const DEFAULT_DURATION: u64 = 6;
/// When the CPU readings start, after the generator starts: its
/// connections are open (10,000 take well under two seconds here) and its
/// one-second warm-up is over.
const WINDOW_START: Duration = Duration::from_secs(3);
/// The server's CPU and the generator's.
const SERVER_CPU: usize = 0;
const GENERATOR_CPU: usize = 1;

struct Options {
    repeats: usize,
    duration: u64,
    conns: Vec<usize>,
    quick: bool,
}

impl Options {
    fn is_complete(&self) -> bool {
        !self.quick
            && self.repeats == DEFAULT_REPEATS
            && self.duration == DEFAULT_DURATION
            && self.conns == DEFAULT_CONNS
    }
}

fn options() -> Options {
    let args = Args::from_env();
    // `--quick` sets its own defaults; an option given beside it still wins.
    let quick = args.flag("--quick");
    let o = Options {
        repeats: args
            .value("--repeats")
            .unwrap_or(if quick { 1 } else { DEFAULT_REPEATS }),
        duration: args.value("--duration").unwrap_or(DEFAULT_DURATION),
        conns: args.list("--conns").unwrap_or_else(|| {
            if quick {
                vec![100]
            } else {
                DEFAULT_CONNS.to_vec()
            }
        }),
        quick,
    };
    assert!(o.duration >= 4, "--duration is at least 4 seconds");
    o
}

/// The two load generators.
#[derive(Clone, Copy)]
enum Generator {
    /// The C reference load generator (`loadgen`).
    C,
    /// `reactor-echo bench`.
    Ours,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Generator::C => "C loadgen",
            Generator::Ours => "reactor-echo bench",
        }
    }

    /// Starts it against `port` on CPU 1: `conns` connections, 64-byte
    /// messages, one in flight each, a one-second warm-up, then `duration`
    /// seconds measured.
    fn spawn(self, lg: &Path, bin: &str, port: u16, conns: usize, duration: u64) -> Child {
        let mut command = match self {
            Generator::C => {
                let mut c = loadgen_command(lg, port);
                c.args(closed_loop_args(conns, duration as f64));
                c
            }
            Generator::Ours => bench_command(
                bin,
                port,
                &["--connections", &conns.to_string(), "--size", "64"],
                duration as f64,
                1.0,
            ),
        };
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the load generator")
    }
}

/// What one run measured.
#[derive(Default)]
struct Run {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    errors: f64,
    /// CPU 0's time (the server's) and CPU 1's (the generator's) over the
    /// interval.
    server_cpu: CpuSplit,
    generator_cpu: CpuSplit,
    /// How long the interval was, and the server process's own times.
    interval: Duration,
    server_process: Option<CpuTime>,
}

impl Run {
    fn messages(&self) -> f64 {
        self.rate * self.interval.as_secs_f64()
    }

    /// Microseconds per message of a stretch of CPU time.
    fn per_message(&self, time: Duration) -> f64 {
        time.as_secs_f64() * 1e6 / self.messages()
    }

    /// How busy a CPU was over the interval, 0 to 1.
    fn busy(&self, split: &CpuSplit) -> f64 {
        split.busy().as_secs_f64() / self.interval.as_secs_f64()
    }
}

/// One run of `generator` against a fresh `spec`.
fn run(
    spec: &ServerSpec,
    generator: Generator,
    lg: &Path,
    bin: &str,
    conns: usize,
    duration: u64,
) -> Run {
    let server = Server::start_pinned(spec, &[]);
    let pid = server.server_pid();
    let started = Instant::now();
    let child = generator.spawn(lg, bin, server.port(), conns, duration);
    thread::sleep(WINDOW_START);
    let reading = || {
        (
            cpu_split(SERVER_CPU),
            cpu_split(GENERATOR_CPU),
            CpuTime::of(pid).ok(),
        )
    };
    let (s0, g0, p0) = reading();
    let window_start = Instant::now();
    // The generator's window ends 1 s (warm-up) + duration after its
    // connections are open: stop reading half a second before the earliest
    // it can end.
    let until = started + Duration::from_secs(duration + 1) - Duration::from_millis(500);
    thread::sleep(until.saturating_duration_since(Instant::now()));
    let (s1, g1, p1) = reading();
    let interval = window_start.elapsed();
    let out = child
        .wait_with_output()
        .expect("wait for the load generator");
    server.end();
    let r = bench_report(&out.stdout);
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| r.get(*k).copied())
            .unwrap_or(f64::NAN)
    };
    let per = |a: Option<CpuSplit>, b: Option<CpuSplit>| a.zip(b).map(|(a, b)| b.since(a));
    Run {
        rate: get(&["msgs_per_s", "messages_per_sec"]),
        p50_us: get(&["lat_p50_us", "latency_us.p50"]),
        p99_us: get(&["lat_p99_us", "latency_us.p99"]),
        errors: get(&["errors"]) + get(&["mismatches"]),
        server_cpu: per(s0, s1).unwrap_or_default(),
        generator_cpu: per(g0, g1).unwrap_or_default(),
        interval,
        server_process: p0.zip(p1).map(|(a, b)| b.since(a)),
    }
}

fn main() {
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&root);
    if let Err(why) = require_tools(&["gcc", "taskset"]) {
        cannot_run("generators", &why);
    }
    let lg = build_anchors(&root)
        .unwrap_or_else(|why| cannot_run("generators", &why))
        .loadgen;
    let servers = [reactor_spec(&bin), proactor_spec(&bin)];
    let pairs: Vec<(usize, Generator)> = [Generator::C, Generator::Ours]
        .into_iter()
        .flat_map(|g| (0..servers.len()).map(move |s| (s, g)))
        .collect();

    // samples[(conns, pair index)][metric]
    let mut samples: BTreeMap<(usize, usize), BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for repeat in 0..o.repeats {
        for &conns in &o.conns {
            for turn in 0..pairs.len() {
                let p = (turn + repeat) % pairs.len();
                let (s, generator) = pairs[p];
                let r = run(&servers[s], generator, &lg, &bin, conns, o.duration);
                let process = r.server_process.unwrap_or(CpuTime {
                    user: Duration::ZERO,
                    system: Duration::ZERO,
                });
                let figures = [
                    ("rate", r.rate),
                    ("p99/p50", r.p99_us / r.p50_us),
                    ("errors", r.errors),
                    ("cpu0 busy", r.busy(&r.server_cpu)),
                    ("cpu1 busy", r.busy(&r.generator_cpu)),
                    ("cpu0 user", r.per_message(r.server_cpu.user)),
                    ("cpu0 system", r.per_message(r.server_cpu.system)),
                    ("cpu0 interrupts", r.per_message(r.server_cpu.interrupts)),
                    ("cpu0 all", r.per_message(r.server_cpu.busy())),
                    ("cpu1 user", r.per_message(r.generator_cpu.user)),
                    ("cpu1 system", r.per_message(r.generator_cpu.system)),
                    ("cpu1 interrupts", r.per_message(r.generator_cpu.interrupts)),
                    ("cpu1 all", r.per_message(r.generator_cpu.busy())),
                    ("server user", r.per_message(process.user)),
                    ("server system", r.per_message(process.system)),
                ];
                eprintln!(
                    "repeat {repeat} {conns:>6} conns {:<20} by {:<18}: {:>9.0} msg/s, CPU 0 {:.0}% busy {:.2} us/msg, CPU 1 {:.0}% busy {:.2} us/msg, errors {}",
                    servers[s].name,
                    generator.name(),
                    r.rate,
                    100.0 * r.busy(&r.server_cpu),
                    r.per_message(r.server_cpu.busy()),
                    100.0 * r.busy(&r.generator_cpu),
                    r.per_message(r.generator_cpu.busy()),
                    r.errors
                );
                let m = samples.entry((conns, p)).or_default();
                for (key, value) in figures {
                    m.entry(key).or_default().push(value);
                }
            }
        }
    }

    let med = |conns: usize, p: usize, key: &str| {
        median(
            samples
                .get(&(conns, p))
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let range = |conns: usize, p: usize| {
        let v = samples
            .get(&(conns, p))
            .and_then(|m| m.get("rate"))
            .cloned()
            .unwrap_or_default();
        let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
        format!("{lo:.0} to {hi:.0}")
    };
    let mut out = format!(
        "Medians of {} repeats, the four pairs in an order that rotates every repeat; {} s measured after 1 s warm-up, 64-byte messages, one in flight per connection; server on CPU 0, load generator on CPU 1; {}.\n\n",
        o.repeats,
        o.duration,
        machine_line()
    );
    out += "| connections | generator | server | msg/s | lowest to highest repeat | vs reactor | p99/p50 | CPU 0 busy | CPU 0 us/msg: user + system + interrupts | CPU 1 busy | CPU 1 us/msg: user + system + interrupts | server process us/msg: user + system | errors |\n";
    out += "|---:|---|---|---:|---|---:|---:|---:|---|---:|---|---|---:|\n";
    for &conns in &o.conns {
        for (p, &(s, generator)) in pairs.iter().enumerate() {
            let reactor = pairs
                .iter()
                .position(|&(rs, rg)| rs == 0 && rg.name() == generator.name())
                .unwrap_or(p);
            let m = |key: &str| med(conns, p, key);
            out += &format!(
                "| {conns} | {} | {} | {:.0} | {} | {:.2}x | {:.2} | {:.0}% | {:.2} + {:.2} + {:.2} = {:.2} | {:.0}% | {:.2} + {:.2} + {:.2} = {:.2} | {:.2} + {:.2} | {:.0} |\n",
                generator.name(),
                servers[s].name,
                m("rate"),
                range(conns, p),
                m("rate") / med(conns, reactor, "rate"),
                m("p99/p50"),
                100.0 * m("cpu0 busy"),
                m("cpu0 user"),
                m("cpu0 system"),
                m("cpu0 interrupts"),
                m("cpu0 all"),
                100.0 * m("cpu1 busy"),
                m("cpu1 user"),
                m("cpu1 system"),
                m("cpu1 interrupts"),
                m("cpu1 all"),
                m("server user"),
                m("server system"),
                m("errors"),
            );
        }
    }
    out += "\n(\"vs reactor\": the ratio of the median messages per second to the reactor's under the same generator at the same count. Each CPU's time is its line of `/proc/stat` between 3 s after the generator started and half a second before its window ended, per message of that interval; the kernel counts it in 10 ms ticks. Each part's median is taken on its own, so the parts need not add up to the median of the sum exactly. The server process's own times come from `/proc/PID/stat` over the same interval; errors are failed or mismatched replies, summed.)\n";
    let path = publish(&root, "generators.md", &out, o.is_complete());
    print!("{out}");
    eprintln!("wrote {}", path.display());
}
