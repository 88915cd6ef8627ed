//! What the bulk column of the proactor_choices table shows, explained by
//! two experiments: `cargo bench --bench proactor_bulk`.
//!
//! In that column (10 connections that each keep four 16 KiB messages in
//! flight) an earlier build of the proactor, with whole 4 KiB buffers,
//! showed two outliers: zero-copy sends crawled, and the build without the
//! recv's byte limit moved more. Each part of this bench takes away the
//! suspected cause and measures again, interleaved with the build as it
//! is and the builds with whole buffers.
//!
//! **Zero-copy sends and the receiver's ACKs.** A zero-copy send
//! (`IORING_OP_SEND_ZC`, `benches/proactor_choices/zero-copy-send.patch`)
//! lends the kernel the buffer's pages instead of copying them, and a
//! second completion, the notification, says when the kernel has let them
//! go. TCP lets them go when it frees the last packet that points at them,
//! and it keeps every packet sent in its retransmit queue until the peer
//! acknowledges it. The proactor keeps one send in flight per connection
//! and takes the buffer back only with the notification, so a connection's
//! next send waits for the peer's ACK; and a peer with nothing to send at
//! that moment delays its ACK (Linux waits at least 40 ms,
//! `TCP_DELACK_MIN`, hoping to carry it on data). The bench makes two
//! network namespaces of its own, each with nothing but its loopback: in
//! one the loopback routes are as the kernel makes them (ACKs delayed), in
//! the other they carry `quickack 1`, the route attribute that makes every
//! socket on them acknowledge at once. In each it runs copying sends (the
//! proactor as it is), zero-copy sends, and zero-copy sends on the whole
//! 4 KiB buffers the proactor had when the crawl was found
//! (`whole-buffers.patch` too), server and the C load generator both
//! inside, at 4 KiB, 16 KiB and 64 KiB messages. If the ACK is the wait,
//! the crawl goes away where ACKs are quick; what is left is the
//! send's own cost on loopback, where the kernel copies a zero-copy packet
//! anyway when it delivers it to a local socket
//! (`Documentation/networking/msg_zerocopy.rst`, "Loopback").
//!
//! **The recv's byte limit and the bound.** The proactor arms each
//! multishot recv with a byte limit, the room left under `--max-pending`
//! (64 KiB by default), and arms it again when the kernel ends it there
//! (`docs/proactor.md`, "Backpressure"): a recv ends after about a bound's
//! worth of bytes, and four 16 KiB messages in flight are exactly 64 KiB.
//! The bench runs the proactor as it is (64 KiB buffers consumed
//! incrementally), `no-byte-limit.patch`, and the two builds with whole
//! buffers (`whole-buffers.patch`, 4 KiB; `large-buffers.patch`, 64 KiB)
//! at the default bound and at a bound of 1 MiB, in the root namespace as the
//! proactor_choices bench does, and counts the re-arms from the server's
//! stats line. If the limit is the cost, the cost goes away when the bound
//! is larger than what is in flight.
//!
//! Every run: 10 connections, four messages in flight on each, every reply
//! byte verified; MB/s, the p50 round trip, the server's CPU time per MB,
//! medians of interleaved repeats. The server is pinned to CPU 0, the load
//! generator to CPU 1. Needs root (network namespaces), `ip`, gcc, taskset
//! and git; without one it says which in one line and exits 1. The
//! namespaces are named `re<PID>-zc-delayed` and `re<PID>-zc-quick` and
//! are deleted at the end (also on a panic; a run killed outright leaves
//! them, and the next run removes them, as the tests' hosts do). Options (after `--`):
//! `--repeats N` (default 5), `--duration S` (default 5), `--quick` (1
//! repeat, 2 s). A complete run writes `docs/benchmarks/proactor_bulk.md`;
//! any other, under `target/bench-partial/`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use reactor_echo::proactor::ProactorStats;

use common::support::hosts;
use common::{
    Args, Server, ServerSpec, build_anchors, build_proactor_choice, cannot_run, machine_line,
    median, proactor_spec, publish, require_tools, run_under_with_cpu_split, strings,
};

/// Connections, and messages each keeps in flight (the proactor_choices
/// bulk column's shape).
const CONNS: usize = 10;
const PIPELINE: usize = 4;

