//! What each of the proactor's choices costs or saves, measured: `cargo
//! bench --bench proactor_choices`.
//!
//! `docs/proactor.md` says why the proactor is built as it is: one
//! `io_uring_enter` per loop turn, a single issuer with deferred task work,
//! a multishot recv per connection, 64 KiB provided buffers the kernel
//! consumes incrementally, plain (copying) sends, no SQPOLL. Each choice
//! undone is one patch in `benches/proactor_choices/` (most a few lines of
//! `src/proactor/ring.rs` or `src/proactor.rs`, with comments that say what
//! they change: read them): among them `whole-buffers.patch`, the 4,096
//! whole 4 KiB buffers the proactor had before, and `large-buffers.patch`,
//! the same 64 KiB buffers taken whole, the control. So is each feature
//! the minimal C server lacks that did not pay, added: fixed files
//! (`fixed-files.patch` registers each connection's descriptor with the
//! ring, so that its operations skip the file-table lookup), a registered
//! ring descriptor (`registered-ring.patch`: each `io_uring_enter` names
//! the ring by an index), and recv bundles (`recv-bundles.patch`: one
//! completion for several provided buffers, on whole 4 KiB buffers).
//! This bench builds the proactor as it is, and once with each
//! patch applied (a copy of the project under `target/proactor-choices/`,
//! the copies sharing one target folder), then measures every build in
//! interleaved order (A B C ... A B C ...), as `benches/anchors.rs`
//! measures servers:
//!
//! * messages/s and p99/p50 at 100 and at 1,000 connections (the C load
//!   generator, closed loop, 64-byte messages, every reply byte verified),
//!   medians of the repeats, with the ratio to the build as it is;
//! * bulk: megabytes a second echoed on 10 connections that each keep four
//!   16 KiB messages in flight (the same generator, every byte verified),
//!   the server's CPU time per megabyte, and the recv completions per MiB
//!   received (from the server's stats line): where bundles and larger
//!   buffers act, since a 64-byte message fills less than one buffer;
//! * the server's CPU time per message at 1,000 connections, user + system
//!   (an SQPOLL thread is one of the server's threads: its time counts),
//!   and its RSS at the end of that run;
//! * syscalls per echoed message at 1,000 connections (`strace -f -c`, as in
//!   the anchors table);
//! * user-space instructions per message (callgrind, as in the cost table);
//! * what a peer that sends and never reads can make the server hold:
//!   200 such peers (a 4 KiB receive buffer each) write 12 MiB each, and
//!   the server's RSS growth at the peak, divided by 200, is the memory
//!   each one holds (the bound is `--max-pending`, 64 KiB by default, plus
//!   what a recv already in flight delivers).
//!
//! The server is pinned to CPU 0, the load generator to CPU 1.
//!
//! Options (after `--`): `--repeats N` (default 5), `--duration S`
//! (default 5), `--quick` (1 repeat, 2 s, no strace or callgrind: a smoke
//! test of every build). Needs gcc, taskset, git, strace and valgrind, and
//! the C sources (`common::anchors_dir`); without one it says which in one
//! line and exits 1. A complete run writes `docs/benchmarks/proactor_choices.md`;
//! any other run writes under `target/bench-partial/`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use common::{
    Server, ServerSpec, build_anchors, build_proactor_choice, cannot_run, instructions_per_message,
    machine_line, median, proactor_spec, publish, require_tools, run_args_with_cpu_split,
    run_with_cpu_split, syscalls_per_message,
};

/// One build of the proactor: as it is, or with one choice undone.
struct Choice {
    /// The patch in `benches/proactor_choices/` that undoes the choice (or
    /// adds the feature).
    patch: Option<&'static str>,
    /// What the build does, for the table.
    name: &'static str,
}

