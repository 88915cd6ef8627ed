//! What the permanent WRITABLE interest costs: `cargo bench --bench interest`.
//!
//! The reactor registers every connection once, for `READABLE | WRITABLE`,
//! for its whole life (`src/reactor/listener.rs`). This bench measures that
//! beside a **measuring patch** that registers `READABLE` only: a copy of
//! the project under `target/interest/` with that one line changed (the
//! labs' approach, `benches/labs.rs`), built into its own target folder. The
//! patch is for measuring, not a correct server: without the writable
//! interest a reply that does not fit the send buffer is never flushed. A
//! 64-byte echo's send never blocks, so that does not arise here.
//!
//! For each of the two, 64-byte echo, server on CPU 0, load on CPU 1:
//!
//! * **the stats line's counters per message** (events, wake-ups, reads,
//!   writes): the C load generator in a closed loop on 10 and on 100
//!   connections, a run of 100,000 messages minus one of 10,000, divided by
//!   the difference (so accepts, registration and closing cancel out);
//!   medians of 3 interleaved repeats;
//! * **the flags the kernel reported**: the same two runs under
//!   `strace -e epoll_wait`, every connection event counted by its mask;
//! * **a sparse run**: one connection, one message every 20 ms, and the
//!   client acknowledges each reply at once (`TCP_QUICKACK`), so the send,
//!   the ACK it frees the send buffer with, and the next message reach the
//!   server apart. If the send or the ACK raised a writable edge, it would
//!   show here as an event with EPOLLOUT and without EPOLLIN;
//! * **user-space instructions per message** (callgrind) and **syscalls per
//!   message** (`strace -f -c`), as `benches/cost.rs` measures them; the
//!   instructions on one connection too, where every message is one
//!   wake-up, one event, one read and one write with either interest, so
//!   that their difference is the interest's alone.
//!
//! Event counts, and instruction counts on one connection, hardly depend on
//! the machine's noise; wake-ups per message on several connections do (how
//! many events one `epoll_wait` collects depends on timing), and so do the
//! instructions there, since each wake-up has a cost of its own.
//!
//! Needs valgrind, strace, gcc, taskset and the C sources
//! (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`); without one it
//! says which in one line and exits 1. `-- --quick` counts fewer messages
//! and writes under `target/bench-partial/`; a complete run writes
//! `docs/benchmarks/writable_interest.md`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{
    Server, ServerSpec, build_anchors, build_release, build_release_into, cannot_run,
    instructions_per_message, loadgen, machine_line, median, messages_args, publish, require_tools,
    scratch_file, serve_messages, strings, syscalls_per_message,
};
use reactor_echo::reactor::token::FIRST_CONNECTION;
use reactor_echo::stats::Stats;

/// The registration as the reactor has it, and as the measuring patch has it.
const BOTH: &str = "Interest::READABLE | Interest::WRITABLE,";
const READABLE_ONLY: &str = "Interest::READABLE,";
/// Closed-loop connection counts.
const CONNS: [usize; 2] = [10, 100];
/// The sparse run's pause between a reply and the next message.
const SPARSE_GAP: Duration = Duration::from_millis(20);

/// Named counts of one run (or per message, after [`per_message`]).
type Counts = BTreeMap<&'static str, f64>;

