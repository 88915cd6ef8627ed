//! `serve --workers N`: N reactors in N processes on one port (SO_REUSEPORT)
//! under a supervisor. TCP and UDP served; connections spread over more
//! than one worker; one summed stats line; a killed worker started again
//! while the others serve; no worker outlives the supervisor; a port in use
//! is one `error:` line with no worker started.

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use reactor_echo::workers::SupervisedStats;

use crate::support::*;

/// The server's child processes (its workers).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn kill(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// `count` connections one after another, each one verified round trip.
fn round_trips(server: &Server, count: usize) {
    for i in 0..count {
        let message = format!("message {i}\n");
        round_trip(
            &mut server.connect(),
            message.as_bytes(),
            message.as_bytes(),
        );
    }
}

/// SIGTERM, then the supervisor's one summed line.
fn stop(mut server: Server) -> (SupervisedStats, String) {
    server.signal("TERM");
    let status = server.wait_exit(PATIENCE).expect("the supervisor exits");
    assert!(status.success(), "{status}\n{}", server.stderr());
    let line = server.last_stats_line().expect("a stats line");
    let summed = line
        .parse::<SupervisedStats>()
        .unwrap_or_else(|e| panic!("{e}"));
    (summed, server.stderr())
}

/// Three workers: 300 connections and a datagram answered, the connections
/// spread over more than one worker (their final lines in the log), and
/// one summed line whose `accepted` is the connections made.
#[test]
fn three_workers_serve_tcp_and_udp_and_one_line_sums_them() {
    let server = Server::start(kind::reactor, &["--workers", "3"]);
    assert_eq!(children(server.pid()).len(), 3, "{}", server.stderr());
    round_trips(&server, 300);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    udp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    udp.send_to(b"ping", server.udp()).expect("send");
    let mut buf = [0u8; 16];
    let (n, _) = udp.recv_from(&mut buf).expect("a UDP reply");
    assert_eq!(&buf[..n], b"ping");
    let (summed, stderr) = stop(server);
    assert_eq!((summed.workers, summed.restarts), (3, 0));
    assert_eq!(summed.stats.accepted, 300, "{summed}");
    assert_eq!(summed.stats.udp_in, 1);
    // Each worker's own final line, logged by the supervisor.
    let busy = stderr
        .lines()
        .filter_map(|l| l.split_once("] worker ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(": stats "))
        .filter(|(_, line)| !line.starts_with("accepted=0 "))
        .count();
    assert!(
        busy >= 2,
        "the connections all landed on one worker:\n{stderr}"
    );
}

/// SIGKILL one worker: it is logged, started again, the others serve
/// meanwhile, and the restart is counted.
#[test]
fn a_killed_worker_is_started_again_and_the_others_serve() {
    let server = Server::start(kind::reactor, &["--workers", "3", "--udp", "off"]);
    let before = children(server.pid());
    kill("KILL", before[0]);
    // Until the killed worker is gone, its listener still takes its share
    // of new connections, and closing it resets them (docs/scaling.md: a
    // worker that dies loses its queue). Once it is gone, the others serve
    // every new connection, before the restart.
    assert!(eventually(PATIENCE, || !alive(before[0])));
    round_trips(&server, 30);
    let restarted = eventually(PATIENCE, || {
        let now = children(server.pid());
        now.len() == 3 && !now.contains(&before[0])
    });
    assert!(
        restarted,
        "no new worker: {:?}\n{}",
        children(server.pid()),
        server.stderr()
    );
    round_trips(&server, 30);
    let (summed, stderr) = stop(server);
    assert_eq!(summed.restarts, 1, "{summed}");
    assert!(stderr.contains("exited (signal: 9"), "{stderr}");
}

/// SIGKILL the supervisor: every worker stops too (PR_SET_PDEATHSIG).
#[test]
fn killing_the_supervisor_leaves_no_worker() {
    let server = Server::start(kind::reactor, &["--workers", "3"]);
    let workers = children(server.pid());
    assert_eq!(workers.len(), 3);
    kill("KILL", server.pid());
    let gone = eventually(PATIENCE, || workers.iter().all(|&w| !alive(w)));
    assert!(gone, "workers left running: {workers:?}");
}

/// A port held by another program: one `error:` line, exit 1, and no
/// worker was ever started.
#[test]
fn a_port_in_use_is_one_error_line_and_no_worker() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let child = Command::new(BIN)
        .args(["serve", "--workers", "3", "--udp", "off", "--tcp"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let supervisor = child.id();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot bind TCP 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // No process anywhere names this supervisor as its own.
    let marker = format!("--worker-of\0{supervisor}\0");
    std::thread::sleep(Duration::from_millis(100));
    let strays = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(&marker))
        .count();
    assert_eq!(strays, 0);
}