const CHOICES: [Choice; 12] = [
    Choice {
        patch: None,
        name: "as built",
    },
    Choice {
        patch: Some("plain-setup"),
        name: "plain ring: no single issuer, no deferred task work",
    },
    Choice {
        patch: Some("submit-each-entry"),
        name: "an `io_uring_enter` for each entry",
    },
    Choice {
        patch: Some("single-shot-recv"),
        name: "single-shot recv, armed again for each message",
    },
    Choice {
        patch: Some("zero-copy-send"),
        name: "zero-copy send (`SEND_ZC`)",
    },
    Choice {
        patch: Some("sqpoll"),
        name: "SQPOLL: a kernel thread submits",
    },
    Choice {
        patch: Some("no-byte-limit"),
        name: "multishot recv without a byte limit (backpressure by the cancel alone)",
    },
    Choice {
        patch: Some("fixed-files"),
        name: "fixed files: a connection's recv and sends name a registered file",
    },
    Choice {
        patch: Some("registered-ring"),
        name: "registered ring: `io_uring_enter` names the ring by an index",
    },
    Choice {
        patch: Some("recv-bundles"),
        name: "recv bundles: one completion for several provided buffers",
    },
    Choice {
        patch: Some("whole-buffers"),
        name: "4,096 whole buffers of 4 KiB, not 256 of 64 KiB consumed incrementally",
    },
    Choice {
        patch: Some("large-buffers"),
        name: "the same 64 KiB buffers, each taken whole",
    },
];

/// The connection counts of the messages/s columns; the CPU, syscall and
/// instruction columns are at the last.
const CONNS: [usize; 2] = [100, 1_000];

/// The bulk run: connections, message size, messages in flight on each.
const BULK_CONNS: usize = 10;
const BULK_SIZE: usize = 16_384;
const BULK_PIPELINE: usize = 4;

/// The C load generator's arguments for the bulk run.
fn bulk_args(duration: f64) -> Vec<String> {
    common::strings(&[
        "--conns",
        &BULK_CONNS.to_string(),
        "--size",
        &BULK_SIZE.to_string(),
        "--pipeline",
        &BULK_PIPELINE.to_string(),
        "--duration",
        &duration.to_string(),
        "--warmup",
        "1",
    ])
}

struct Options {
    repeats: usize,
    duration: u64,
    quick: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| -> Option<u64> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        repeats: value("--repeats").map_or(if quick { 1 } else { 5 }, |n| n as usize),
        duration: value("--duration").unwrap_or(if quick { 2 } else { 5 }),
        quick,
    }
}

fn main() {
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools: &[&str] = if o.quick {
        &["gcc", "taskset", "git"]
    } else {
        &["gcc", "taskset", "git", "strace", "valgrind"]
    };
    if let Err(why) = require_tools(tools) {
        cannot_run("proactor_choices", &why);
    }
    let lg = build_anchors(&root)
        .unwrap_or_else(|why| cannot_run("proactor_choices", &why))
        .loadgen;
    let builds: Vec<ServerSpec> = CHOICES
        .iter()
        .map(|choice| {
            let bin =
                build(&root, choice).unwrap_or_else(|why| cannot_run("proactor_choices", &why));
            ServerSpec {
                name: choice.name.to_owned(),
                ..proactor_spec(&bin)
            }
        })
        .collect();

    // samples[build][metric]
    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); builds.len()];
    for repeat in 0..o.repeats {
        for (k, spec) in builds.iter().enumerate() {
            for conns in CONNS {
                let server = Server::start_pinned(spec, &[]);
                let r = run_with_cpu_split(&lg, &server, conns, o.duration as f64);
                let rss = server.rss_bytes() as f64;
                server.end();
                let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
                eprintln!(
                    "repeat {repeat} {:<52} {conns:>5} conns: {:>9.0} msg/s p50 {:>7.1} us p99 {:>7.1} us, {} errors {} mismatches, server {:.2} user + {:.2} system us/msg",
                    spec.name,
                    get("msgs_per_s"),
                    get("lat_p50_us"),
                    get("lat_p99_us"),
                    get("errors"),
                    get("mismatches"),
                    get(common::USER_US),
                    get(common::SYSTEM_US),
                );
                let m = &mut samples[k];
                for (key, value) in [
                    ("msgs", get("msgs_per_s")),
                    ("p99/p50", get("lat_p99_us") / get("lat_p50_us")),
                    ("wrong", get("errors") + get("mismatches")),
                    ("user", get(common::USER_US)),
                    ("system", get(common::SYSTEM_US)),
                    ("rss", rss),
                ] {
                    m.entry(format!("{key}@{conns}")).or_default().push(value);
                }
            }
            let bulk = bulk_run(&lg, spec, o.duration as f64);
            eprintln!(
                "repeat {repeat} {:<52} bulk: {:>7.1} MB/s, server {:.0} us/MB, {:.1} recv completions/MiB, {} wrong",
                spec.name, bulk.mb_per_s, bulk.cpu_us_per_mb, bulk.recvs_per_mib, bulk.wrong
            );
            let m = &mut samples[k];
            for (key, value) in [
                ("bulk", bulk.mb_per_s),
                ("bulk cpu", bulk.cpu_us_per_mb),
                ("bulk recvs", bulk.recvs_per_mib),
                ("wrong@bulk", bulk.wrong),
            ] {
                m.entry(key.to_owned()).or_default().push(value);
            }
        }
    }
    for (k, spec) in builds.iter().enumerate() {
        let held = held_by_never_reading_peers(spec);
        eprintln!("{:<52} {held:.0} B held per never-reading peer", spec.name);
        samples[k].entry("held".into()).or_default().push(held);
    }
    let last = CONNS[CONNS.len() - 1];
    let mut counted: Vec<(Option<f64>, Option<f64>)> = Vec::new();
    for spec in &builds {
        if o.quick {
            counted.push((None, None));
            continue;
        }
        let syscalls = syscalls_per_message(spec, &lg, last);
        let instructions = instructions_per_message(spec, &lg, 10, 20_000).map(|i| i.per_message);
        eprintln!(
            "{:<52} syscalls/msg {syscalls:?}, instructions/msg {instructions:?}",
            spec.name
        );
        counted.push((syscalls, instructions));
    }

    let table = table(&builds, &samples, &counted, &o);
    print!("{table}");
    let written = publish(&root, "proactor_choices.md", &table, !o.quick);
    eprintln!("wrote {}", written.display());
}

