//! What the exposure guards do and cost, in one run:
//! `cargo bench --bench exposure` (`docs/security.md` reads its table).
//!
//! * **The echo loop of CERT CA-1996-01**: two reactors, and one forged
//!   datagram "from" one to the other (a raw socket writes the UDP header,
//!   so it needs root). How many replies the first sends in the next
//!   `--seconds` (default 3): without the guards, between ordinary ports; with
//!   them (`--exposed`), between the same ports (capped by the rate) and
//!   between two well-known answering ports, NFS's 2049 and memcached's
//!   11211 (refused by the source check: the loop cannot start).
//! * **What the guards cost per datagram**: the reactor's CPU time per
//!   answered datagram (`reactor-echo bench --udp --server-pid`, 100
//!   sockets, 64 bytes) without the guards and with every UDP guard on
//!   (`--exposed`, the rate set so high that it never limits: the checks
//!   and the token bucket run for every datagram, and every datagram is
//!   answered), interleaved repeats, medians; the server on CPU 0, the load
//!   generator on CPU 1.
//!
//! Needs root and taskset; without them it says so in one line and exits 1.
//! `-- --quick` (1 repeat, 1 s) writes under `target/bench-partial/`; a
//! complete run writes `docs/benchmarks/exposure.md`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{build_release, cannot_run, machine_line, median, publish, require_tools};
use reactor_echo::bench::report::parse_json_numbers;
use reactor_echo::listening::Listening;
use reactor_echo::stats::Stats;

/// A reactor with UDP only, pinned to CPU 0.
struct Udp {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
}

impl Udp {
    fn start(bin: &str, args: &[&str]) -> Udp {
        let mut child = Command::new("taskset")
            .args(["-c", "0", bin, "serve", "--tcp", "off"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the listening line");
        let listening: Listening = line.parse().expect("a listening line");
        Udp {
            child,
            stdout,
            addr: listening.udp.expect("UDP is on"),
        }
    }

    /// SIGTERM, then the final stats line.
    fn stop(mut self) -> Stats {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
        let mut last = None;
        for line in (&mut self.stdout).lines().map_while(Result::ok) {
            if line.starts_with("stats ") {
                last = Some(line);
            }
        }
        last.and_then(|l| l.parse().ok()).expect("a stats line")
    }
}

/// One datagram to `to` that claims to come from 127.0.0.1:`from` (a raw
/// socket: the kernel adds the IP header, the UDP header is written here,
/// its checksum 0, which IPv4 allows).
fn forge(from: u16, to: SocketAddr) {
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::UDP),
    )
    .expect("a raw socket");
    let payload = b"loop";
    let len = (8 + payload.len()) as u16;
    let mut packet = Vec::new();
    for field in [from, to.port(), len, 0] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    packet.extend_from_slice(payload);
    raw.send_to(&packet, &to.into()).expect("send");
}

/// Replies the first of two reactors sent in `seconds` after one forged
/// datagram made them answer each other.
fn echo_loop(bin: &str, args: &[&str], ports: (u16, u16), seconds: u64) -> u64 {
    let at = |port: u16| format!("127.0.0.1:{port}");
    let (a_port, b_port) = (at(ports.0), at(ports.1));
    let a = Udp::start(bin, &[args, &["--udp", &a_port]].concat());
    let b = Udp::start(bin, &[args, &["--udp", &b_port]].concat());
    forge(b.addr.port(), a.addr);
    std::thread::sleep(Duration::from_secs(seconds));
    let answered = a.stop().udp_out;
    b.stop();
    answered
}

/// The server's CPU microseconds per answered datagram, from one run of
/// `reactor-echo bench --udp`.
fn cpu_per_datagram(bin: &str, server: &[&str], seconds: u64) -> f64 {
    let server = Udp::start(bin, &[server, &["--udp", "127.0.0.1:0"]].concat());
    let out = Command::new("taskset")
        .args([
            "-c",
            "1",
            bin,
            "bench",
            "--udp",
            "--connections",
            "100",
            "--json",
        ])
        .args(["--duration", &seconds.to_string(), "--warmup", "1"])
        .args(["--addr", &server.addr.to_string()])
        .args(["--server-pid", &server.child.id().to_string()])
        .output()
        .expect("run the load generator");
    server.stop();
    let report = parse_json_numbers(&String::from_utf8_lossy(&out.stdout));
    report
        .get("server_cpu.us_per_msg")
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let repeats = if quick { 1 } else { 5 };
    if let Err(why) = require_tools(&["taskset"]) {
        cannot_run("exposure", &why);
    }
    if !rustix::process::geteuid().is_root() {
        cannot_run(
            "exposure",
            "forging the loop's first datagram needs a raw socket, which needs root",
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&root);
    // Two ordinary ports, free now (the servers bind them at once).
    let free = || {
        UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    let ordinary = (free(), free());
    let loops = [
        (
            "without the guards (loopback), ordinary ports",
            vec![],
            ordinary,
        ),
        ("exposed, ordinary ports", vec!["--exposed"], ordinary),
        (
            "exposed, ports 2049 and 11211",
            vec!["--exposed"],
            (2049, 11_211),
        ),
    ];
    let mut out = format!(
        "One run; {}.\n\n\
         The echo loop of CERT CA-1996-01: two reactors on 127.0.0.1, one forged datagram from the second to the first, and the replies the first sent in the next {seconds} s:\n\n\
         | guards | replies in {seconds} s | per second |\n|---|---:|---:|\n",
        machine_line()
    );
    for (name, flags, ports) in &loops {
        let sent = echo_loop(&bin, flags, *ports, seconds);
        out += &format!(
            "| {name} | {sent} | {:.0} |\n",
            sent as f64 / seconds as f64
        );
    }
    let unguarded = ["--udp-source-check", "basic"];
    let guarded = [
        "--exposed",
        "--udp-rate",
        "100000000",
        "--udp-burst",
        "100000000",
    ];
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        off.push(cpu_per_datagram(&bin, &unguarded, seconds));
        on.push(cpu_per_datagram(&bin, &guarded, seconds));
    }
    let (off, on) = (median(off), median(on));
    out += &format!(
        "\nWhat the UDP guards cost: the server's CPU time per answered datagram (`reactor-echo bench --udp --server-pid`, 100 sockets, 64 B, {seconds} s after 1 s of warm-up; medians of {repeats} interleaved repeats; server on CPU 0, load generator on CPU 1):\n\n\
         | guards | server CPU us per datagram | ratio |\n|---|---:|---:|\n\
         | off (`--udp-source-check basic`) | {off:.3} | 1.00x |\n\
         | on (`--exposed`, the rate set never to limit) | {on:.3} | {:.2}x |\n",
        on / off
    );
    print!("{out}");
    let path = publish(&root, "exposure.md", &out, !quick);
    eprintln!("wrote {}", path.display());
}