/// How much to measure: a complete run, or `--quick`.
struct Plan {
    /// Messages of the long and the short closed-loop run.
    long: u64,
    short: u64,
    /// Repeats of the plain (unwrapped) closed-loop runs.
    repeats: usize,
    /// Messages of the long and the short sparse run.
    sparse_long: u64,
    sparse_short: u64,
    /// Messages of the long callgrind run (the short one sends 1).
    callgrind: u64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            long: 20_000,
            short: 2_000,
            repeats: 1,
            sparse_long: 20,
            sparse_short: 5,
            callgrind: 2_000,
        }
    } else {
        Plan {
            long: 100_000,
            short: 10_000,
            repeats: 3,
            sparse_long: 60,
            sparse_short: 10,
            callgrind: 20_000,
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["valgrind", "strace", "gcc", "taskset"]) {
        cannot_run("interest", &why);
    }
    let anchors = build_anchors(&root).unwrap_or_else(|why| cannot_run("interest", &why));
    let as_registered = build_release(&root);
    let patched = readable_only_copy(&root)
        .and_then(|copy| build_release_into(&copy, &root.join("target/interest/target")))
        .unwrap_or_else(|why| cannot_run("interest", &why));
    let serve = ["serve", "--tcp", "127.0.0.1:0", "--udp", "off"];
    let servers = [
        ServerSpec::new(
            "`READABLE \\| WRITABLE` (as registered)",
            &as_registered,
            &serve,
        ),
        ServerSpec::new("`READABLE` only (measuring patch)", &patched, &serve),
    ];
    let lg = &anchors.loadgen;

    let mut out = format!(
        "One run; server on CPU 0, load generator on CPU 1; {}.\n\n",
        machine_line()
    );
    out += "Closed loop, the C load generator, 64 B, one message in flight per connection; \
            per echoed message:\n\n\
            | interest | connections | events (stats line) | connection events | with EPOLLOUT | \
            with EPOLLOUT, without EPOLLIN | wake-ups | reads | writes | connections with an \
            event at registration |\n\
            |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for conns in CONNS {
        // The plain runs, interleaved: the stats line's counters.
        let mut plain: Vec<Vec<Counts>> = vec![Vec::new(); servers.len()];
        for _ in 0..plan.repeats {
            for (i, server) in servers.iter().enumerate() {
                let run = |messages| serve_messages(server, &[], lg, conns, messages);
                let long = run(plan.long).map(|s| counts(&s));
                if let Some(c) = per_message(long, run(plan.short).map(|s| counts(&s))) {
                    plain[i].push(c);
                }
            }
        }
        for (server, plain) in servers.iter().zip(plain) {
            let stats = medians(&plain);
            let closed_loop = |port, messages| {
                loadgen(lg, port, &messages_args(conns, messages));
            };
            let masks = masks_per_message(server, closed_loop, plan.long, plan.short);
            eprintln!("{} at {conns}: {stats:?} {masks:?}", server.name);
            out += &format!(
                "| {} | {conns} | {} | {} | {} | {} | {} | {} | {} | {} of {conns} |\n",
                server.name,
                shown(stats.get("events"), 3),
                shown(masks.as_ref().and_then(|m| m.get("events")), 3),
                shown(masks.as_ref().and_then(|m| m.get("with EPOLLOUT")), 3),
                shown(masks.as_ref().and_then(|m| m.get("EPOLLOUT only")), 3),
                shown(stats.get("wakeups"), 3),
                shown(stats.get("reads"), 3),
                shown(stats.get("writes"), 3),
                shown(masks.as_ref().and_then(|m| m.get("at registration")), 0),
            );
        }
    }
    out += &format!(
        "\nEvents, wake-ups, reads and writes: the server's stats line, a run of {} messages minus \
         one of {}, divided by the difference; medians of {} interleaved repeats. Connection events and \
         their flags: the same two runs under `strace -e epoll_wait`, each event of a connection \
         counted by the mask the kernel returned, except its event at registration: with the \
         writable interest a connection registered before its first message arrived has one \
         event with EPOLLOUT alone, once (the last column counts them in the long run). How many \
         connections have one varies from run to run, and the stats line counts them (and the \
         listener's events) too, so its column may differ from 1 in the third decimal.\n",
        plan.long, plan.short, plan.repeats
    );

    out += &format!(
        "\nSparse: one connection, one message every {} ms, each reply acknowledged at once \
         (`TCP_QUICKACK`), so that the reply's send, its ACK and the next message reach the \
         server apart; per echoed message ({} messages minus {}, under `strace -e epoll_wait`):\n\n\
         | interest | events | events with EPOLLOUT | events with EPOLLOUT, without EPOLLIN | \
         wake-ups |\n|---|---:|---:|---:|---:|\n",
        SPARSE_GAP.as_millis(),
        plan.sparse_long,
        plan.sparse_short
    );
    for server in &servers {
        let masks = masks_per_message(
            server,
            |port, messages| {
                if let Err(e) = sparse_client(port, messages) {
                    eprintln!("sparse client: {e}");
                }
            },
            plan.sparse_long,
            plan.sparse_short,
        );
        eprintln!("{} sparse: {masks:?}", server.name);
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            server.name,
            shown(masks.as_ref().and_then(|m| m.get("events")), 3),
            shown(masks.as_ref().and_then(|m| m.get("with EPOLLOUT")), 3),
            shown(masks.as_ref().and_then(|m| m.get("EPOLLOUT only")), 3),
            shown(masks.as_ref().and_then(|m| m.get("wakeups")), 3),
        );
    }

    out += "\nUnder callgrind, per echoed message:\n\n\
            | interest | user-space instructions, 1 connection | wake-ups, 1 connection | \
            user-space instructions, 10 connections | wake-ups, 10 connections | syscalls \
            (`strace -f -c`), 100 connections |\n|---|---:|---:|---:|---:|---:|\n";
    let mut instructions = Vec::new();
    for server in &servers {
        let one = instructions_per_message(server, lg, 1, plan.callgrind);
        let ten = instructions_per_message(server, lg, 10, plan.callgrind);
        let syscalls = syscalls_per_message(server, lg, 100);
        eprintln!(
            "{}: {one:?} and {ten:?} instructions/msg, {syscalls:?} syscalls/msg",
            server.name
        );
        out += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            server.name,
            shown(one.map(|i| i.per_message).as_ref(), 1),
            shown(one.and_then(|i| i.wakeups).as_ref(), 3),
            shown(ten.map(|i| i.per_message).as_ref(), 1),
            shown(ten.and_then(|i| i.wakeups).as_ref(), 3),
            shown(syscalls.as_ref(), 3)
        );
        instructions.push((one, ten));
    }
    if let [
        (Some(both), Some(both_ten)),
        (Some(readable), Some(readable_ten)),
    ] = instructions[..]
    {
        let (both, readable) = (both.per_message, readable.per_message);
        out += &format!(
            "\nOn one connection every message takes one wake-up, one event, one read and one \
             write with either interest, so the difference is the interest's alone: the writable \
             interest costs {:.1} user-space instructions per message ({:.1}% of {:.1}). On 10 \
             connections the difference is {:.1}: there it also carries the difference in wake-ups \
             per message, which depends on how the load generator's messages happened to bunch.\n",
            both - readable,
            (both - readable) / both * 100.0,
            both,
            both_ten.per_message - readable_ten.per_message
        );
    }
    out += &format!(
        "\nInstructions: callgrind's total over {} messages minus a run of 1, divided by {} (64 B, \
         the C load generator). Syscalls: `strace -f -c`, 100,000 minus 10,000 messages, divided \
         by 90,000. The measuring patch registers each connection for `READABLE` only; it is not \
         a correct server (a reply that does not fit the send buffer would never be flushed), \
         which a 64-byte echo never meets.\n",
        plan.callgrind,
        plan.callgrind - 1
    );
    print!("\n{out}");
    let path = publish(&root, "writable_interest.md", &out, !quick);
    eprintln!("wrote {}", path.display());
}

