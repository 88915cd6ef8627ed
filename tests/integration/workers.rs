//! `serve --workers N`: N reactors in N processes on one port (SO_REUSEPORT)
//! under a supervisor. TCP and UDP served; connections spread over more
//! than one worker, whose log lines say which they are; one summed stats
//! line; a killed worker started again while the others serve, and the
//! connections it held counted as lost; Ctrl-C to the whole process group
//! gives one grace period; no worker outlives the supervisor; a port in use
//! is one `error:` line with no worker started.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use reactor_echo::stats::Stats;
use reactor_echo::workers::SupervisedStats;

use crate::support::*;

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

server_test! {
    /// Three workers: 300 connections and a datagram answered, the
    /// connections spread over more than one worker (their final lines in
    /// the log), and one summed line whose `accepted` is the connections
    /// made. The same supervisor runs reactors or proactors.
    fn three_workers_serve_tcp_and_udp_and_one_line_sums_them(kind) for [reactor, proactor]
    skip [
        threads: "the blocking servers take no --workers: one process, by design",
        iterative: "the blocking servers take no --workers: one process, by design"
    ] {
        let server = Server::start(kind, &["--workers", "3"]);
        assert_eq!(server.children().len(), 3, "{}", server.stderr());
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
        // Each worker's own log lines carry its slot.
        for slot in 0..3 {
            let tag = format!(" worker {slot}] ");
            assert!(
                stderr.lines().any(|l| l.contains(&tag)),
                "no log line of worker {slot}:\n{stderr}"
            );
        }
    }
}

/// The summed live line (`--stats-interval`) that satisfies `check`.
fn wait_for_summed(server: &Server, check: impl Fn(&SupervisedStats) -> bool) -> SupervisedStats {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let Some(line) = server.next_line(Duration::from_millis(200)) else {
            continue;
        };
        if let Ok(summed) = line.parse::<SupervisedStats>() {
            if check(&summed) {
                return summed;
            }
            last = line;
        }
    }
    panic!("no summed line matched; last: {last}\n{}", server.stderr());
}

/// SIGKILL a worker that holds connections: the kernel resets them, so
/// they leave `active` and are counted as `lost`, as many as the clients
/// that saw their connection die; once every client has closed, the final
/// line has nothing active and its books balance.
#[test]
fn a_dead_workers_connections_leave_active_and_are_counted_lost() {
    let server = Server::start(
        kind::reactor,
        &["--workers", "2", "--udp", "off", "--stats-interval", "1"],
    );
    let mut clients: Vec<TcpStream> = (0..20).map(|_| server.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let message = format!("before {i}\n");
        round_trip(c, message.as_bytes(), message.as_bytes());
    }
    // Every worker has reported its connections to the supervisor.
    wait_for_summed(&server, |s| s.stats.accepted == 20 && s.stats.active == 20);
    let victim = server.children()[0];
    kill("KILL", victim);
    assert!(eventually(PATIENCE, || !alive(victim)));
    // The clients of the dead worker find their connection reset (or
    // closed); the others still get their answer.
    let mut dead = 0;
    for c in &mut clients {
        let answered = c.write_all(b"after\n").is_ok() && {
            let mut reply = [0u8; 6];
            c.read_exact(&mut reply).is_ok() && &reply == b"after\n"
        };
        if !answered {
            dead += 1;
        }
    }
    assert!(
        (1..20).contains(&dead),
        "{dead} of 20 connections died with one of two workers"
    );
    drop(clients);
    let (summed, stderr) = stop(server);
    let s = summed.stats;
    assert_eq!(summed.lost, dead, "{summed}\n{stderr}");
    assert_eq!(s.active, 0, "{summed}\n{stderr}");
    assert_eq!(s.accepted, 20, "{summed}");
    assert_eq!(
        s.accepted,
        s.active + s.closed_eof + s.closed_reset + s.closed_idle + summed.lost,
        "the books do not balance: {summed}"
    );
    assert!(
        stderr.contains(&format!("held {dead} connections when it died")),
        "{stderr}"
    );
}

/// What a [`sending_peer`] returns: the bytes it got back, whether they
/// ended in the server's FIN (not a reset), and what it sent.
type PeerOutcome = (Vec<u8>, bool, Vec<u8>);

/// A peer that keeps sending (about 1 MB/s) and reads every reply, until
/// the server's FIN: then it stops sending and closes its side. Beside its
/// thread, the count of bytes it has got back so far.
/// How long after the server's FIN a [`sending_peer`] goes on sending:
/// longer than the supervisor takes to pass a signal on (its 50 ms tick).
const NOTICES_FIN_AFTER: Duration = Duration::from_millis(300);