/// The zero-copy part's message sizes, bytes.
const SIZES: [usize; 3] = [4096, 16_384, 65_536];
/// The byte-limit part's message size (the proactor_choices bulk column's)
/// and its two bounds: the default, and one larger than what is in flight.
const LIMIT_SIZE: usize = 16_384;
const BOUNDS: [usize; 2] = [65_536, 1 << 20];

/// The zero-copy part's builds, each with the patches that make it: the
/// proactor as it is (copying sends), with zero-copy sends, and with
/// zero-copy sends on the whole 4 KiB buffers it had before.
const SENDS: [(&str, &[&str]); 3] = [
    ("copying", &[]),
    ("zero-copy", &["zero-copy-send"]),
    (
        "zero-copy, whole 4 KiB buffers",
        &["whole-buffers", "zero-copy-send"],
    ),
];
/// The byte-limit part's builds: the proactor as it is, without the limit,
/// and the two builds with whole buffers.
const LIMITS: [(&str, &[&str]); 4] = [
    ("as built", &[]),
    ("no byte limit (`no-byte-limit`)", &["no-byte-limit"]),
    ("4 KiB whole buffers (`whole-buffers`)", &["whole-buffers"]),
    ("64 KiB whole buffers (`large-buffers`)", &["large-buffers"]),
];

/// A network namespace the bench made, deleted when dropped.
struct Namespace {
    name: String,
}

