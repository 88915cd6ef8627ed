//! The connection limit, descriptor exhaustion, and the idle timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use reactor_echo::reactor::listener::RETRY_WHILE_PAUSED;

use crate::support::*;

server_test! {
    /// Past --max-connections a connection is accepted and closed at once and
    /// counted as rejected; those within the limit keep working.
    fn connections_past_the_limit_are_rejected(kind) for [reactor, threads, proactor]
    skip [iterative: "excused: one client at a time, the listen backlog is its only limit"] {
        let server = Server::start(kind, &["--max-connections", "2"]);
        let mut a = server.connect();
        let mut b = server.connect();
        round_trip(&mut a, b"a", b"a");
        round_trip(&mut b, b"b", b"b");
        let mut c = server.connect();
        let _ = c.write_all(b"c");
        let mut buf = [0u8; 8];
        // Closed by the server: EOF, or a reset if our byte arrived first.
        match c.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("rejected connection got {n} bytes back"),
        }
        round_trip(&mut a, b"still", b"still");
        drop((a, b));
        let (_, stats) = server.stop();
        assert_eq!(stats.rejected, 1, "{stats:?}");
        assert_eq!(stats.accepted, 2, "{stats:?}");
    }
}

server_test! {
    /// Under `prlimit --nofile=64:64` with a connection limit far above it, 200
    /// connections exhaust the descriptors: the server stays up, does not spin,
    /// and accepts the waiting connections once others close.
    fn descriptor_exhaustion_pauses_accept_without_spinning(kind) for [reactor, threads, proactor]
    skip [iterative: "excused: one client at a time never holds more than one descriptor for clients"] {
        raise_fd_limit();
        let server = Server::start_wrapped(
            &["prlimit", "--nofile=64:64"],
            kind,
            &["--max-connections", "1000"],
        );
        let mut clients: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
        // The first ones are served.
        round_trip(&mut clients[0], b"first", b"first");
        assert!(
            eventually(PATIENCE, || server
                .stderr()
                .contains("out of file descriptors")),
            "stderr:\n{}",
            server.stderr()
        );

        // While exhausted, the server idles instead of retrying accept in a
        // loop: also past its first retry, one second after it paused (a
        // reactor's retry that fails must wait a second again, not find
        // itself due for ever), so the measured second starts later than that.
        thread::sleep(RETRY_WHILE_PAUSED + Duration::from_millis(500));
        let before = server.cpu_ticks();
        thread::sleep(Duration::from_secs(1));
        let used = server.cpu_ticks() - before;
        assert!(
            used <= 10,
            "server used {used} ticks of CPU in 1 s while out of descriptors"
        );

        // The last client waits in the backlog; its request is answered once
        // descriptors are freed.
        let mut last = clients.pop().unwrap();
        last.write_all(b"waiting").unwrap();
        clients.truncate(50);
        drop(clients.drain(1..));
        let mut got = [0u8; 7];
        last.read_exact(&mut got)
            .expect("the waiting client is served after others close");
        assert_eq!(&got, b"waiting");
        round_trip(&mut clients[0], b"again", b"again");
        let (status, _) = server.stop();
        assert!(status.success());
    }
}

server_test! {
    /// Out of descriptors, a client waiting in the backlog is let in as soon
    /// as another connection closes, not at the acceptor's next retry (once
    /// a second): the listener raises no new event for a connection already
    /// queued, so the close itself must resume accepting. Each try first
    /// makes one round trip on a served client, so that every event before
    /// it has been handled (and a reactor that retried on any wake-up would
    /// have just retried, and failed); then it closes one served client and
    /// times the first waiting client's reply. A retry would answer about a
    /// second later; the close, at once. One try in three must come in
    /// under half a second, so that a stall of the busy machine is not
    /// taken for a missed close.
    fn a_close_lets_the_next_waiting_client_in_at_once(kind) for [reactor, threads, proactor]
    skip [iterative: "excused: one client at a time never holds more than one descriptor for clients"] {
        raise_fd_limit();
        let server = Server::start_wrapped(
            &["prlimit", "--nofile=64:64"],
            kind,
            &["--max-connections", "1000"],
        );
        // More clients than 64 descriptors can hold, each with one byte sent.
        let mut clients: Vec<TcpStream> = (0..90)
            .map(|_| {
                let mut c = server.connect();
                c.write_all(b"?").unwrap();
                c
            })
            .collect();
        assert!(
            eventually(PATIENCE, || server
                .stderr()
                .contains("out of file descriptors")),
            "stderr:\n{}",
            server.stderr()
        );
        // Every byte sent before this round trip has been answered, if its
        // client was accepted (clients[0] was: the table was empty).
        let mut first = clients.remove(0);
        let mut got = [0u8; 1];
        first.read_exact(&mut got).unwrap();
        round_trip(&mut first, b"sync", b"sync");
        // The rest are served (their byte came back) or wait in the
        // backlog, in the order they connected.
        let (mut served, mut waiting): (Vec<TcpStream>, Vec<TcpStream>) =
            clients.into_iter().partition(|c| {
                c.set_nonblocking(true).unwrap();
                let answered = (&*c).read(&mut [0u8; 1]).is_ok_and(|n| n == 1);
                c.set_nonblocking(false).unwrap();
                answered
            });
        assert!(
            served.len() >= 3 && waiting.len() >= 3,
            "{} served, {} waiting: expected several of each",
            served.len(),
            waiting.len()
        );
        let mut tries = Vec::new();
        for _ in 0..3 {
            round_trip(&mut first, b"sync", b"sync");
            let closed_at = Instant::now();
            drop(served.remove(0));
            let mut next = waiting.remove(0);
            next.read_exact(&mut got)
                .expect("the first waiting client is served once a descriptor is free");
            tries.push(closed_at.elapsed());
            if tries.last().is_some_and(|&t| t < RETRY_WHILE_PAUSED / 2) {
                break;
            }
            // Served now, it holds the descriptor the close freed.
            served.push(next);
        }
        assert!(
            tries.iter().any(|&t| t < RETRY_WHILE_PAUSED / 2),
            "the first waiting client was served {tries:?} after a close, in each try: \
             accepting resumed at the retry, not on the close"
        );
        // And the log says so: the pause is over.
        assert!(
            eventually(PATIENCE, || server.stderr().contains("accept resumed")),
            "stderr:\n{}",
            server.stderr()
        );
        let (status, _) = server.stop();
        assert!(status.success());
    }
}

