//! A running server: start it (a [`ServerSpec`]) on port 0, read its
//! `listening` and `stats` lines, read it through `/proc`, signal it and
//! stop it by its PID. The one process type of the tests and the benches
//! (which include this folder): a bench starts its server with
//! [`Server::start_pinned`], under a counting wrapper, and ends it with
//! [`Server::end`] or [`Server::stop_for_stats`].

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reactor_echo::bench::procfs;
use reactor_echo::listening::Listening;
use reactor_echo::proactor::ProactorStats;
use reactor_echo::stats::Stats;

use super::kinds::Kind;
use super::spec::ServerSpec;

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A command that runs `program` so that it dies with the thread that
/// starts it, even if this test process is killed with SIGKILL and no
/// `Drop` runs: `setpriv --pdeathsig KILL` (util-linux) asks the kernel,
/// before it executes `program`, to send SIGKILL when the spawning thread
/// exits (the parent-death signal follows the thread that forked, and
/// survives `exec`). A test thread that ends has stopped its servers
/// already (`Server`'s `Drop`); a test process killed by a harness, or by a
/// hanging mutant's timeout, takes its servers with it. A server's own
/// children (`serve --workers`) follow their supervisor the same way.
pub fn tied_to_this_thread(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    command
}

/// A running server process.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// The TCP address it announced, if TCP is on.
    pub tcp: Option<SocketAddr>,
    /// The UDP address it announced, if UDP is on.
    pub udp: Option<SocketAddr>,
}

impl Server {
    /// `KIND'S COMMAND --tcp 127.0.0.1:0 --udp 127.0.0.1:0 ARGS...`
    pub fn start(kind: Kind, args: &[&str]) -> Server {
        Server::start_spec(&kind.spec(), args)
    }

    /// Any server (a [`ServerSpec`]), on port 0, with `args` added.
    pub fn start_spec(spec: &ServerSpec, args: &[&str]) -> Server {
        Server::start_command(tied_to_this_thread(&spec.program), spec, args)
    }

    /// The same as [`Server::start`], with the server leading a process
    /// group of its own, as a shell's job does: [`Server::signal_group`]
    /// then reaches it and everything it started, as a terminal's Ctrl-C
    /// would, without reaching this test.
    pub fn start_as_job(kind: Kind, args: &[&str]) -> Server {
        let spec = kind.spec();
        let mut command = tied_to_this_thread(&spec.program);
        command.process_group(0);
        Server::start_command(command, &spec, args)
    }

    /// A server run exactly as its spec says (`program args...`), with no
    /// addresses added: the course's steps take theirs as the argument.
    pub fn start_exact(spec: &ServerSpec) -> Server {
        let mut command = tied_to_this_thread(&spec.program);
        command.args(&spec.args);
        Server::spawn(command)
    }

    /// The same, with the program run through a wrapper (`prlimit ... PROGRAM`).
    pub fn start_wrapped(wrapper: &[&str], kind: Kind, args: &[&str]) -> Server {
        let spec = kind.spec();
        let mut command = tied_to_this_thread(wrapper[0]);
        command.args(&wrapper[1..]).arg(&spec.program);
        Server::start_command(command, &spec, args)
    }

    fn start_command(mut command: Command, spec: &ServerSpec, args: &[&str]) -> Server {
        command.args(&spec.args);
        if !args.contains(&"--tcp") {
            command.args(["--tcp", "127.0.0.1:0"]);
        }
        if !args.contains(&"--udp") {
            command.args(["--udp", "127.0.0.1:0"]);
        }
        command.args(args);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        Server::spawn(command)
    }

