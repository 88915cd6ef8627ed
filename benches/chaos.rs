//! Hostile peers beside verified clients, side by side for four servers:
//! `cargo bench --bench chaos` (`-- --quick` for a short run that writes
//! under `target/bench-partial/`).
//!
//! For each server (the reactor, the proactor, the blocking server's thread
//! per connection, and the tokio `current_thread` echo server from tokio's
//! documentation), runs on a fresh server pinned to CPU 0, with the load
//! generator pinned to CPU 1: 1,000 verified clients for 30 s, calm and
//! with 1,000 hostile peers of every TCP kind beside them (`bench --chaos
//! 1000`), first in an open loop at a fixed rate, then in a closed loop.
//!
//! Why both. In a closed loop at saturation each client sends as soon as
//! its reply is back, so by Little's law the latency is connections divided
//! by throughput: anything that slows the load generator (and the hostile
//! peers' thread shares its core) shows as server latency. An open loop at
//! a rate every server sustains measures from each message's scheduled
//! time, so its p99 is the server's responsiveness under chaos: that is the
//! run the targets are judged by. The closed loop shows what capacity is
//! left. The tables say what the honest clients saw (throughput, p99,
//! errors, wrong bytes), what the server's memory did (before, peak, 1 s
//! after the peers left), and what the hostile peers met, kind by kind.
//!
//! The targets (issue "hostile peers at scale"): for the reactor, 0 honest
//! errors and mismatches, p99 within 2x of the calm run, RSS peak within
//! `--max-pending` (64 KiB) × the never-reading peers + 16 MiB, and back
//! within 5 MiB of the start after the peers leave. The proactor keeps the
//! same contract (`--max-pending` bounds what it owes a peer too), so it is
//! checked against the same targets.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use common::{
    Server, ServerSpec, bench_json, build_release, cannot_run, machine_line, proactor_spec,
    publish, reactor_spec, require_tools, threads_spec,
};
use reactor_echo::bench::chaos::kind::Kind;

type Sample = BTreeMap<String, f64>;

/// `--max-pending`'s default: what the reactor may owe a peer that does
/// not read.
const MAX_PENDING_KIB: f64 = 64.0;

/// The servers judged against the targets: the first rows (the reactor and
/// the proactor), each with its section's title.
const JUDGED: [&str; 2] = [
    "The reactor against its targets",
    "The proactor against the same targets",
];

struct Options {
    honest: usize,
    hostile: usize,
    duration: f64,
    /// The open loop's rate, in messages per second (all clients).
    rate: f64,
    complete: bool,
}

fn options() -> Options {
    let quick = std::env::args().any(|a| a == "--quick");
    if quick {
        Options {
            honest: 200,
            hostile: 200,
            duration: 4.0,
            rate: 20_000.0,
            complete: false,
        }
    } else {
        Options {
            honest: 1000,
            hostile: 1000,
            duration: 30.0,
            rate: 50_000.0,
            complete: true,
        }
    }
}

fn main() {
    if common::tokio_echo::serve_if_asked() {
        return;
    }
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["taskset"]) {
        cannot_run("chaos", &why);
    }
    let bin = build_release(&root);
    let servers = [
        reactor_spec(&bin),
        proactor_spec(&bin),
        threads_spec(&bin),
        common::tokio_echo::spec(false),
    ];
    let honest = o.honest.to_string();
    let hostile = o.hostile.to_string();
    let rate = o.rate.to_string();
    let mut rows = Vec::new();
    for server in &servers {
        let mut row = Row {
            name: server.name.clone(),
            ..Row::default()
        };
        for (open_loop, calm, chaos) in [
            (true, &mut row.calm_open, &mut row.chaos_open),
            (false, &mut row.calm_closed, &mut row.chaos_closed),
        ] {
            let mut args = vec!["--connections", honest.as_str()];
            if open_loop {
                args.extend_from_slice(&["--rate", &rate]);
            }
            // A fresh server for each run, so that "before" is a clean start.
            *calm = run(&bin, server, &args, o.duration);
            args.extend_from_slice(&["--chaos", &hostile]);
            *chaos = run(&bin, server, &args, o.duration);
            eprintln!(
                "{:<22} {:<6} calm {:>8.0} msg/s p99 {:>6} us | chaos {:>8.0} msg/s p99 {:>6} us errors {} mismatches {} hostile wrong {} rss {}/{}/{} KiB",
                server.name,
                if open_loop { "open" } else { "closed" },
                get(calm, "messages_per_sec"),
                get(calm, "latency_us.p99"),
                get(chaos, "messages_per_sec"),
                get(chaos, "latency_us.p99"),
                get(chaos, "errors"),
                get(chaos, "mismatches"),
                get(chaos, "chaos.mismatches"),
                get(chaos, "server_rss_kib.before"),
                get(chaos, "server_rss_kib.peak"),
                get(chaos, "server_rss_kib.after"),
            );
        }
        rows.push(row);
    }
    let table = render(&o, &rows);
    print!("{table}");
    let path = publish(&root, "chaos.md", &table, o.complete);
    eprintln!("wrote {}", path.display());
}

