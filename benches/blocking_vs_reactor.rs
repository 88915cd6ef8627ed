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
//! * messages/s with 1 and 100 connections (64-byte messages, 3 s).
//!
//! Server on CPU 0, the C load generator from `../shared/anchors/` on CPU 1.
//! Prints a markdown table; `docs/blocking-vs-reactor.md` quotes it.

mod common;

use std::path::PathBuf;

use common::{
    Running, ServerKind, build_anchors, build_release, closed_loop, idle_cost_with_loadgen,
    syscalls_per_message,
};

const IDLE_CONNS: usize = 1000;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&root);
    let Some((_, lg)) = build_anchors(&root) else {
        return;
    };
    let kind = |name: &'static str, sub: &[&str]| ServerKind {
        name,
        command: [bin.as_str()]
            .iter()
            .chain(sub)
            .chain(&["--tcp", "127.0.0.1:0", "--udp", "off"])
            .map(|s| s.to_string())
            .collect(),
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

    println!(
        "| server | syscalls/msg, 1 conn | syscalls/msg, 100 conns | RSS/conn at {IDLE_CONNS} idle | threads at {IDLE_CONNS} | round trips ok | msg/s, 1 conn | msg/s, 100 conns |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, k) in kinds.iter().enumerate() {
        let is_iterative = i == 2;
        let one = syscalls_per_message(k, &lg, 1).unwrap_or(f64::NAN);
        let hundred = if is_iterative {
            f64::NAN
        } else {
            syscalls_per_message(k, &lg, 100).unwrap_or(f64::NAN)
        };

        // Idle cost.
        let idle =
            idle_cost_with_loadgen(k, &lg, IDLE_CONNS, &["--idle", "1", "--rtt-timeout", "2"]);
        let (per_conn, threads, ok) =
            (idle.bytes_per_connection, idle.threads, idle.round_trips_ok);

        // Throughput.
        let mut rates = Vec::new();
        for conns in [1, 100] {
            let server = Running::start(k, &[]);
            let r = closed_loop(&lg, server.port, conns, 3.0);
            server.stop();
            rates.push(r.get("msgs_per_s").copied().unwrap_or(f64::NAN));
        }
        println!(
            "| {} | {one:.3} | {hundred:.3} | {per_conn:.0} B | {threads} | {ok} of {IDLE_CONNS} | {:.0} | {:.0} |",
            k.name, rates[0], rates[1]
        );
    }
}