    /// Starts `command` and waits for its `listening` line.
    fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let lines = spawn_line_reader(child.stdout.take().expect("stdout"));
        let stderr = spawn_collector(child.stderr.take().expect("stderr"));
        let first = lines.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!(
                "server printed no listening line; stderr:\n{}",
                stderr.lock().unwrap()
            )
        });
        let (tcp, udp) = parse_listening(&first);
        Server {
            child,
            lines,
            stderr,
            tcp,
            udp,
        }
    }

    /// The process id: of the server, or of the supervisor of its workers,
    /// whose tree holds the whole server (of a wrapper that does not
    /// execute the program in its place, such as `strace` or valgrind: see
    /// [`Server::server_pid`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The PID of the server itself: under a wrapper that runs it as a
    /// child (`strace`), the deepest descendant.
    pub fn server_pid(&self) -> u32 {
        let mut pid = self.pid();
        while let Some(&child) = procfs::live_children(pid).first() {
            pid = child;
        }
        pid
    }

    /// Its running child processes (a supervisor's workers).
    pub fn children(&self) -> Vec<u32> {
        procfs::live_children(self.pid())
    }

    /// The TCP address (panics if TCP is off).
    pub fn tcp(&self) -> SocketAddr {
        self.tcp.expect("TCP is on")
    }

    /// The UDP address (panics if UDP is off).
    pub fn udp(&self) -> SocketAddr {
        self.udp.expect("UDP is on")
    }

    /// A connected client with read and write timeouts, so that a test that
    /// goes wrong fails instead of hanging.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.tcp()).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next line on stdout, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits (needs `--stats-interval`) for a periodic stats line that
    /// satisfies `check`, and returns it.
    pub fn wait_for_stats(&self, check: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(line) = self.next_line(Duration::from_millis(200)) {
                if line.starts_with("stats ") {
                    let stats = parse_stats(&line);
                    if check(&stats) {
                        return stats;
                    }
                    last = line;
                }
            }
        }
        panic!(
            "no stats line matched in time; last: {last}\nstderr:\n{}",
            self.stderr()
        );
    }

    /// Sends a signal (`TERM`, `INT`) to the server by its PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends a signal to the server's process group (started with
    /// [`Server::start_as_job`]): what a terminal does on Ctrl-C.
    pub fn signal_group(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), "--", &format!("-{}", self.pid())])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} -- -{} failed", self.pid());
    }

    /// Sends SIGTERM and waits for exit; returns the status and the parsed
    /// final stats line.
    pub fn stop(self) -> (ExitStatus, Stats) {
        self.signal("TERM");
        self.stop_after_signal()
    }

    /// After a signal already sent: waits for exit; returns the status and
    /// the parsed final stats line.
    pub fn stop_after_signal(mut self) -> (ExitStatus, Stats) {
        let status = self
            .wait_exit(PATIENCE)
            .expect("server exits after the signal");
        let line = self
            .last_stats_line()
            .unwrap_or_else(|| panic!("no stats line; stderr:\n{}", self.stderr()));
        (status, parse_stats(&line))
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The last `stats ...` line printed (after the process has exited).
    pub fn last_stats_line(&self) -> Option<String> {
        let mut last = None;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            if line.starts_with("stats ") {
                last = Some(line);
            }
        }
        last
    }

    /// The server's resident set size in bytes: `Rss` of `smaps_rollup`
    /// (see [`procfs::resident_kib_alone`] for why not `VmRSS`).
    pub fn rss(&self) -> u64 {
        procfs::resident_kib_alone(self.server_pid()).expect("read smaps_rollup") * 1024
    }

    /// Peak resident set size in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        procfs::status_number(self.server_pid(), "VmHWM:").expect("VmHWM") * 1024
    }

    /// The number of threads the server runs (0 if it cannot be read).
    pub fn threads(&self) -> u64 {
        procfs::status_number(self.server_pid(), "Threads:").unwrap_or(0)
    }

    /// CPU time used so far (user + system), in clock ticks (1/100 s).
    pub fn cpu_ticks(&self) -> u64 {
        let (user, system) = procfs::cpu_time(self.server_pid()).expect("read stat");
        ((user + system).as_millis() / 10) as u64
    }
}

/// The benches' part: a server pinned to a core under a counting wrapper,
/// ended whatever it is (a test stops a server with [`Server::stop`], which
/// asserts that it exits and prints its stats line).
#[allow(dead_code)] // the integration tests use none of it
impl Server {
    /// A server for a benchmark: `spec` exactly as it says (a bench's spec
    /// names its own addresses), on CPU 0 (`taskset -c 0`: the load
    /// generators take CPU 1), under `wrapper` (`strace -f -c -o FILE`,
    /// `valgrind --tool=callgrind ...`, or nothing), logging warnings only.
    pub fn start_pinned(spec: &ServerSpec, wrapper: &[String]) -> Server {
        let mut command = tied_to_this_thread("taskset");
        command
            .args(["-c", "0"])
            .args(wrapper)
            .args(spec.command_line())
            .env("RUST_LOG", "warn");
        Server::spawn(command)
    }