fn sending_peer(
    addr: SocketAddr,
    seed: u64,
) -> (thread::JoinHandle<PeerOutcome>, Arc<AtomicUsize>) {
    const CHUNK: usize = 1024;
    let sent = pattern(16 << 20, seed);
    let mut reader = TcpStream::connect(addr).expect("connect");
    reader.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut writer = reader.try_clone().expect("clone");
    let finished = Arc::new(AtomicBool::new(false));
    let stop_writing = Arc::clone(&finished);
    let progress = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&progress);
    let peer = thread::spawn(move || {
        let sending = thread::spawn(move || {
            let mut at = 0;
            // Bounded: at most the pattern, and a little after the server's
            // FIN: like a real client, it notices the FIN only some time
            // later, so the server's grace period lasts that long.
            let mut fin_seen: Option<Instant> = None;
            while at + CHUNK <= sent.len() {
                if stop_writing.load(Ordering::Relaxed) {
                    let since = *fin_seen.get_or_insert_with(Instant::now);
                    if since.elapsed() >= NOTICES_FIN_AFTER {
                        break;
                    }
                }
                if writer.write_all(&sent[at..at + CHUNK]).is_err() {
                    break;
                }
                at += CHUNK;
                thread::sleep(Duration::from_millis(1));
            }
            let _ = writer.shutdown(Shutdown::Write);
            sent
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let fin = loop {
            match reader.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    counted.store(got.len(), Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        finished.store(true, Ordering::Relaxed);
        let sent = sending.join().expect("the sending thread");
        (got, fin, sent)
    });
    (peer, progress)
}

/// Ctrl-C in a terminal: SIGINT to the server's whole process group, with
/// six peers still sending. One grace period, not two signals: every peer
/// gets every byte the server sent it, then the server's FIN (not a
/// reset), and no process reports a second signal. For one reactor and
/// for a supervisor of two.
#[test]
fn ctrl_c_to_the_process_group_gives_one_grace_period() {
    for workers in ["1", "2"] {
        let mut server =
            Server::start_as_job(kind::reactor, &["--workers", workers, "--udp", "off"]);
        let (peers, progress): (Vec<_>, Vec<_>) =
            (0..6).map(|i| sending_peer(server.tcp(), i)).unzip();
        // Every peer is served (replies flowing) before the signal.
        let flowing = eventually(PATIENCE, || {
            progress
                .iter()
                .all(|p| p.load(Ordering::Relaxed) >= 64 * 1024)
        });
        assert!(flowing, "the peers were not served\n{}", server.stderr());
        server.signal_group("INT");
        let mut received = 0;
        for (i, peer) in peers.into_iter().enumerate() {
            let (got, fin, sent) = peer.join().expect("a peer");
            assert!(
                fin,
                "workers={workers}: peer {i} was reset, not closed\n{}",
                server.stderr()
            );
            assert_bytes_prefix(&got, &sent);
            received += got.len() as u64;
        }
        let status = server.wait_exit(PATIENCE).expect("the server exits");
        assert!(
            status.success(),
            "workers={workers}: {status}\n{}",
            server.stderr()
        );
        let stderr = server.stderr();
        assert!(
            !stderr.contains("second signal"),
            "workers={workers}:\n{stderr}"
        );
        let line = server.last_stats_line().expect("a stats line");
        let stats = line
            .parse::<SupervisedStats>()
            .map(|summed| summed.stats)
            .or_else(|_| line.parse::<Stats>())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.bytes_out, received, "workers={workers}: {line}");
        assert_eq!(stats.active, 0, "workers={workers}: {line}");
    }
}

/// SIGKILL one worker: it is logged, started again, the others serve
/// meanwhile, and the restart is counted.
#[test]
fn a_killed_worker_is_started_again_and_the_others_serve() {
    let server = Server::start(kind::reactor, &["--workers", "3", "--udp", "off"]);
    let before = server.children();
    kill("KILL", before[0]);
    // Until the killed worker is gone, its listener still takes its share
    // of new connections, and closing it resets them (docs/scaling.md: a
    // worker that dies loses its queue). Once it is gone, the others serve
    // every new connection, before the restart.
    assert!(eventually(PATIENCE, || !alive(before[0])));
    round_trips(&server, 30);
    let restarted = eventually(PATIENCE, || {
        let now = server.children();
        now.len() == 3 && !now.contains(&before[0])
    });
    assert!(
        restarted,
        "no new worker: {:?}\n{}",
        server.children(),
        server.stderr()
    );
    round_trips(&server, 30);
    let (summed, stderr) = stop(server);
    assert_eq!(summed.restarts, 1, "{summed}");
    assert!(stderr.contains("exited (signal: 9"), "{stderr}");
    // It was killed before it held any connection: one line says it died,
    // none says the kernel reset connections it did not have.
    assert!(!stderr.contains("when it died"), "{stderr}");
}

/// SIGKILL the supervisor: every worker stops too (PR_SET_PDEATHSIG).
#[test]
fn killing_the_supervisor_leaves_no_worker() {
    let server = Server::start(kind::reactor, &["--workers", "3"]);
    let workers = server.children();
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

/// `--stats-interval 1` under a supervisor: one summed line a second (not
/// none, and not one per wake-up of the supervisor's 50 ms check), each
/// with the workers' counts.
#[test]
fn the_summed_line_comes_once_per_interval() {
    let server = Server::start(
        kind::reactor,
        &["--workers", "2", "--stats-interval", "1", "--udp", "off"],
    );
    round_trips(&server, 5);
    let started = Instant::now();
    let mut lines = 0;
    while started.elapsed() < Duration::from_millis(3_500) {
        if let Some(line) = server.next_line(Duration::from_millis(100)) {
            if line.parse::<SupervisedStats>().is_ok() {
                lines += 1;
            }
        }
    }
    assert!(
        (2..=5).contains(&lines),
        "{lines} summed lines in 3.5 s at one a second"
    );
}

/// The first summed line comes one interval after the start, not at once:
/// a line at start would count nothing yet (and then keep an interval
/// early for the whole run).
#[test]
fn the_first_summed_line_waits_one_interval() {
    let server = Server::start(
        kind::reactor,
        &["--workers", "2", "--stats-interval", "2", "--udp", "off"],
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_200) {
        if let Some(line) = server.next_line(Duration::from_millis(100)) {
            assert!(
                line.parse::<SupervisedStats>().is_err(),
                "a summed line {:?} after start, before the 2 s interval: {line}",
                started.elapsed()
            );
        }
    }
    let first = eventually(Duration::from_secs(3), || {
        server
            .next_line(Duration::from_millis(100))
            .is_some_and(|line| line.parse::<SupervisedStats>().is_ok())
    });
    assert!(first, "no summed line within one interval after that");
}

/// A worker that dies as soon as it starts does not make the supervisor
/// spin: each slot is started at most once a second. The test kills the
/// worker in slot 0 every time a new one appears, for 3.5 s: at most about
/// four restarts (a supervisor without the pause would restart it as fast
/// as the test can kill it).
#[test]
fn a_worker_that_keeps_dying_is_restarted_at_most_once_a_second() {
    let server = Server::start(kind::reactor, &["--workers", "2", "--udp", "off"]);
    let keep = server.children()[1];
    let started = Instant::now();
    let mut killed = 0;
    while started.elapsed() < Duration::from_millis(3_500) {
        for pid in server.children() {
            if pid != keep && alive(pid) {
                kill("KILL", pid);
                killed += 1;
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    let (summed, _) = stop(server);
    assert!(killed >= 2, "only {killed} workers were killed");
    assert!(
        summed.restarts <= 5,
        "{} restarts in 3.5 s",
        summed.restarts
    );
}

/// A worker that never says `listening` fails the start once its time is
/// up (10 s): the supervisor then gives up waiting and stops its workers.
/// Here every worker's `listen` is held back for 60 s with strace's fault
/// injection (the supervisor itself never calls `listen`: it reserves the
/// port with a bound socket), and strace also records when the supervisor
/// sends its workers SIGTERM: about 10 s in. (Its exit cannot be timed:
/// a worker held in strace's delay is reaped only when the delay ends.)
#[test]
fn workers_that_never_announce_themselves_fail_the_start() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: strace (which holds the workers' listen back) is not installed");
        return;
    }
    let log = std::env::temp_dir().join(format!("never-announce-{}.strace", std::process::id()));
    let started = Instant::now();
    let mut child = tied_to_this_thread("strace")
        .args(["-f", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=listen,kill",
            "-e",
            "inject=listen:delay_enter=60s",
        ])
        // The supervisor, too, dies with strace (which the test kills).
        .args(["setpriv", "--pdeathsig", "KILL", "--"])
        .args([
            BIN,
            "serve",
            "--workers",
            "2",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "off",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the supervisor under strace");
    let gave_up = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|text| {
            text.lines()
                .any(|l| l.contains("kill(") && l.contains("SIGTERM"))
        })
    });
    let waited = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
    assert!(gave_up, "the supervisor was still waiting after 20 s");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(15)).contains(&waited),
        "the supervisor gave up after {waited:?}"
    );
}