fn shown(value: Option<&f64>, decimals: usize) -> String {
    value.map_or_else(|| "failed".to_owned(), |v| format!("{v:.decimals$}"))
}

/// A copy of the project under `target/interest/readable-only` whose
/// connections are registered for `READABLE` only: the measuring patch.
fn readable_only_copy(root: &Path) -> Result<PathBuf, String> {
    let copy = root.join("target/interest/readable-only");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    // The manifest and the source are copied (the source is patched); what
    // else the manifest names (benches, examples under docs/) is linked.
    let copied = Command::new("cp")
        .args(["-r", "Cargo.toml", "Cargo.lock", "src"])
        .arg(&copy)
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success())
        && ["tests", "benches", "docs"]
            .iter()
            .all(|item| std::os::unix::fs::symlink(root.join(item), copy.join(item)).is_ok());
    if !copied {
        return Err(format!("cannot copy the project into {}", copy.display()));
    }
    let listener = copy.join("src/reactor/listener.rs");
    let text = std::fs::read_to_string(&listener).map_err(|e| e.to_string())?;
    if text.matches(BOTH).count() != 1 {
        return Err(format!(
            "src/reactor/listener.rs no longer has `{BOTH}` once: update the measuring patch in benches/interest.rs"
        ));
    }
    std::fs::write(&listener, text.replace(BOTH, READABLE_ONLY)).map_err(|e| e.to_string())?;
    Ok(copy)
}

/// The stats line's counters, and the messages echoed (64 bytes each).
fn counts(stats: &Stats) -> Counts {
    Counts::from([
        ("events", stats.events as f64),
        ("wakeups", stats.wakeups as f64),
        ("reads", stats.reads as f64),
        ("writes", stats.writes as f64),
        ("messages", stats.bytes_in as f64 / 64.0),
    ])
}

