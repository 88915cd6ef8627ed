//! The connection limit, descriptor exhaustion, and the idle timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

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

        // While exhausted, the server idles instead of retrying accept in a loop.
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