server_test! {
    /// A paused acceptor also retries by itself, once a second: descriptors
    /// may be freed elsewhere than by one of its connections closing. Here
    /// the running server's open-file limit is lowered before the clients
    /// come (its soft limit, to 64 under a hard limit of 128: `prlimit
    /// --pid`, allowed on one's own processes), and raised back once they
    /// fill it: a client waiting in the backlog is then let in with no
    /// connection closing and none arriving.
    fn a_paused_acceptor_retries_by_itself(kind) for [reactor, threads]
    skip [
        iterative: "excused: one client at a time never holds more than one descriptor for clients",
        proactor: "not this way: its multishot accept takes the open-file limit once, when armed (io_uring's accept prep), so a limit lowered afterwards never pauses it"
    ] {
        raise_fd_limit();
        let server = Server::start_wrapped(
            &["prlimit", "--nofile=128:128"],
            kind,
            &["--max-connections", "1000"],
        );
        let set_limit = |soft: u32| {
            let set = std::process::Command::new("prlimit")
                .arg(format!("--pid={}", server.server_pid()))
                .arg(format!("--nofile={soft}:128"))
                .status()
                .expect("run prlimit");
            assert!(set.success(), "prlimit --pid --nofile={soft}:128 failed");
        };
        set_limit(64);
        let mut clients: Vec<TcpStream> = (0..90).map(|_| server.connect()).collect();
        assert!(
            eventually(PATIENCE, || server
                .stderr()
                .contains("out of file descriptors")),
            "stderr:\n{}",
            server.stderr()
        );
        set_limit(128);
        // The last client, at the back of the backlog, is answered.
        round_trip(clients.last_mut().unwrap(), b"last", b"last");
        let (status, stats) = server.stop();
        assert!(status.success());
        assert_eq!(stats.accepted, 90, "{stats:?}");
    }
}

server_test! {
    /// A --max-connections above what the open-file limit allows is warned
    /// about at start (accept will pause when descriptors run out); one
    /// within it, and the default, are not. Under `prlimit --nofile=64:64`
    /// the limit allows 48: 64 less the 16 kept for everything else.
    fn a_connection_limit_past_the_open_file_limit_is_warned_about(kind) for [reactor]
    skip [
        threads: "not checked: the blocking server does not compare --max-connections with the open-file limit",
        iterative: "not checked: the blocking server does not compare --max-connections with the open-file limit",
        proactor: "not checked: the proactor does not compare --max-connections with the open-file limit"
    ] {
        let warning = "is above what the open-file limit (64) allows";
        for (args, limit, warned) in [
            (&["--max-connections", "49"][..], 49, true),
            (&["--max-connections", "48"][..], 48, false),
            (&[][..], 48, false),
        ] {
            let server = Server::start_wrapped(&["prlimit", "--nofile=64:64"], kind, args);
            // The warning, if any, comes before the line with the limit.
            let stated = format!("max connections: {limit};");
            assert!(
                eventually(PATIENCE, || server.stderr().contains(&stated)),
                "{args:?}: no {stated:?} in stderr:\n{}",
                server.stderr()
            );
            let stderr = server.stderr();
            assert_eq!(
                stderr.contains(warning),
                warned,
                "{args:?}: the warning {warning:?} expected {warned}; stderr:\n{stderr}"
            );
        }
    }
}

server_test! {
    /// --idle-timeout 1: a silent connection is closed within 2 s and counted;
    /// one that keeps talking is not.
    fn idle_connections_are_closed_and_busy_ones_kept(kind) for concurrent {
        let server = Server::start(kind, &["--idle-timeout", "1"]);
        let mut idle = server.connect();
        let mut busy = server.connect();
        let opened = Instant::now();
        // Keep `busy` active every 300 ms for 2.5 s.
        while opened.elapsed() < Duration::from_millis(2500) {
            round_trip(&mut busy, b"tick", b"tick");
            thread::sleep(Duration::from_millis(300));
        }
        let mut buf = [0u8; 4];
        let n = idle.read(&mut buf).expect("idle connection closed cleanly");
        assert_eq!(n, 0, "idle connection should have been closed");
        round_trip(&mut busy, b"tock", b"tock");
        let (_, stats) = server.stop();
        assert_eq!(stats.closed_idle, 1, "{stats:?}");
        assert_eq!(stats.active, 1, "{stats:?}");
    }
}

server_test! {
    /// The idle close happens within S+1 seconds.
    fn idle_close_is_timely(kind) for all {
        let server = Server::start(kind, &["--idle-timeout", "1"]);
        let mut idle = server.connect();
        let opened = Instant::now();
        let mut buf = [0u8; 4];
        assert_eq!(idle.read(&mut buf).unwrap(), 0);
        let waited = opened.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "closed early: {waited:?}"
        );
        assert!(
            waited <= Duration::from_millis(2000),
            "closed late: {waited:?}"
        );
    }
}
