//! The blocking server beside the reactor, measured in one run:
//! `cargo bench --bench blocking_vs_reactor`.
//!
//! For `serve`, `blocking --model threads` and `blocking --model iterative`:
//!
//! * syscalls per echoed message (`strace -f -c`, 100,000 minus 10,000
//!   messages of 64 bytes, so start-up cancels out), on 1 connection and on
//!   100 (not for iterative, which serves one connection at a time);
//! * the cost of 1,000 idle connections: the server's RSS growth per
//!   connection and its thread count, and how many of the 1,000 then get a
//!   verified round trip within 2 s;
//! * messages/s with 1 and 100 connections (64-byte messages, 3 s), and how
//!   many of the 100 connections were answered at all;
//! * what a peak leaves behind: the RSS still held 1.5 s after 5,000
//!   connections, opened at once with a round trip each, have closed (not
//!   for iterative, which cannot hold them at once).
//!
//! Server on CPU 0, the C load generator on CPU 1. Needs gcc, taskset and
//! strace, and the C sources (`REACTOR_ECHO_ANCHORS`, default
//! `../shared/anchors`); without them it says so in one line and exits 1.
//! Prints a markdown table and writes it to
//! `docs/benchmarks/blocking_vs_reactor.md`, which
//! `docs/blocking-vs-reactor.md` quotes.

mod common;

use std::path::PathBuf;

use common::{
    Server, ServerSpec, build_anchors, build_release, cannot_run, closed_loop,
    idle_cost_with_loadgen, machine_line, publish, require_tools, rss_kept_after_peak,
    syscalls_per_message,
};

const IDLE_CONNS: usize = 1000;
const PEAK_CONNS: usize = 5000;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["gcc", "taskset", "strace"]) {
        cannot_run("blocking_vs_reactor", &why);
    }
    let bin = build_release(&root);
    let lg = build_anchors(&root)
        .unwrap_or_else(|why| cannot_run("blocking_vs_reactor", &why))
        .loadgen;
    let kind = |name: &str, sub: &[&str]| {
        ServerSpec::new(
            name,
            &bin,
            &[sub, &["--tcp", "127.0.0.1:0", "--udp", "off"]].concat(),
        )
    };
    let kinds = [
        kind("serve (reactor)", &["serve"]),
        kind(
            "blocking --model threads",
            &["blocking", "--model", "threads"],
        ),
        kind(
            "blocking --model iterative",
            &["blocking", "--model", "iterative"],
        ),
    ];

    let mut out = format!(
        "One run; server on CPU 0, the C load generator on CPU 1; {}.\n\n",
        machine_line()
    );
    out += &format!(
        "| server | syscalls/msg, 1 conn | syscalls/msg, 100 conns | RSS/conn at {IDLE_CONNS} idle | threads at {IDLE_CONNS} idle | idle round trips answered | msg/s, 1 conn | msg/s, 100 conns | conns answered of 100 | RSS kept after {PEAK_CONNS} at once |\n"
    );
    out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (i, k) in kinds.iter().enumerate() {
        let is_iterative = i == 2;
        let one = syscalls_per_message(k, &lg, 1).map_or("failed".into(), |v| format!("{v:.3}"));
        // 100 connections at once never finish on the iterative server: it
        // serves one, and the other 99 wait in the backlog.
        let hundred = if is_iterative {
            "cannot finish".to_owned()
        } else {
            syscalls_per_message(k, &lg, 100).map_or("failed".into(), |v| format!("{v:.3}"))
        };

        let idle =
            idle_cost_with_loadgen(k, &lg, IDLE_CONNS, &["--idle", "1", "--rtt-timeout", "2"]);

        let mut rates = Vec::new();
        let mut answered = 0.0;
        for conns in [1, 100] {
            let server = Server::start_pinned(k, &[]);
            let r = closed_loop(&lg, server.port(), conns, 3.0);
            server.end();
            let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
            rates.push(get("msgs_per_s"));
            answered = get("conns_established") - get("conns_stalled");
        }
        let kept = if is_iterative {
            "cannot hold them".to_owned()
        } else {
            format!("{} KiB", rss_kept_after_peak(k, &lg, PEAK_CONNS) >> 10)
        };
        out += &format!(
            "| {} | {one} | {hundred} | {:.0} B | {} | {} of {IDLE_CONNS} | {:.0} | {:.0} | {answered:.0} | {kept} |\n",
            k.name,
            idle.bytes_per_connection,
            idle.threads,
            idle.round_trips_ok,
            rates[0],
            rates[1]
        );
    }
    out += "\n(msg/s, 100 conns counts every verified round trip in the window, whichever connection made it: \
            for the iterative server that is the one connection it serves, while the others wait in the backlog, \
            as the last column shows.)\n";
    print!("{out}");
    let path = publish(&root, "blocking_vs_reactor.md", &out, true);
    eprintln!("wrote {}", path.display());
}