/// What one bulk run measured.
struct Bulk {
    /// Megabytes (10^6 bytes) echoed a second.
    mb_per_s: f64,
    /// The server's user + system microseconds per megabyte.
    cpu_us_per_mb: f64,
    /// Recv completions per MiB received, from the server's stats line.
    recvs_per_mib: f64,
    /// The load generator's errors and wrong bytes.
    wrong: f64,
}

/// The bulk run against a fresh server of `spec`, stopped for its stats
/// line at the end.
fn bulk_run(lg: &Path, spec: &ServerSpec, duration: f64) -> Bulk {
    let server = Server::start_pinned(spec, &[]);
    let r = run_args_with_cpu_split(lg, &server, bulk_args(duration));
    let stats = server.stop_for_stats();
    let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
    let megabytes_per_message = BULK_SIZE as f64 / 1e6;
    Bulk {
        mb_per_s: get("msgs_per_s") * megabytes_per_message,
        cpu_us_per_mb: (get(common::USER_US) + get(common::SYSTEM_US)) / megabytes_per_message,
        recvs_per_mib: stats.map_or(f64::NAN, |s| {
            s.reads as f64 / (s.bytes_in as f64 / f64::from(1 << 20))
        }),
        wrong: get("errors") + get("mismatches"),
    }
}

/// Peers that send and never read (the test `memory_of_owed_bytes_is_given_back_after_the_peers_leave`
/// plays the same scene), and what each one makes the server hold.
const NEVER_READING_PEERS: usize = 200;
const BYTES_EACH: usize = 12 << 20;

/// The server's RSS growth at its peak while [`NEVER_READING_PEERS`] write
/// [`BYTES_EACH`] bytes each and read nothing, per peer, in bytes.
fn held_by_never_reading_peers(spec: &ServerSpec) -> f64 {
    let server = Server::start_pinned(spec, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port()));
    let payload = vec![b'x'; BYTES_EACH];
    let writers: Vec<_> = (0..NEVER_READING_PEERS)
        .map(|_| {
            let mut peer = connect_with_small_window(addr);
            let payload = payload.clone();
            thread::spawn(move || {
                // The server stops reading once it owes enough, and the
                // write times out: that is the point.
                let _ = peer.set_write_timeout(Some(Duration::from_secs(3)));
                let _ = peer.write_all(&payload);
                peer
            })
        })
        .collect();
    let mut peak = before;
    let mut peers = Vec::new();
    for writer in writers {
        peak = peak.max(server.rss_bytes());
        peers.extend(writer.join().ok());
    }
    // What reached the server's socket buffers before the writes timed out
    // is still being read: watch a second more.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        peak = peak.max(server.rss_bytes());
        thread::sleep(Duration::from_millis(50));
    }
    drop(peers);
    server.end();
    peak.saturating_sub(before) as f64 / NEVER_READING_PEERS as f64
}