/// One server's four runs.
#[derive(Default)]
struct Row {
    name: String,
    calm_open: Sample,
    chaos_open: Sample,
    calm_closed: Sample,
    chaos_closed: Sample,
}

/// A figure of a report, NaN if it is missing.
fn get(s: &Sample, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(f64::NAN)
}

/// One run on a fresh server, with its PID for the CPU and memory figures.
fn run(bin: &str, server: &ServerSpec, args: &[&str], duration: f64) -> Sample {
    let running = Server::start_pinned(server, &[]);
    thread::sleep(Duration::from_millis(200));
    let pid = running.server_pid().to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--server-pid", &pid]);
    let sample = bench_json(bin, running.port(), &all, duration, 2.0);
    running.end();
    sample
}

fn render(o: &Options, rows: &[Row]) -> String {
    let mib = |kib: f64| kib / 1024.0;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Hostile peers beside verified clients\n\n\
         `cargo bench --bench chaos`: {} verified clients (64 B, pipeline 1) for {} s after 2 s of warm-up, \
         alone (calm) and beside {} hostile peers of the seven TCP kinds in equal shares \
         (`bench --chaos {}`), in an open loop at {} msg/s and in a closed loop; each run on a fresh server \
         pinned to CPU 0, the load generator (its honest and hostile threads) pinned to CPU 1. {}.\n",
        o.honest,
        o.duration,
        o.hostile,
        o.hostile,
        o.rate,
        machine_line()
    );
    let _ = writeln!(
        t,
        "## What the verified clients saw\n\n\
         Open loop at {} msg/s (latency from each message's scheduled time: the server's responsiveness; the \
         targets are judged here), then closed loop (capacity: there the hostile thread's share of the load \
         generator's core shows as lower throughput and, by Little's law, as latency too). Errors and wrong \
         bytes: both chaos runs together.\n",
        o.rate
    );
    let _ = writeln!(
        t,
        "| server | open: msg/s calm / chaos | open: p99 calm / chaos (us) | p99 ratio | closed: msg/s calm / chaos | ratio | closed: p99 calm / chaos (us) | errors | wrong bytes | hostile wrong bytes |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let sum = |k: &str| get(&r.chaos_open, k) + get(&r.chaos_closed, k);
        let _ = writeln!(
            t,
            "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} | {:.0} / {:.0} | {:.2} | {:.0} / {:.0} | {} | {} | {} |",
            r.name,
            get(&r.calm_open, "messages_per_sec"),
            get(&r.chaos_open, "messages_per_sec"),
            get(&r.calm_open, "latency_us.p99"),
            get(&r.chaos_open, "latency_us.p99"),
            get(&r.chaos_open, "latency_us.p99") / get(&r.calm_open, "latency_us.p99"),
            get(&r.calm_closed, "messages_per_sec"),
            get(&r.chaos_closed, "messages_per_sec"),
            get(&r.chaos_closed, "messages_per_sec") / get(&r.calm_closed, "messages_per_sec"),
            get(&r.calm_closed, "latency_us.p99"),
            get(&r.chaos_closed, "latency_us.p99"),
            sum("errors"),
            sum("mismatches"),
            sum("chaos.mismatches"),
        );
    }
    let _ = writeln!(t, "\n## The server's memory under chaos\n");
    let _ = writeln!(
        t,
        "Resident memory (`Rss`, from `smaps_rollup`) before the run, the largest sample (every 100 ms), and 1 s after every peer had left, \
         in the open-loop chaos run. The bound is the reactor's and the proactor's target: `--max-pending` ({MAX_PENDING_KIB} KiB) × the \
         never-reading peers + 16 MiB above the start.\n"
    );
    let _ = writeln!(
        t,
        "| server | before (MiB) | peak (MiB) | bound (MiB) | after (MiB) | kept (MiB) |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let c = &r.chaos_open;
        let before = get(c, "server_rss_kib.before");
        let _ = writeln!(
            t,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.name,
            mib(before),
            mib(get(c, "server_rss_kib.peak")),
            mib(bound(c)),
            mib(get(c, "server_rss_kib.after")),
            mib(get(c, "server_rss_kib.after") - before),
        );
    }
    let _ = writeln!(t, "\n## What the hostile peers met\n");
    let _ = writeln!(
        t,
        "In the open-loop chaos run, per kind: scripts completed (what one is: `docs/reliability.md`) · connections \
         the server closed / reset when the peer had not asked · wrong or undelivered reply bytes.\n"
    );
    let mut header = "| kind |".to_owned();
    let mut rule = "|---|".to_owned();
    for r in rows {
        let _ = write!(header, " {} |", r.name);
        rule.push_str("---:|");
    }
    let _ = writeln!(t, "{header}\n{rule}");
    for kind in Kind::TCP {
        let key = kind.json_key();
        let mut line = format!("| {} ({}) |", kind.name(), kind.cycle_noun());
        for r in rows {
            let c = &r.chaos_open;
            let _ = write!(
                line,
                " {} · {}/{} · {} |",
                get(c, &format!("{key}.cycles")),
                get(c, &format!("{key}.server_closed")),
                get(c, &format!("{key}.server_reset")),
                get(c, &format!("{key}.mismatches")),
            );
        }
        let _ = writeln!(t, "{line}");
    }
    for (title, r) in JUDGED.iter().zip(rows) {
        let _ = writeln!(t, "\n## {title}\n");
        let (calm, chaos) = (&r.calm_open, &r.chaos_open);
        let checks = [
            (
                "0 honest errors and 0 wrong bytes (both chaos runs)",
                get(&r.chaos_open, "errors") + get(&r.chaos_closed, "errors") == 0.0
                    && get(&r.chaos_open, "mismatches") + get(&r.chaos_closed, "mismatches") == 0.0,
            ),
            (
                "0 wrong bytes for the hostile peers that check",
                get(&r.chaos_open, "chaos.mismatches") + get(&r.chaos_closed, "chaos.mismatches")
                    == 0.0,
            ),
            (
                "honest p99 within 2x of the calm run (open loop)",
                get(chaos, "latency_us.p99") <= 2.0 * get(calm, "latency_us.p99"),
            ),
            (
                "RSS peak within the bound",
                get(chaos, "server_rss_kib.peak") <= bound(chaos),
            ),
            (
                "RSS back within 5 MiB of the start",
                get(chaos, "server_rss_kib.after")
                    <= get(chaos, "server_rss_kib.before") + 5.0 * 1024.0,
            ),
        ];
        for (what, met) in checks {
            let _ = writeln!(t, "- {what}: **{}**", if met { "met" } else { "NOT met" });
        }
    }
    t
}

/// The reactor's memory target for a chaos run, in KiB: the start, plus
/// `--max-pending` for each never-reading peer, plus 16 MiB.
fn bound(chaos: &Sample) -> f64 {
    get(chaos, "server_rss_kib.before")
        + MAX_PENDING_KIB * get(chaos, "chaos_never_read.peers")
        + 16.0 * 1024.0
}
