//! What a bench counts on a server, beyond messages per second: syscalls
//! per message (strace), user-space instructions per message (callgrind),
//! and memory: what idle connections cost the server and the machine, and
//! what a peak of connections leaves behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use reactor_echo::bench::measure::kernel::KernelReading;
use reactor_echo::bench::procfs;
use reactor_echo::bench::report::parse_json_numbers;
use reactor_echo::stats::Stats;

use super::{Server, ServerSpec, loadgen_command, scratch_file, serve_messages, strings};

/// Syscalls per message from `strace -c -f`: the difference between a long
/// and a short run, so start-up and connection set-up cancel out.
pub fn syscalls_per_message(kind: &ServerSpec, lg: &Path, conns: usize) -> Option<f64> {
    let count = |messages: u64| -> Option<f64> {
        let file = scratch_file(&format!("strace-{messages}.txt"));
        let wrapper = strings(&["strace", "-f", "-c", "-o", &file.display().to_string()]);
        serve_messages(kind, &wrapper, lg, conns, messages);
        thread::sleep(Duration::from_millis(300));
        let text = std::fs::read_to_string(&file).ok()?;
        let _ = std::fs::remove_file(&file);
        let total = text.lines().find(|l| l.trim_end().ends_with("total"))?;
        // "100.00 1.604327 7 201815 20 total": calls is the 4th column.
        total.split_whitespace().nth(3)?.parse().ok()
    };
    let long = count(100_000)?;
    let short = count(10_000)?;
    Some((long - short) / 90_000.0)
}

/// What a server did per echoed message under callgrind.
#[derive(Debug, Clone, Copy)]
pub struct Instructions {
    /// User-space instructions per message.
    pub per_message: f64,
    /// Wake-ups per message in the same runs, from the stats line (`None`
    /// for a server without one): on several connections the instructions
    /// move with them, since each wake-up has a cost of its own.
    pub wakeups: Option<f64>,
}

/// User-space instructions per echoed message (the method of the C
/// reference programs' `instructions.sh`, which uses 10 connections):
/// callgrind's total while the C load generator completes `messages` on
/// `conns` connections, minus a run of 1 message, divided by `messages - 1`.
pub fn instructions_per_message(
    kind: &ServerSpec,
    lg: &Path,
    conns: usize,
    messages: u64,
) -> Option<Instructions> {
    let total = |messages: u64| -> Option<(f64, Option<Stats>)> {
        let file = scratch_file(&format!("callgrind-{messages}.out"));
        let out_file = format!("--callgrind-out-file={}", file.display());
        let wrapper = strings(&["valgrind", "--tool=callgrind", &out_file]);
        let stats = serve_messages(kind, &wrapper, lg, conns, messages);
        let text = std::fs::read_to_string(&file).ok()?;
        let _ = std::fs::remove_file(&file);
        let summary = text.lines().find_map(|l| l.strip_prefix("summary:"))?;
        Some((summary.trim().parse().ok()?, stats))
    };
    let ((many, many_stats), (one, one_stats)) = (total(messages)?, total(1)?);
    let per = |a: f64, b: f64| (a - b) / (messages - 1) as f64;
    Some(Instructions {
        per_message: per(many, one),
        wakeups: many_stats
            .zip(one_stats)
            .map(|(a, b)| per(a.wakeups as f64, b.wakeups as f64)),
    })
}

/// What holding idle connections cost a server.
pub struct IdleCost {
    /// RSS growth divided by the number of connections.
    pub bytes_per_connection: f64,
    /// The server's threads while they were held.
    pub threads: u64,
    /// Connections whose round trip after the idle period succeeded.
    pub round_trips_ok: f64,
    /// The machine's memory before the first connection, with them all
    /// open (at the moment of the RSS reading), and half a second after the
    /// load generator closed them and exited. It is the whole machine's:
    /// both ends of each loopback connection, the generator's as well as
    /// the server's.
    pub kernel: [MachineMemory; 3],
}