/// A connection with a 4 KiB receive buffer, set before the handshake so
/// that the window it offers stays small: the server's replies pile up on
/// its side.
fn connect_with_small_window(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}

/// Builds `choice`: the project as it is, or a patched copy of it.
fn build(root: &Path, choice: &Choice) -> Result<String, String> {
    build_proactor_choice(root, choice.patch.as_slice())
}

/// The markdown table of the medians.
fn table(
    builds: &[ServerSpec],
    samples: &[BTreeMap<String, Vec<f64>>],
    counted: &[(Option<f64>, Option<f64>)],
    o: &Options,
) -> String {
    let med = |k: usize, key: &str| median(samples[k].get(key).cloned().unwrap_or_default());
    let last = CONNS[CONNS.len() - 1];
    let mut out = format!(
        "Medians of {} interleaved repeats, {} s each; server on CPU 0, the C load generator on CPU 1; {}.\n\n",
        o.repeats,
        o.duration,
        machine_line()
    );
    let mut head = String::from("| build |");
    for conns in CONNS {
        head += &format!(" msg/s @{conns} | p99/p50 @{conns} |");
    }
    head += &format!(
        " bulk MB/s | bulk server us/MB | bulk recv completions/MiB | wrong bytes and errors | server user + system us/msg @{last} | syscalls/msg @{last} | user-space instructions/msg | server RSS @{last} (MiB) | RSS held per never-reading peer (bytes) |\n"
    );
    out += &head;
    out += &format!("|---|{}\n", "---:|".repeat(CONNS.len() * 2 + 9));
    let fixed =
        |v: Option<f64>, places: usize| v.map_or("-".to_owned(), |v| format!("{v:.places$}"));
    for (k, spec) in builds.iter().enumerate() {
        let mut row = match CHOICES[k].patch {
            Some(patch) => format!("| {} (`{patch}`) |", spec.name),
            None => format!("| {} |", spec.name),
        };
        for conns in CONNS {
            let rate = med(k, &format!("msgs@{conns}"));
            let ratio = rate / med(0, &format!("msgs@{conns}"));
            row += &format!(
                " {rate:.0} ({ratio:.2}x) | {:.2} |",
                med(k, &format!("p99/p50@{conns}"))
            );
        }
        let bulk = med(k, "bulk");
        row += &format!(
            " {bulk:.0} ({:.2}x) | {:.0} | {:.1} |",
            bulk / med(0, "bulk"),
            med(k, "bulk cpu"),
            med(k, "bulk recvs")
        );
        let wrong: f64 = CONNS
            .iter()
            .map(|c| format!("wrong@{c}"))
            .chain(["wrong@bulk".to_owned()])
            .flat_map(|key| samples[k].get(&key).cloned().unwrap_or_default())
            .sum();
        let (user, system) = (
            med(k, &format!("user@{last}")),
            med(k, &format!("system@{last}")),
        );
        let (syscalls, instructions) = counted[k];
        row += &format!(
            " {wrong:.0} | {user:.2} + {system:.2} = {:.2} | {} | {} | {:.1} | {:.0} |\n",
            user + system,
            fixed(syscalls, 3),
            fixed(instructions, 0),
            med(k, &format!("rss@{last}")) / f64::from(1 << 20),
            med(k, "held")
        );
        out += &row;
    }
    out += &format!(
        "\n(The ratio after each messages/s and MB/s figure is to the build as it is, in the same run. Bulk: {BULK_CONNS} connections, each keeping {BULK_PIPELINE} messages of {BULK_SIZE} bytes in flight, MB = 10^6 bytes echoed; recv completions per MiB: the server's `reads` over its `bytes_in`. Wrong bytes and errors: the load generator's count over every run of the build, all connection counts and bulk. Server RSS: at the end of a {last}-connection run, before the server stops. Syscalls per message: `strace -f -c` over 100,000 messages minus 10,000, divided by 90,000, on {last} connections; an SQPOLL thread's work is not a syscall. Instructions: callgrind's total over 20000 messages minus a run of 1, divided by 19999, on 10 connections. RSS held: the server's RSS growth at its peak while {NEVER_READING_PEERS} peers with a 4 KiB receive buffer each write 12 MiB and read nothing, divided by {NEVER_READING_PEERS}; `--max-pending` is at its default, 65536 bytes. Each build but the first is `benches/proactor_choices/NAME.patch` applied to the source measured.)\n"
    );
    out
}
