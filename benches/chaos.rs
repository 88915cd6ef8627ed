//! Hostile peers beside verified clients, side by side for three servers:
//! `cargo bench --bench chaos` (`-- --quick` for a short run that writes
//! under `target/bench-partial/`).
//!
//! For each server (the reactor, the blocking server's thread per
//! connection, and the tokio `current_thread` echo server from tokio's
//! documentation), two runs on a fresh server pinned to CPU 0, with the
//! load generator pinned to CPU 1: a calm one, 1,000 verified clients in a
//! closed loop for 30 s, and the same with 1,000 hostile peers of every
//! TCP kind beside them (`bench --chaos 1000`). The table says what the
//! honest clients saw under chaos against the calm run (throughput, p99,
//! errors, wrong bytes), what the server's memory did (before, peak, 1 s
//! after the peers left), and what the hostile peers met, kind by kind.
//!
//! The targets (issue "hostile peers at scale"): for the reactor, 0 honest
//! errors and mismatches, p99 within 2x of the calm run, RSS peak within
//! `--max-pending` (64 KiB) × the never-reading peers + 16 MiB, and back
//! within 5 MiB of the start after the peers leave.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use common::{
    Running, ServerSpec, bench_json, build_release, cannot_run, machine_line, publish,
    require_tools,
};
use reactor_echo::bench::chaos::kind::Kind;

type Sample = BTreeMap<String, f64>;

/// `--max-pending`'s default: what the reactor may owe a peer that does
/// not read.
const MAX_PENDING_KIB: f64 = 64.0;

struct Options {
    honest: usize,
    hostile: usize,
    duration: f64,
    complete: bool,
}

fn options() -> Options {
    let quick = std::env::args().any(|a| a == "--quick");
    if quick {
        Options {
            honest: 200,
            hostile: 200,
            duration: 4.0,
            complete: false,
        }
    } else {
        Options {
            honest: 1000,
            hostile: 1000,
            duration: 30.0,
            complete: true,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--tokio-server") {
        let flavour = args.get(pos + 1).map_or("ct", String::as_str);
        return common::tokio_echo::serve(flavour == "mt");
    }
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["taskset"]) {
        cannot_run("chaos", &why);
    }
    let bin = build_release(&root);
    let me = std::env::current_exe()
        .expect("current exe")
        .display()
        .to_string();
    let tcp_only = ["--tcp", "127.0.0.1:0", "--udp", "off"];
    let servers = [
        ServerSpec::new(
            "reactor (serve)",
            &bin,
            &[&["serve"][..], &tcp_only].concat(),
        ),
        ServerSpec::new(
            "blocking threads",
            &bin,
            &[&["blocking", "--model", "threads"][..], &tcp_only].concat(),
        ),
        ServerSpec::new("tokio current_thread", &me, &["--tokio-server", "ct"]),
    ];
    let honest = o.honest.to_string();
    let hostile = o.hostile.to_string();
    let mut rows = Vec::new();
    for server in &servers {
        // A fresh server for each run, so that "before" is a clean start.
        let calm = run(&bin, server, &["--connections", &honest], o.duration);
        let chaos = run(
            &bin,
            server,
            &["--connections", &honest, "--chaos", &hostile],
            o.duration,
        );
        eprintln!(
            "{:<22} calm {:>8.0} msg/s p99 {:>6} us | chaos {:>8.0} msg/s p99 {:>6} us errors {} mismatches {} hostile wrong {} rss {}/{}/{} KiB",
            server.name,
            calm.get("messages_per_sec").copied().unwrap_or(0.0),
            calm.get("latency_us.p99").copied().unwrap_or(0.0),
            chaos.get("messages_per_sec").copied().unwrap_or(0.0),
            chaos.get("latency_us.p99").copied().unwrap_or(0.0),
            chaos.get("errors").copied().unwrap_or(f64::NAN),
            chaos.get("mismatches").copied().unwrap_or(f64::NAN),
            chaos.get("chaos.mismatches").copied().unwrap_or(f64::NAN),
            chaos.get("server_rss_kib.before").copied().unwrap_or(0.0),
            chaos.get("server_rss_kib.peak").copied().unwrap_or(0.0),
            chaos.get("server_rss_kib.after").copied().unwrap_or(0.0),
        );
        rows.push((server.name.clone(), calm, chaos));
    }
    let table = render(&o, &rows);
    print!("{table}");
    let path = publish(&root, "chaos.md", &table, o.complete);
    eprintln!("wrote {}", path.display());
}

/// One run on a fresh server, with its PID for the CPU and memory figures.
fn run(bin: &str, server: &ServerSpec, args: &[&str], duration: f64) -> Sample {
    let running = Running::start(server, &[]);
    thread::sleep(Duration::from_millis(200));
    let pid = running.server_pid().to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--server-pid", &pid]);
    let sample = bench_json(bin, running.port, &all, duration, 2.0);
    running.stop();
    sample
}