impl Namespace {
    /// A namespace with its loopback up; with `quick_acks`, the loopback's
    /// routes to 127.0.0.0/8 carry `quickack 1`.
    fn new(suffix: &str, quick_acks: bool) -> Result<Namespace, String> {
        let name = format!("re{}-zc-{suffix}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Namespace { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        if quick_acks {
            // Bringing lo up made two local routes; a connection to
            // 127.0.0.1 takes the more specific one (127.0.0.1/32), so both
            // get the attribute.
            for prefix in ["127.0.0.1", "127.0.0.0/8"] {
                ip(&[
                    "-n",
                    &ns.name,
                    "route",
                    "replace",
                    "local",
                    prefix,
                    "dev",
                    "lo",
                    "table",
                    "local",
                    "proto",
                    "kernel",
                    "scope",
                    "host",
                    "src",
                    "127.0.0.1",
                    "quickack",
                    "1",
                ])?;
            }
            let routes = Command::new("ip")
                .args(["-n", &ns.name, "route", "show", "table", "local"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if routes.matches("quickack 1").count() < 2 {
                return Err(format!("the routes did not take quickack:\n{routes}"));
            }
        }
        Ok(ns)
    }

    /// The wrapper that runs a program inside it.
    fn wrapper(&self) -> Vec<String> {
        strings(&["ip", "netns", "exec", &self.name])
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Runs `ip args` (the tests' [`hosts::run`]); its stderr if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    hosts::run("ip", args).map_err(|e| e.to_string())
}

/// Builds `(name, patches)` into a server of that name, or stops the
/// bench.
fn spec(root: &Path, (name, patches): (&str, &[&str])) -> ServerSpec {
    let bin = build_proactor_choice(root, patches)
        .unwrap_or_else(|why| cannot_run("proactor_bulk", &why));
    ServerSpec {
        name: name.to_owned(),
        ..proactor_spec(&bin)
    }
}

/// One run's figures, by name.
type Figures = BTreeMap<&'static str, f64>;
/// Every run's figures of one cell of a table, by name.
type Samples = BTreeMap<&'static str, Vec<f64>>;

fn main() {
    let args = Args::from_env();
    let quick = args.flag("--quick");
    let repeats: usize = args.value("--repeats").unwrap_or(if quick { 1 } else { 5 });
    let duration: f64 = args
        .value("--duration")
        .unwrap_or(if quick { 2.0 } else { 5.0 });
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if !rustix::process::geteuid().is_root() {
        cannot_run("proactor_bulk", "network namespaces need root");
    }
    if let Err(why) = require_tools(&["ip", "gcc", "taskset", "git"]) {
        cannot_run("proactor_bulk", &why);
    }
    let lg = build_anchors(&root)
        .unwrap_or_else(|why| cannot_run("proactor_bulk", &why))
        .loadgen;
    let sends = SENDS.map(|build| spec(&root, build));
    let limits = LIMITS.map(|build| spec(&root, build));
    // A run killed with SIGKILL leaves its namespaces: the `re<PID>-`
    // prefix the tests' hosts use lets the next run remove them.
    hosts::clean_stale();
    let namespaces = [("delayed", false), ("quick", true)].map(|(acks, quick_acks)| {
        let ns = Namespace::new(acks, quick_acks)
            .unwrap_or_else(|why| cannot_run("proactor_bulk", &why));
        (acks, ns)
    });

    let mut zero_copy: BTreeMap<(usize, &str, usize), Samples> = BTreeMap::new();
    let mut limit: BTreeMap<(usize, usize), Samples> = BTreeMap::new();
    for repeat in 0..repeats {
        for size in SIZES {
            for (acks, ns) in &namespaces {
                for (b, spec) in sends.iter().enumerate() {
                    let r = run(&lg, spec, &ns.wrapper(), size, &[], duration);
                    eprintln!(
                        "repeat {repeat} {size:>6} B, ACKs {acks:<7} {:<30} {:>8.1} MB/s, p50 {:>9.1} us, server {:>5.0} us/MB, {} wrong",
                        spec.name, r["mb"], r["p50"], r["cpu"], r["wrong"]
                    );
                    add(zero_copy.entry((size, *acks, b)).or_default(), r);
                }
            }
        }
        for bound in BOUNDS {
            for (b, spec) in limits.iter().enumerate() {
                let r = run(
                    &lg,
                    spec,
                    &[],
                    LIMIT_SIZE,
                    &["--max-pending", &bound.to_string()],
                    duration,
                );
                eprintln!(
                    "repeat {repeat} bound {bound:>7} {:<52} {:>8.1} MB/s, p50 {:>9.1} us, server {:>5.0} us/MB, {:.1} re-arms/MiB, {} wrong",
                    spec.name, r["mb"], r["p50"], r["cpu"], r["rearms"], r["wrong"]
                );
                add(limit.entry((bound, b)).or_default(), r);
            }
        }
    }
    drop(namespaces);

    let mut out = format!(
        "Medians of {repeats} interleaved repeats, {duration} s each; server on CPU 0, the C load generator on CPU 1; {}.\n\n",
        machine_line()
    );
    out += &zero_copy_table(&zero_copy);
    out += "\n";
    out += &limit_table(&limit);
    print!("{out}");
    let written = publish(&root, "proactor_bulk.md", &out, !quick);
    eprintln!("wrote {}", written.display());
}

/// Appends one run's figures to a cell's samples.
fn add(samples: &mut Samples, figures: Figures) {
    for (key, value) in figures {
        samples.entry(key).or_default().push(value);
    }
}

/// One run of `spec` (with `extra` arguments) under `wrapper`, `size`-byte
/// messages for `duration` seconds: MB/s, the p50 round trip (us), the server's CPU per MB (us),
/// re-arms per MiB received, and the load generator's errors and wrong
/// bytes.
fn run(
    lg: &Path,
    spec: &ServerSpec,
    wrapper: &[String],
    size: usize,
    extra: &[&str],
    duration: f64,
) -> Figures {
    let spec = ServerSpec {
        args: spec
            .args
            .iter()
            .cloned()
            .chain(extra.iter().map(|a| (*a).to_owned()))
            .collect(),
        ..spec.clone()
    };
    let server = Server::start_pinned(&spec, wrapper);
    let args = strings(&[
        "--conns",
        &CONNS.to_string(),
        "--size",
        &size.to_string(),
        "--pipeline",
        &PIPELINE.to_string(),
        "--duration",
        &duration.to_string(),
        "--warmup",
        "1",
    ]);
    let r = run_under_with_cpu_split(wrapper, lg, &server, args);
    let stats: Option<ProactorStats> = server
        .stop_for_stats_line()
        .and_then(|line| line.parse().ok());
    let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
    let megabytes = size as f64 / 1e6;
    let per_mib = |count: u64, s: &ProactorStats| {
        count as f64 / (s.stats.bytes_in as f64 / f64::from(1 << 20))
    };
    BTreeMap::from([
        ("mb", get("msgs_per_s") * megabytes),
        ("p50", get("lat_p50_us")),
        (
            "cpu",
            (get(common::USER_US) + get(common::SYSTEM_US)) / megabytes,
        ),
        ("rearms", stats.map_or(f64::NAN, |s| per_mib(s.rearms, &s))),
        (
            "recvs",
            stats.map_or(f64::NAN, |s| per_mib(s.stats.reads, &s)),
        ),
        ("wrong", get("errors") + get("mismatches")),
    ])
}

/// The median of `key` in `cell`.
fn med(cell: Option<&Samples>, key: &str) -> f64 {
    median(cell.and_then(|m| m.get(key)).cloned().unwrap_or_default())
}

/// The sum of `key` over `cells`.
fn total<'a>(cells: impl Iterator<Item = Option<&'a Samples>>, key: &str) -> f64 {
    cells
        .flatten()
        .flat_map(|m| m.get(key).cloned().unwrap_or_default())
        .sum()
}

/// The zero-copy part: a row per message size and ACK setting, the sends
/// side by side.
fn zero_copy_table(samples: &BTreeMap<(usize, &str, usize), Samples>) -> String {
    let mut out = String::from(
        "Zero-copy sends and the receiver's ACKs, server and load generator in a network namespace of the bench's:\n\n",
    );
    let names: Vec<&str> = SENDS.iter().map(|(name, _)| *name).collect();
    out += "| message size | the receiver's ACKs |";
    for (what, unit) in [("MB/s", ""), ("p50", " (us)"), ("server", " us/MB")] {
        for name in &names {
            out += &format!(" {name} {what}{unit} |");
        }
    }
    out += " wrong bytes and errors |\n";
    out += &format!("|---|---|{}\n", "---:|".repeat(3 * names.len() + 1));
    for size in SIZES {
        for acks in ["delayed", "quick"] {
            let cell = |b: usize| samples.get(&(size, acks, b));
            let copying = med(cell(0), "mb");
            out += &format!("| {} KiB | {acks} |", size / 1024);
            for b in 0..SENDS.len() {
                let mb = med(cell(b), "mb");
                out += &if b == 0 {
                    format!(" {mb:.1} |")
                } else {
                    format!(" {mb:.1} ({:.2}x) |", mb / copying)
                };
            }
            for key in ["p50", "cpu"] {
                for b in 0..SENDS.len() {
                    out += &format!(" {:.0} |", med(cell(b), key));
                }
            }
            out += &format!(" {:.0} |\n", total((0..SENDS.len()).map(cell), "wrong"));
        }
    }
    out += &format!(
        "\n({CONNS} connections, each keeping {PIPELINE} messages of the size in flight; MB = 10^6 bytes echoed; p50: the load generator's median round trip of one message; server: the server's CPU time per MB. The ratio after a zero-copy MB/s is to copying sends in the same row. Delayed: the namespace's loopback as the kernel makes it; quick: its local routes to 127.0.0.0/8 carry `quickack 1`. Wrong bytes and errors: the load generator's count over every run of every build in the row. Zero-copy is `benches/proactor_choices/zero-copy-send.patch` applied to the source measured; on whole 4 KiB buffers, `whole-buffers.patch` first.)\n"
    );
    out
}

/// The byte-limit part: a row per bound and build.
fn limit_table(samples: &BTreeMap<(usize, usize), Samples>) -> String {
    let mut out = format!(
        "The recv's byte limit and the bound, {} KiB messages, in the root namespace:\n\n",
        LIMIT_SIZE / 1024
    );
    out += "| `--max-pending` | build | MB/s | p50 (us) | server us/MB | re-arms/MiB | recv completions/MiB | wrong bytes and errors |\n";
    out += "|---|---|---:|---:|---:|---:|---:|---:|\n";
    for bound in BOUNDS {
        for (b, (name, _)) in LIMITS.iter().enumerate() {
            let cell = samples.get(&(bound, b));
            let mb = med(cell, "mb");
            out += &format!(
                "| {bound} | {name} | {mb:.1} ({:.2}x) | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} |\n",
                mb / med(samples.get(&(bound, 0)), "mb"),
                med(cell, "p50"),
                med(cell, "cpu"),
                med(cell, "rearms"),
                med(cell, "recvs"),
                total(std::iter::once(cell), "wrong"),
            );
        }
    }
    out += &format!(
        "\n({CONNS} connections, each keeping {PIPELINE} messages in flight; the ratio after MB/s is to the build as it is at the same bound. Re-arms and recv completions per MiB: the server's `rearms` and `reads` over its `bytes_in`, from its last stats line. Each build but the first is `benches/proactor_choices/NAME.patch` applied to the source measured.)\n"
    );
    out
}
