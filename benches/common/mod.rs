//! Shared by the benchmarks: starting a server pinned to CPU 0, driving it
//! with the C load generator (one of the C reference programs, see
//! [`anchors_dir`]) pinned to CPU 1, reading its RSS, counting its syscalls
//! with strace, and writing a table into `docs/` only from a complete run.

#![allow(dead_code)] // each bench uses its own subset

pub mod tokio_echo;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use reactor_echo::bench::kernel::KernelReading;
use reactor_echo::bench::procfs;
use reactor_echo::listening::Listening;
use reactor_echo::stats::Stats;

/// A server to measure: the one type for "a server" that the tests use too.
#[path = "../../tests/integration/support/spec.rs"]
mod spec;
pub use spec::ServerSpec;

/// A running server, pinned to CPU 0.
pub struct Running {
    child: Child,
    /// Its stdout after the `listening` line: kept open, so that the final
    /// stats line can be read ([`Running::stop_for_stats`]).
    stdout: Option<BufReader<ChildStdout>>,
    /// The TCP port it announced.
    pub port: u16,
}

impl Running {
    pub fn start(kind: &ServerSpec, wrapper: &[String]) -> Running {
        let mut argv: Vec<String> = vec!["taskset".into(), "-c".into(), "0".into()];
        argv.extend_from_slice(wrapper);
        argv.extend(kind.command_line());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("listening line");
        let listening: Listening = line
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name));
        let port = listening
            .tcp
            .unwrap_or_else(|| panic!("{} does not listen on TCP", kind.name))
            .port();
        Running {
            child,
            stdout: Some(stdout),
            port,
        }
    }

    /// Stops the server (SIGTERM; SIGKILL after 60 s, for a server under
    /// valgrind writing its profile) and returns the last stats line it
    /// printed (`reactor-echo`'s final one), parsed.
    pub fn stop_for_stats(mut self) -> Option<Stats> {
        let mut stdout = self.stdout.take()?;
        self.stop_within(Duration::from_secs(60));
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).ok()?;
        rest.lines()
            .rev()
            .find(|l| l.starts_with("stats "))?
            .parse()
            .ok()
    }

    /// The PID of the server itself (under taskset/strace wrappers, the
    /// deepest descendant).
    pub fn server_pid(&self) -> u32 {
        let mut pid = self.child.id();
        loop {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            match children
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
            {
                Some(child) => pid = child,
                None => return pid,
            }
        }
    }

    /// The server's resident set size in bytes.
    ///
    /// From `/proc/PID/smaps_rollup`, which walks the page tables, rather
    /// than `VmRSS` in `/proc/PID/status`: since Linux 6.2 that one is read
    /// from per-CPU counters that may lag by many pages, which at 10,000
    /// connections is several bytes per connection.
    pub fn rss_bytes(&self) -> u64 {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.server_pid()))
            .unwrap_or_default();
        rollup
            .lines()
            .find(|l| l.starts_with("Rss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    }

    /// The number of threads the server runs.
    pub fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    /// The first number of a line of `/proc/PID/status` (0 if unreadable).
    fn status_field(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server_pid()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The process started: under `taskset` (which executes the program in
    /// its place) the server itself, or the supervisor of its workers, whose
    /// tree holds the whole server.
    pub fn root_pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (SIGKILL after 5 s).
    pub fn stop(self) {
        self.stop_within(Duration::from_secs(5));
    }

    /// Stops the server with SIGTERM, and SIGKILL if it has not exited
    /// after `patience` (a server under valgrind takes a while to write its
    /// profile).
    ///
    /// The signal goes to the server itself, the deepest descendant: under
    /// `strace` that is the traced program, which strace lets the signal
    /// reach; signalling strace itself would end the count without ending
    /// the server.
    pub fn stop_within(self, patience: Duration) {
        let pid = self.server_pid();
        self.stop_pid_within(pid, patience);
    }

    /// Stops a server of several processes: SIGTERM to the root (a
    /// supervisor forwards it to its workers), SIGKILL after `patience`.
    pub fn stop_root_within(self, patience: Duration) {
        let pid = self.root_pid();
        self.stop_pid_within(pid, patience);
    }

    /// SIGTERM to `pid`; if the process has not exited after
    /// [`NUDGE_AFTER`], one TCP connection to its port, opened and closed at
    /// once; SIGKILL after `patience`.
    ///
    /// Why the connection: valgrind delivers a signal to the program only
    /// between system calls, and holds it while a thread waits in a call it
    /// cannot interrupt itself. A proactor waits in `io_uring_enter` with no
    /// timeout, so under callgrind a SIGTERM alone never ends it (checked).
    /// A connection is a completion (the accept), which makes
    /// `io_uring_enter` return, and valgrind then delivers the signal. For
    /// a server that has already exited, or is on its way out, it does
    /// nothing: refused, or accepted and closed by a server that is
    /// finishing anyway.
    fn stop_pid_within(mut self, pid: u32, patience: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let start = Instant::now();
        let mut nudged = false;
        while start.elapsed() < patience {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            if !nudged && start.elapsed() >= NUDGE_AFTER {
                nudged = true;
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long [`Running::stop_within`] waits after SIGTERM before it opens
/// the connection that lets a signal held by valgrind through.
const NUDGE_AFTER: Duration = Duration::from_millis(300);

pub fn loadgen(loadgen: &Path, port: u16, args: &[String]) -> BTreeMap<String, f64> {
    let out = Command::new("taskset")
        .args(["-c", "1"])
        .arg(loadgen)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run loadgen");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("{}");
    parse_flat_json(json)
}

/// Enough JSON for loadgen's one flat object of numbers and strings.
pub fn parse_flat_json(json: &str) -> BTreeMap<String, f64> {
    json.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((k.trim_matches('"').to_owned(), v.parse().ok()?))
        })
        .collect()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Where the C reference programs' sources are: `$REACTOR_ECHO_ANCHORS`, or
/// `../shared/anchors` beside the checkout (where the project's machines keep
/// them). They are instruments, not part of the repository.
pub fn anchors_dir(root: &Path) -> PathBuf {
    std::env::var_os("REACTOR_ECHO_ANCHORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/anchors"))
}

/// The C reference programs, built with gcc under `target/anchors/`.
pub struct Anchors {
    /// `epoll_echo`: the C epoll echo server.
    pub server: PathBuf,
    /// `loadgen`: the C load generator.
    pub loadgen: PathBuf,
}

/// Builds the C reference programs, or explains in one line why it cannot.
pub fn build_anchors(root: &Path) -> Result<Anchors, String> {
    let src = anchors_dir(root);
    if !src.join("epoll_echo.c").exists() || !src.join("loadgen.c").exists() {
        return Err(format!(
            "the C reference programs (epoll_echo.c, loadgen.c) are not in {}: set REACTOR_ECHO_ANCHORS to their folder",
            src.display()
        ));
    }
    Ok(Anchors {
        server: gcc_anchor(root, "epoll_echo", &[])?,
        loadgen: gcc_anchor(root, "loadgen", &["-lm"])?,
    })
}

/// Builds `uring_echo`, the C io_uring echo server, beside the other C
/// reference programs: a build of its own, since it needs liburing, which
/// the others do not (a bench that does not measure it keeps working
/// without). Its path, or why not in one line.
pub fn build_uring_anchor(root: &Path) -> Result<PathBuf, String> {
    let src = anchors_dir(root);
    if !src.join("uring_echo.c").exists() {
        return Err(format!(
            "the C io_uring echo server (uring_echo.c) is not in {}: set REACTOR_ECHO_ANCHORS to its folder",
            src.display()
        ));
    }
    gcc_anchor(root, "uring_echo", &["-luring"])
        .map_err(|why| format!("{why} (it needs liburing: apt-get install liburing-dev)"))
}

/// Compiles the C reference program `NAME.c` of [`anchors_dir`] with gcc
/// into `target/anchors/NAME` (`extra`: the libraries it links); its path,
/// or why not in one line (gcc's own messages are not shown).
fn gcc_anchor(root: &Path, name: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let src = anchors_dir(root);
    let out = root.join("target/anchors");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let output = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(out.join(name))
        .arg(src.join(format!("{name}.c")))
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run gcc to build {name}: {e}"))?;
    if output.status.success() {
        Ok(out.join(name))
    } else {
        let errors = String::from_utf8_lossy(&output.stderr);
        let first = errors
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("no message");
        Err(format!("gcc failed to build {name}.c: {}", first.trim()))
    }
}

/// Checks that each command can be run (`NAME --version` or `--help`
/// starts), or explains in one line which is missing.
pub fn require_tools(tools: &[&str]) -> Result<(), String> {
    for tool in tools {
        let found = Command::new(tool)
            .arg(if *tool == "taskset" {
                "-V"
            } else {
                "--version"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!(
                "`{tool}` is not installed (needed: {})",
                tools.join(", ")
            ));
        }
    }
    Ok(())
}

/// Prints `error: WHY` as the one line a bench that cannot run says, and
/// exits with status 1.
pub fn cannot_run(bench: &str, why: &str) -> ! {
    eprintln!("error: cargo bench --bench {bench} cannot run: {why}");
    std::process::exit(1);
}

/// Starts `kind` under `wrapper`, has the C load generator complete
/// `messages` 64-byte messages on `conns` connections (120 s at most), and
/// stops it; its final stats line, if it printed one.
pub fn serve_messages(
    kind: &ServerSpec,
    wrapper: &[String],
    lg: &Path,
    conns: usize,
    messages: u64,
) -> Option<Stats> {
    let server = Running::start(kind, wrapper);
    loadgen(lg, server.port, &messages_args(conns, messages));
    server.stop_for_stats()
}

/// The C load generator's arguments for `messages` 64-byte messages on
/// `conns` connections, 120 s at most.
pub fn messages_args(conns: usize, messages: u64) -> Vec<String> {
    strings(&[
        "--conns",
        &conns.to_string(),
        "--size",
        "64",
        "--messages",
        &messages.to_string(),
        "--duration",
        "120",
    ])
}

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

/// A file for a tool's output (strace's counts, callgrind's profile), in the
/// temporary directory, named after this bench process so that two benches
/// running at once do not share it.
pub fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("reactor-echo-{}-{name}", std::process::id()))
}

/// Builds the release binary and returns its path.
pub fn build_release(root: &Path) -> String {
    build_release_into(root, &root.join("target")).unwrap_or_else(|why| panic!("{why}"))
}

/// Builds the release binary of the project in `source` (a patched copy,
/// say) into `target_dir`; its path, or why not.
pub fn build_release_into(source: &Path, target_dir: &Path) -> Result<String, String> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target_dir)
        .current_dir(source)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(format!(
            "cargo build --release in {} failed",
            source.display()
        ));
    }
    Ok(target_dir
        .join("release/reactor-echo")
        .display()
        .to_string())
}

