//! SIGTERM and SIGINT: stop accepting, write what is owed, print the stats
//! line, exit 0. And the periodic stats line.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::*;

server_test! {
    /// SIGTERM: exit status 0 and one stats line with the final counts.
    fn sigterm_prints_stats_and_exits_zero(kind) for [reactor, threads, iterative] {
        let server = Server::start(kind, &[]);
        let mut c = server.connect();
        round_trip(&mut c, b"abc", b"abc");
        let (status, stats) = server.stop();
        assert_eq!(status.code(), Some(0));
        assert_eq!(stats["accepted"], 1);
        assert_eq!(stats["active"], 1, "the client was still connected");
        assert_eq!(stats["bytes_out"], 3);
    }
}

server_test! {
    /// SIGINT behaves the same, and the connected client sees the server's FIN.
    fn sigint_prints_stats_exits_zero_and_closes_clients(kind) for [reactor, threads, iterative] {
        let mut server = Server::start(kind, &[]);
        let mut c = server.connect();
        round_trip(&mut c, b"x", b"x");
        let started = Instant::now();
        server.signal("INT");
        let status = server.wait_exit(PATIENCE).expect("exits");
        assert_eq!(status.code(), Some(0));
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "drain took {:?}",
            started.elapsed()
        );
        let line = server.last_stats_line().expect("stats line");
        assert_eq!(parse_stats(&line)["accepted"], 1);
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    }
}

server_test! {
    /// After the signal, new connections are refused.
    fn listener_closes_on_signal(kind) for [reactor, threads, iterative] {
        let mut server = Server::start(kind, &[]);
        let addr = server.tcp();
        // A paused peer keeps the drain going for its full second.
        let mut slow = server.connect();
        // Fill the buffers between us; the write may block once they are
        // full, so it is bounded, and its outcome does not matter.
        slow.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        slow.write_all(&pattern(8 << 20, 1)).ok();
        server.signal("TERM");
        assert!(eventually(PATIENCE, || std::net::TcpStream::connect(addr).is_err()));
        server
            .wait_exit(PATIENCE)
            .expect("exits within the drain limit");
    }
}

server_test! {
    /// --stats-interval 1 prints the live line every second.
    fn periodic_stats_line(kind) for [reactor, threads, iterative] {
        let server = Server::start(kind, &["--stats-interval", "1"]);
        let mut c = server.connect();
        round_trip(&mut c, b"12345", b"12345");
        let stats = server.wait_for_stats(|s| s["bytes_in"] == 5);
        assert_eq!(stats["active"], 1);
        let again = server
            .next_line(Duration::from_millis(2500))
            .expect("a second line");
        assert!(again.starts_with("stats accepted=1 "), "{again}");
    }
}