fn render(o: &Options, rows: &[(String, Sample, Sample)]) -> String {
    let get = |s: &Sample, k: &str| s.get(k).copied().unwrap_or(f64::NAN);
    let mib = |kib: f64| kib / 1024.0;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Hostile peers beside verified clients\n\n\
         `cargo bench --bench chaos`: {} verified clients (closed loop, 64 B, pipeline 1) for {} s \
         after 2 s of warm-up, alone (calm) and beside {} hostile peers of the seven TCP kinds in equal \
         shares (`bench --chaos {}`); each run on a fresh server pinned to CPU 0, the load generator \
         (honest and hostile threads) pinned to CPU 1. {}.\n",
        o.honest,
        o.duration,
        o.hostile,
        o.hostile,
        machine_line()
    );
    let _ = writeln!(t, "## What the verified clients saw\n");
    let _ = writeln!(
        t,
        "| server | calm msg/s | chaos msg/s | ratio | calm p99 (us) | chaos p99 (us) | p99 ratio | errors | wrong bytes | hostile wrong bytes |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, calm, chaos) in rows {
        let _ = writeln!(
            t,
            "| {name} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
            get(calm, "messages_per_sec"),
            get(chaos, "messages_per_sec"),
            get(chaos, "messages_per_sec") / get(calm, "messages_per_sec"),
            get(calm, "latency_us.p99"),
            get(chaos, "latency_us.p99"),
            get(chaos, "latency_us.p99") / get(calm, "latency_us.p99"),
            get(chaos, "errors"),
            get(chaos, "mismatches"),
            get(chaos, "chaos.mismatches"),
        );
    }
    let _ = writeln!(t, "\n## The server's memory under chaos\n");
    let _ = writeln!(
        t,
        "Resident memory (`VmRSS`) before the run, the largest sample (every 100 ms), and 1 s after every peer had left. \
         The bound is the reactor's target: `--max-pending` ({MAX_PENDING_KIB} KiB) × the never-reading peers + 16 MiB \
         above the start.\n"
    );
    let _ = writeln!(
        t,
        "| server | before (MiB) | peak (MiB) | bound (MiB) | after (MiB) | kept (MiB) |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for (name, _, chaos) in rows {
        let before = get(chaos, "server_rss_kib.before");
        let bound = before + MAX_PENDING_KIB * get(chaos, "chaos_never_read.peers") + 16.0 * 1024.0;
        let _ = writeln!(
            t,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            mib(before),
            mib(get(chaos, "server_rss_kib.peak")),
            mib(bound),
            mib(get(chaos, "server_rss_kib.after")),
            mib(get(chaos, "server_rss_kib.after") - before),
        );
    }
    let _ = writeln!(t, "\n## What the hostile peers met\n");
    let _ = writeln!(
        t,
        "Per kind: scripts completed (what one is: `docs/reliability.md`), then connections the server closed / reset \
         when the peer had not asked, then wrong or undelivered reply bytes.\n"
    );
    let mut header = "| kind |".to_owned();
    let mut rule = "|---|".to_owned();
    for (name, _, _) in rows {
        let _ = write!(header, " {name} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(t, "{header}\n{rule}");
    for kind in Kind::TCP {
        let key = kind.json_key();
        let mut line = format!("| {} ({}) |", kind.name(), kind.cycle_noun());
        for (_, _, chaos) in rows {
            let _ = write!(
                line,
                " {} · {}/{} · {} |",
                get(chaos, &format!("{key}.cycles")),
                get(chaos, &format!("{key}.server_closed")),
                get(chaos, &format!("{key}.server_reset")),
                get(chaos, &format!("{key}.mismatches")),
            );
        }
        let _ = writeln!(t, "{line}");
    }
    let _ = writeln!(t, "\n## The reactor against its targets\n");
    if let Some((_, calm, chaos)) = rows.first() {
        let before = get(chaos, "server_rss_kib.before");
        let bound = before + MAX_PENDING_KIB * get(chaos, "chaos_never_read.peers") + 16.0 * 1024.0;
        let checks = [
            (
                "0 honest errors and 0 wrong bytes",
                get(chaos, "errors") == 0.0 && get(chaos, "mismatches") == 0.0,
            ),
            (
                "0 wrong bytes for the hostile peers that check",
                get(chaos, "chaos.mismatches") == 0.0,
            ),
            (
                "honest p99 within 2x of the calm run",
                get(chaos, "latency_us.p99") <= 2.0 * get(calm, "latency_us.p99"),
            ),
            (
                "RSS peak within the bound",
                get(chaos, "server_rss_kib.peak") <= bound,
            ),
            (
                "RSS back within 5 MiB of the start",
                get(chaos, "server_rss_kib.after") <= before + 5.0 * 1024.0,
            ),
        ];
        for (what, met) in checks {
            let _ = writeln!(t, "- {what}: **{}**", if met { "met" } else { "NOT met" });
        }
    }
    t
}