/// Per message: a long run's counts minus a short run's, divided by the
/// difference in messages.
fn per_message(long: Option<Counts>, short: Option<Counts>) -> Option<Counts> {
    let (long, short) = (long?, short?);
    let messages = long["messages"] - short["messages"];
    (messages > 0.0).then(|| {
        long.iter()
            .filter(|(name, _)| **name != "messages")
            .map(|(name, n)| (*name, (n - short.get(name).unwrap_or(&0.0)) / messages))
            .collect()
    })
}

/// Each figure's median over the repeats.
fn medians(runs: &[Counts]) -> Counts {
    let names = runs.first().map(|r| r.keys().copied().collect::<Vec<_>>());
    names
        .unwrap_or_default()
        .into_iter()
        .map(|name| (name, median(runs.iter().map(|r| r[name]).collect())))
        .collect()
}

/// Events per message by the flags the kernel reported (and the stats
/// line's wake-ups), from a long and a short run of `server` under
/// `strace -e epoll_wait`, each driven by `drive(port, messages)`; and the
/// long run's events at registration ([`flag_counts`]), not per message.
fn masks_per_message(
    server: &ServerSpec,
    drive: impl Fn(u16, u64),
    long: u64,
    short: u64,
) -> Option<Counts> {
    let run = |messages: u64| -> Option<Counts> {
        let file = scratch_file(&format!("epoll-{messages}.txt"));
        let wrapper = strings(&[
            "strace",
            "-f",
            "-e",
            "trace=/^epoll_.*wait",
            "-s",
            "4096",
            "-o",
            &file.display().to_string(),
        ]);
        let running = Server::start_pinned(server, &wrapper);
        drive(running.port(), messages);
        let stats = running.stop_for_stats();
        let text = std::fs::read_to_string(&file).ok();
        let _ = std::fs::remove_file(&file);
        let mut found = flag_counts(&text?)?;
        found.extend(counts(&stats?).into_iter().filter(|(n, _)| *n != "events"));
        Some(found)
    };
    let long = run(long)?;
    let registered = long["at registration"];
    let mut per = per_message(Some(long), run(short))?;
    // Per connection, not per message: the long run's count.
    per.insert("at registration", registered);
    Some(per)
}

/// Counts the connection events in strace's `epoll_wait` lines by mask
/// (`None` if strace shortened an array). An event of a connection before
/// its first EPOLLIN is counted apart, as `at registration`: one a
/// connection at most, and how many connections have one (those registered
/// before their first message arrived) varies from run to run.
fn flag_counts(trace: &str) -> Option<Counts> {
    let mut found = Counts::from([
        ("events", 0.0),
        ("with EPOLLOUT", 0.0),
        ("EPOLLOUT only", 0.0),
        ("at registration", 0.0),
    ]);
    let mut messaged = HashSet::new();
    for line in trace.lines().filter(|l| l.contains("wait(")) {
        if line.contains("...]") {
            return None;
        }
        // `{events=EPOLLIN|EPOLLOUT, data={u32=3, u64=3}}`
        for event in line.split("{events=").skip(1) {
            let flags: Vec<&str> = event.split(',').next()?.split('|').collect();
            let token = event
                .split("u64=")
                .nth(1)
                .and_then(|t| t.split('}').next())
                .and_then(|t| t.parse::<usize>().ok());
            let Some(token) = token.filter(|t| *t >= FIRST_CONNECTION) else {
                continue;
            };
            let input = flags.contains(&"EPOLLIN");
            if input {
                messaged.insert(token);
            } else if !messaged.contains(&token) {
                *found.entry("at registration").or_default() += 1.0;
                continue;
            }
            let out = flags.contains(&"EPOLLOUT");
            *found.entry("events").or_default() += 1.0;
            if out {
                *found.entry("with EPOLLOUT").or_default() += 1.0;
            }
            if out && !input {
                *found.entry("EPOLLOUT only").or_default() += 1.0;
            }
        }
    }
    Some(found)
}

/// One connection to `port`: `messages` 64-byte messages, each sent
/// [`SPARSE_GAP`] after the previous reply, which is checked and
/// acknowledged at once (`TCP_QUICKACK`), in an ACK of its own.
fn sparse_client(port: u16, messages: u64) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = [b'w'; 64];
    let mut reply = [0; 64];
    for _ in 0..messages {
        stream.write_all(&request)?;
        stream.read_exact(&mut reply)?;
        if reply != request {
            return Err(std::io::Error::other("the reply differs from the request"));
        }
        socket2::SockRef::from(&stream).set_tcp_quickack(true)?;
        thread::sleep(SPARSE_GAP);
    }
    Ok(())
}
