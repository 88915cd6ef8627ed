//! Test support: start the real binary on port 0, read its `listening` and
//! `stats` lines, measure it through /proc, and stop it by its PID.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_reactor-echo");

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The servers under test: one suite, three ways of driving the same service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `reactor-echo serve`: the mio reactor.
    Reactor,
    /// `reactor-echo blocking --model threads`: a thread per connection.
    Threads,
    /// `reactor-echo blocking --model iterative`: one client at a time.
    Iterative,
}

impl Kind {
    /// The subcommand (and model) that starts this kind.
    pub fn subcommand(self) -> &'static [&'static str] {
        match self {
            Kind::Reactor => &["serve"],
            Kind::Threads => &["blocking", "--model", "threads"],
            Kind::Iterative => &["blocking", "--model", "iterative"],
        }
    }

    /// A small number per kind, to keep concurrent tests of different kinds
    /// apart where they need a fixed resource (a loopback address, say).
    pub fn index(self) -> u8 {
        self as u8
    }
}

/// The kinds by the names the test functions get (`half_close::reactor`).
// Lower case so that `server_test!` can use one identifier for both.
#[allow(non_upper_case_globals)]
pub mod kind {
    use super::Kind;
    /// See [`Kind::Reactor`].
    pub const reactor: Kind = Kind::Reactor;
    /// See [`Kind::Threads`].
    pub const threads: Kind = Kind::Threads;
    /// See [`Kind::Iterative`].
    pub const iterative: Kind = Kind::Iterative;
}

/// Expands one test body into a `#[test]` per server kind, so a failure names
/// its server (`half_close::threads`). Kinds a test does not apply to are
/// listed with the reason, and show up in the test output as ignored with it:
///
/// ```ignore
/// server_test! {
///     /// What it proves.
///     fn name(kind) for [reactor, threads]
///     skip [iterative: "serves one client at a time: that is the lesson"]
///     { let server = Server::start(kind, &[]); ... }
/// }
/// ```
macro_rules! server_test {
    (
        $(#[doc = $doc:literal])*
        fn $name:ident($kind:ident) for [$($run:ident),+]
        $(skip [$($skip:ident: $why:literal),+])?
        $body:block
    ) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($kind: crate::support::Kind) $body

            $(
                #[test]
                fn $run() {
                    run(crate::support::kind::$run)
                }
            )+
            $($(
                #[test]
                #[ignore = $why]
                fn $skip() {}
            )+)?
        }
    };
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
    /// `reactor-echo SUBCOMMAND --tcp 127.0.0.1:0 --udp 127.0.0.1:0 ARGS...`
    pub fn start(kind: Kind, args: &[&str]) -> Server {
        Server::start_command(Command::new(BIN), kind, args)
    }

    /// The same, with the binary run through a wrapper (`prlimit ... BIN`).
    pub fn start_wrapped(wrapper: &[&str], kind: Kind, args: &[&str]) -> Server {
        let mut command = Command::new(wrapper[0]);
        command.args(&wrapper[1..]).arg(BIN);
        Server::start_command(command, kind, args)
    }

    fn start_command(mut command: Command, kind: Kind, args: &[&str]) -> Server {
        command.args(kind.subcommand());
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

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
    pub fn wait_for_stats(
        &self,
        check: impl Fn(&HashMap<String, u64>) -> bool,
    ) -> HashMap<String, u64> {
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

    /// Sends SIGTERM and waits for exit; returns the status and the parsed
    /// final stats line.
    pub fn stop(mut self) -> (ExitStatus, HashMap<String, u64>) {
        self.signal("TERM");
        let status = self
            .wait_exit(PATIENCE)
            .expect("server exits after SIGTERM");
        let line = self
            .last_stats_line()
            .unwrap_or_else(|| panic!("no stats line; stderr:\n{}", self.stderr()));
        (status, parse_stats(&line))
    }

    /// After a signal already sent: waits for exit; returns the status and
    /// the parsed final stats line.
    pub fn stop_after_signal(mut self) -> (ExitStatus, HashMap<String, u64>) {
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

    /// Current resident set size in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        proc_status_number(self.pid(), "VmRSS:") * 1024
    }

    /// Peak resident set size in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        proc_status_number(self.pid(), "VmHWM:") * 1024
    }

    /// The number of threads the server runs.
    pub fn threads(&self) -> u64 {
        proc_status_number(self.pid(), "Threads:")
    }

    /// CPU time used so far (user + system), in clock ticks (1/100 s).
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read stat");
        // The command name may contain spaces; fields restart after ')'.
        let after = &stat[stat.rfind(')').expect(")") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

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

/// Parses `listening tcp=A udp=B` (either may be `off`).
pub fn parse_listening(line: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let mut parts = line.split_whitespace();
    assert_eq!(parts.next(), Some("listening"), "first line: {line}");
    let addr = |part: Option<&str>, key: &str| {
        let value = part
            .and_then(|p| p.strip_prefix(key))
            .unwrap_or_else(|| panic!("bad line: {line}"));
        (value != "off").then(|| value.parse().expect("address"))
    };
    let tcp = addr(parts.next(), "tcp=");
    let udp = addr(parts.next(), "udp=");
    assert!(parts.next().is_none(), "extra words in: {line}");
    (tcp, udp)
}

/// Parses a `stats k=v ...` line, checking that every contract key is there.
pub fn parse_stats(line: &str) -> HashMap<String, u64> {
    let mut parts = line.split_whitespace();
    assert_eq!(parts.next(), Some("stats"));
    let map: HashMap<String, u64> = parts
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (k.to_owned(), v.parse().expect("number"))
        })
        .collect();
    for key in [
        "accepted",
        "rejected",
        "active",
        "closed_eof",
        "closed_reset",
        "closed_idle",
        "bytes_in",
        "bytes_out",
        "udp_in",
        "udp_out",
        "udp_dropped",
    ] {
        assert!(map.contains_key(key), "stats line lacks {key}: {line}");
    }
    assert_eq!(map.len(), 11, "unexpected keys in {line}");
    map
}

/// The number after `key` in `/proc/PID/status` (kB for the memory lines).
fn proc_status_number(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .expect("status key");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `request` and reads exactly `expected.len()` bytes back.
pub fn round_trip(stream: &mut TcpStream, request: &[u8], expected: &[u8]) {
    stream.write_all(request).expect("write");
    let mut got = vec![0; expected.len()];
    stream.read_exact(&mut got).expect("read reply");
    assert_eq!(got, expected);
}

/// Asserts that `got` is a prefix of `sent`, saying where they differ.
pub fn assert_bytes_prefix(got: &[u8], sent: &[u8]) {
    assert!(
        got.len() <= sent.len(),
        "got {} bytes, more than the {} sent",
        got.len(),
        sent.len()
    );
    if let Some(at) = got.iter().zip(sent).position(|(a, b)| a != b) {
        let window = |b: &[u8]| format!("{:02x?}", &b[at..(at + 16).min(b.len())]);
        panic!(
            "bytes differ at offset {at} of {}: got {} expected {}",
            got.len(),
            window(got),
            window(sent)
        );
    }
}

/// Reads until EOF (the server's FIN).
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read to EOF");
    all
}

/// Raises this test process's soft open-file limit to its hard limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise fd limit")
}

/// Deterministic, non-repeating-looking test bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