/// `reactor-echo serve` on TCP only, port 0: the reactor as the comparison
/// benches name it.
pub fn reactor_spec(bin: &str) -> ServerSpec {
    tcp_only("reactor (serve)", bin, "serve")
}

/// `reactor-echo proactor` on TCP only, port 0: the io_uring server as the
/// comparison benches name it.
pub fn proactor_spec(bin: &str) -> ServerSpec {
    tcp_only("proactor (io_uring)", bin, "proactor")
}

/// `reactor-echo SUBCOMMAND` on TCP only, port 0, named `name`.
fn tcp_only(name: &str, bin: &str, subcommand: &str) -> ServerSpec {
    ServerSpec::new(
        name,
        bin,
        &[subcommand, "--tcp", "127.0.0.1:0", "--udp", "off"],
    )
}

/// `reactor-echo blocking --model threads` on TCP only, port 0.
pub fn threads_spec(bin: &str) -> ServerSpec {
    ServerSpec::new(
        "blocking threads",
        bin,
        &[
            "blocking",
            "--model",
            "threads",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "off",
        ],
    )
}

/// Owned copies of string slices, for argument lists.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
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
    let server = Running::start(kind, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let kernel_before = MachineMemory::now();
    let mut cost = IdleCost {
        bytes_per_connection: f64::NAN,
        threads: 0,
        round_trips_ok: 0.0,
        kernel: [kernel_before; 3],
    };
    let child = Command::new("taskset")
        .args(["-c", "1"])
        .arg(lg)
        .args(["--addr", &format!("127.0.0.1:{}", server.port)])
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
                    cost.round_trips_ok = parse_flat_json(&line)
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
    server.stop();
    cost
}

