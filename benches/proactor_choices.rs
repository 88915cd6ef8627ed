//! What each of the proactor's choices costs or saves, measured: `cargo
//! bench --bench proactor_choices`.
//!
//! `docs/proactor.md` says why the proactor is built as it is: one
//! `io_uring_enter` per loop turn, a single issuer with deferred task work,
//! a multishot recv per connection, plain (copying) sends, no SQPOLL. Each
//! choice undone is one patch in `benches/proactor_choices/` (a few lines of
//! `src/proactor/ring.rs` each, with a comment that says what it changes:
//! read them); so is one feature the minimal C server lacks, added (fixed
//! files: `fixed-files.patch` registers each connection's descriptor with
//! the ring, so that its operations skip the file-table lookup). This bench builds the proactor as it is, and once with each
//! patch applied (a copy of the project under `target/proactor-choices/`,
//! the copies sharing one target folder), then measures every build in
//! interleaved order (A B C ... A B C ...), as `benches/anchors.rs`
//! measures servers:
//!
//! * messages/s and p99/p50 at 100 and at 1,000 connections (the C load
//!   generator, closed loop, 64-byte messages, every reply byte verified),
//!   medians of the repeats, with the ratio to the build as it is;
//! * the server's CPU time per message at 1,000 connections, user + system
//!   (an SQPOLL thread is one of the server's threads: its time counts);
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
    Server, ServerSpec, apply_patch, build_anchors, build_release, build_release_into, cannot_run,
    copy_project, instructions_per_message, machine_line, median, proactor_spec, publish,
    require_tools, run_with_cpu_split, syscalls_per_message,
};

/// One build of the proactor: as it is, or with one choice undone.
struct Choice {
    /// The patch in `benches/proactor_choices/` that undoes the choice (or
    /// adds the feature).
    patch: Option<&'static str>,
    /// What the build does, for the table.
    name: &'static str,
}

const CHOICES: [Choice; 8] = [
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
];

/// The connection counts of the messages/s columns; the CPU, syscall and
/// instruction columns are at the last.
const CONNS: [usize; 2] = [100, 1_000];

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
                ] {
                    m.entry(format!("{key}@{conns}")).or_default().push(value);
                }
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
    let Some(patch) = choice.patch else {
        return Ok(build_release(root));
    };
    let scratch = root.join("target/proactor-choices");
    let copy = scratch.join(patch);
    copy_project(root, &copy)?;
    apply_patch(
        &copy,
        &root.join(format!("benches/proactor_choices/{patch}.patch")),
    )?;
    build_release_into(&copy, &scratch.join("target"))
        .map(|_| ())
        .and_then(|()| {
            // Each copy's binary is overwritten by the next build in the
            // shared folder: keep this one under its own name.
            let built = scratch.join("target/release/reactor-echo");
            let kept = scratch.join(format!("reactor-echo-{patch}"));
            std::fs::copy(&built, &kept).map_err(|e| format!("{}: {e}", kept.display()))?;
            Ok(kept.display().to_string())
        })
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
        " wrong bytes and errors | server user + system us/msg @{last} | syscalls/msg @{last} | user-space instructions/msg | RSS held per never-reading peer (bytes) |\n"
    );
    out += &head;
    out += &format!("|---|{}\n", "---:|".repeat(CONNS.len() * 2 + 5));
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
        let wrong: f64 = CONNS
            .iter()
            .flat_map(|c| {
                samples[k]
                    .get(&format!("wrong@{c}"))
                    .cloned()
                    .unwrap_or_default()
            })
            .sum();
        let (user, system) = (
            med(k, &format!("user@{last}")),
            med(k, &format!("system@{last}")),
        );
        let (syscalls, instructions) = counted[k];
        row += &format!(
            " {wrong:.0} | {user:.2} + {system:.2} = {:.2} | {} | {} | {:.0} |\n",
            user + system,
            fixed(syscalls, 3),
            fixed(instructions, 0),
            med(k, "held")
        );
        out += &row;
    }
    out += &format!(
        "\n(The ratio after each messages/s figure is to the build as it is, in the same run. Wrong bytes and errors: the load generator's count over every run of the build, all connection counts. Syscalls per message: `strace -f -c` over 100,000 messages minus 10,000, divided by 90,000, on {last} connections; an SQPOLL thread's work is not a syscall. Instructions: callgrind's total over 20000 messages minus a run of 1, divided by 19999, on 10 connections. RSS held: the server's RSS growth at its peak while {NEVER_READING_PEERS} peers with a 4 KiB receive buffer each write 12 MiB and read nothing, divided by {NEVER_READING_PEERS}; `--max-pending` is at its default, 65536 bytes. Each build but the first is `benches/proactor_choices/NAME.patch` applied to the source measured.)\n"
    );
    out
}