/// One reading of the machine's memory, for the kernel's share of idle
/// connections.
#[derive(Debug, Clone, Copy)]
pub struct MachineMemory {
    /// `/proc/net/sockstat` and `MemAvailable`.
    pub reading: KernelReading,
    /// `Slab` of `/proc/meminfo` in KiB: the kernel's object caches, where
    /// a socket, its inode, file and dentry, an epoll item or an io_uring
    /// request live. Other programs' memory moves it far less than it moves
    /// `MemAvailable`.
    pub slab_kib: u64,
}

impl MachineMemory {
    /// Reads it now.
    pub fn now() -> MachineMemory {
        MachineMemory {
            reading: KernelReading::now(),
            slab_kib: procfs::meminfo_kib("Slab:").unwrap_or(0),
        }
    }
}

impl IdleCost {
    /// How far `MemAvailable` fell per connection with them open, in bytes
    /// (both ends; it may come out negative when the rest of the machine
    /// freed more meanwhile).
    pub fn available_fall_per_connection(&self, conns: usize) -> f64 {
        -self.change_per_connection(conns, |m| m.reading.mem_available_kib)
    }

    /// How far the kernel's slab grew per connection with them open, in
    /// bytes (both ends).
    pub fn slab_growth_per_connection(&self, conns: usize) -> f64 {
        self.change_per_connection(conns, |m| m.slab_kib)
    }

    /// The change of a figure in KiB with the connections open, per
    /// connection in bytes: from the mean of the readings before and after,
    /// which cancels a steady drift of the rest of the machine over the few
    /// seconds of the run.
    fn change_per_connection(&self, conns: usize, kib: impl Fn(&MachineMemory) -> u64) -> f64 {
        let [before, open, after] = self.kernel.each_ref().map(|m| kib(m) as f64);
        (open - (before + after) / 2.0) * 1024.0 / conns as f64
    }
}

/// Starts `kind`, has the C load generator hold `conns` idle connections
/// (`loadgen --idle`, plus `extra` arguments), and measures the server's RSS
/// growth and threads, and the machine's memory ([`MachineMemory`]), half
/// a second after they are all established (and the machine's memory again
/// half a second after they closed).
pub fn idle_cost_with_loadgen(
    kind: &ServerSpec,
    lg: &Path,
    conns: usize,
    extra: &[&str],
) -> IdleCost {
    let server = Server::start_pinned(kind, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let kernel_before = MachineMemory::now();
    let mut cost = IdleCost {
        bytes_per_connection: f64::NAN,
        threads: 0,
        round_trips_ok: 0.0,
        kernel: [kernel_before; 3],
    };
    let child = loadgen_command(lg, server.port())
        .args(["--conns", &conns.to_string(), "--size", "64"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("idle-ready") {
                    thread::sleep(Duration::from_millis(500));
                    cost.bytes_per_connection =
                        server.rss_bytes().saturating_sub(before) as f64 / conns as f64;
                    cost.kernel[1] = MachineMemory::now();
                    cost.threads = server.threads();
                }
                if line.starts_with('{') {
                    cost.round_trips_ok = parse_json_numbers(&line)
                        .get("idle_ok")
                        .copied()
                        .unwrap_or(0.0);
                }
            }
        }
        let _ = child.wait();
        thread::sleep(Duration::from_millis(500));
        cost.kernel[2] = MachineMemory::now();
    }
    server.end();
    cost
}

/// What a peak leaves behind: starts `kind`, has the C load generator open
/// `conns` connections at once and make one verified round trip on each,
/// then close them all; returns the server's RSS growth 1.5 s after they
/// closed, measured from before the first connection.
pub fn rss_kept_after_peak(kind: &ServerSpec, lg: &Path, conns: usize) -> u64 {
    let server = Server::start_pinned(kind, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let _ = loadgen_command(lg, server.port())
        .args(["--conns", &conns.to_string(), "--size", "64", "--idle", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    thread::sleep(Duration::from_millis(1500));
    let kept = server.rss_bytes().saturating_sub(before);
    server.end();
    kept
}