/// The standard closed-loop run of the C load generator against `port`:
/// `conns` connections, 64-byte messages, 1 s warm-up, `duration` seconds.
pub fn closed_loop(lg: &Path, port: u16, conns: usize, duration: f64) -> BTreeMap<String, f64> {
    loadgen(lg, port, &closed_loop_args(conns, duration))
}

/// The C load generator's arguments for [`closed_loop`].
pub fn closed_loop_args(conns: usize, duration: f64) -> Vec<String> {
    strings(&[
        "--conns",
        &conns.to_string(),
        "--size",
        "64",
        "--duration",
        &duration.to_string(),
        "--warmup",
        "1",
    ])
}

/// Writes a bench's table: into `docs/benchmarks/NAME` when the run was
/// complete (the published figures), else under `target/bench-partial/`, so
/// that a quick or partial run never overwrites what the docs quote.
/// Returns the path written.
pub fn publish(root: &Path, name: &str, text: &str, complete: bool) -> PathBuf {
    let dir = if complete {
        root.join("docs/benchmarks")
    } else {
        root.join("target/bench-partial")
    };
    std::fs::create_dir_all(&dir).expect("create the output folder");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the table");
    path
}

/// The machine facts printed with every table: kernel, cores, date, and
/// the commit measured.
pub fn machine_line() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let date = output("date", &["+%Y-%m-%d"]);
    let commit = output("git", &["rev-parse", "--short", "HEAD"]);
    let commit = if commit.is_empty() {
        "an unknown commit".to_owned()
    } else {
        format!("commit {commit}")
    };
    format!(
        "kernel {}, {} cores, taken {date} at {commit}",
        kernel.trim(),
        thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// What a peak leaves behind: starts `kind`, has the C load generator open
/// `conns` connections at once and make one verified round trip on each,
/// then close them all; returns the server's RSS growth 1.5 s after they
/// closed, measured from before the first connection.
pub fn rss_kept_after_peak(kind: &ServerSpec, lg: &Path, conns: usize) -> u64 {
    let server = Running::start(kind, &[]);
    thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let _ = Command::new("taskset")
        .args(["-c", "1"])
        .arg(lg)
        .args(["--addr", &format!("127.0.0.1:{}", server.port)])
        .args(["--conns", &conns.to_string(), "--size", "64", "--idle", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    thread::sleep(Duration::from_millis(1500));
    let kept = server.rss_bytes().saturating_sub(before);
    server.stop();
    kept
}

/// Runs `reactor-echo bench --json` pinned to CPU 1 against `port` for
/// `duration` seconds after `warmup`, with `args`; the report's numbers
/// (empty if it printed none).
pub fn bench_json(
    bin: &str,
    port: u16,
    args: &[&str],
    duration: f64,
    warmup: f64,
) -> BTreeMap<String, f64> {
    let out = Command::new("taskset")
        .args(["-c", "1", bin, "bench", "--json"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--duration", &duration.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(args)
        .env("RUST_LOG", "warn")
        .output();
    let Ok(out) = out else {
        return BTreeMap::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with('{'))
        .map(reactor_echo::bench::report::parse_json_numbers)
        .unwrap_or_default()
}