    /// The TCP port (panics if TCP is off).
    pub fn port(&self) -> u16 {
        self.tcp().port()
    }

    /// The same, 0 if it cannot be read (a bench reads a server that may
    /// have died: its table says so rather than the bench panicking).
    pub fn rss_bytes(&self) -> u64 {
        procfs::resident_kib_alone(self.server_pid()).unwrap_or(0) * 1024
    }

    /// Ends a server of any kind (the C reference programs print no stats
    /// line, and a bench does not assert on its exit): SIGTERM, SIGKILL
    /// after 5 s. See [`Server::end_within`].
    pub fn end(self) {
        self.end_within(Duration::from_secs(5));
    }

    /// Ends the server and returns the last stats line it printed, parsed
    /// (the reactor's or the proactor's final one), if it printed one:
    /// SIGTERM, SIGKILL after 60 s, for a server under valgrind writing its
    /// profile.
    pub fn stop_for_stats(self) -> Option<Stats> {
        stats_of(&self.stop_for_stats_line()?).ok()
    }

    /// [`Server::stop_for_stats`], the line as printed: a proactor's
    /// carries counters of its own (`ProactorStats`).
    pub fn stop_for_stats_line(mut self) -> Option<String> {
        let pid = self.server_pid();
        self.terminate(pid, Duration::from_secs(60));
        self.last_stats_line()
    }

    /// Ends the server with SIGTERM, and SIGKILL if it has not exited after
    /// `patience` (a server under valgrind takes a while to write its
    /// profile).
    ///
    /// The signal goes to the server itself, the deepest descendant: under
    /// `strace` that is the traced program, which strace lets the signal
    /// reach; signalling strace itself would end the count without ending
    /// the server.
    pub fn end_within(mut self, patience: Duration) {
        let pid = self.server_pid();
        self.terminate(pid, patience);
    }

    /// Ends a server of several processes: SIGTERM to the root (a
    /// supervisor forwards it to its workers), SIGKILL after `patience`.
    pub fn end_root_within(mut self, patience: Duration) {
        let pid = self.pid();
        self.terminate(pid, patience);
    }

    /// SIGTERM to `pid`; if the server has not exited after
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
    fn terminate(&mut self, pid: u32, patience: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let start = Instant::now();
        let mut nudged = false;
        while start.elapsed() < patience {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            if let Some(tcp) = self
                .tcp
                .filter(|_| !nudged && start.elapsed() >= NUDGE_AFTER)
            {
                nudged = true;
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, tcp.port()));
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long [`Server::end_within`] waits after SIGTERM before it opens the
/// connection that lets a signal held by valgrind through.
#[allow(dead_code)] // the benches' part
const NUDGE_AFTER: Duration = Duration::from_millis(300);

impl Drop for Server {
    fn drop(&mut self) {
        // Only our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_line_reader(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn spawn_collector(err: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    text
}

/// Parses `listening tcp=A udp=B` with the crate's own reader.
pub fn parse_listening(line: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let listening: Listening = line
        .parse()
        .unwrap_or_else(|e| panic!("first line on stdout: {e}"));
    (listening.tcp, listening.udp)
}

/// Parses a `stats ...` line with the crate's own reader, which checks that
/// every contract field is there, in order, and nothing else: the
/// one-reactor line, or the proactor's (the same fields, then the ring's
/// two).
pub fn parse_stats(line: &str) -> Stats {
    stats_of(line).unwrap_or_else(|e| panic!("{e}"))
}

/// [`parse_stats`], with the reader's error instead of a panic.
fn stats_of(line: &str) -> Result<Stats, String> {
    line.parse::<Stats>()
        .or_else(|e| {
            line.parse::<ProactorStats>()
                .map(|counted| counted.stats)
                .map_err(|_| e)
        })
        .map_err(|e| e.to_string())
}

/// Raises this test process's soft open-file limit to its hard limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise fd limit")
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    procfs::is_alive(pid)
}

/// Polls `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client connected to `addr` with a receive buffer of `bytes` (set before
/// connecting, so the window it advertises is small from the start): the
/// server's replies then wait in the server's send buffer, as they would
/// over a slow network. Read and write timeouts as in [`Server::connect`].
pub fn connect_with_receive_buffer(addr: SocketAddr, bytes: usize) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}
