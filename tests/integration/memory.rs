//! Memory discipline, measured from outside: idle connections own no
//! buffers, and thousands of connections come and go without a leak.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crate::support::*;

server_test! {
    /// 2,000 idle connections cost under 2 KiB each of the server's RSS: a coarse
    /// guard that catches any buffer allocated per connection (a 4 KiB read
    /// buffer each would add 8 MiB).
    fn idle_connections_cost_little(kind) for [reactor]
    skip [threads: "a thread per connection costs a stack each: measured in docs/blocking-vs-reactor.md", iterative: "serves one client at a time: the second client waits until the first leaves"] {
        raise_fd_limit();
        let server = Server::start(kind, &[]);
        // Warm up the reactor's own buffers and the slab's first growth.
        let mut warm: Vec<TcpStream> = (0..10).map(|_| server.connect()).collect();
        for c in &mut warm {
            round_trip(c, b"w", b"w");
        }
        drop(warm);
        thread::sleep(Duration::from_millis(100));
        let before = server.rss();
        let mut clients: Vec<TcpStream> = (0..2000).map(|_| server.connect()).collect();
        // One round trip on the last proves all were accepted.
        round_trip(clients.last_mut().unwrap(), b"x", b"x");
        let per_conn = (server.rss().saturating_sub(before)) / 2000;
        assert!(
            per_conn < 2048,
            "{per_conn} bytes of RSS per idle connection"
        );
    }
}

server_test! {
    /// 5,000 connections, in waves of 500, each with a verified round trip:
    /// afterwards the server's RSS has grown by at most 5 MiB.
    fn soak_of_5000_connections_does_not_leak(kind) for concurrent {
        raise_fd_limit();
        let server = Server::start(kind, &[]);
        let wave = |n: usize, seed: u64| {
            let mut clients: Vec<TcpStream> = (0..n).map(|_| server.connect()).collect();
            for (i, c) in clients.iter_mut().enumerate() {
                let msg = pattern(64 + i % 200, seed + i as u64);
                round_trip(c, &msg, &msg);
            }
        };
        wave(500, 0);
        thread::sleep(Duration::from_millis(100));
        let before = server.rss();
        for w in 1..10 {
            wave(500, w * 1000);
        }
        thread::sleep(Duration::from_millis(200));
        let grown = server.rss().saturating_sub(before);
        assert!(
            grown <= 5 << 20,
            "RSS grew by {} KiB over the soak",
            grown >> 10
        );
        let (_, stats) = server.stop();
        assert_eq!(stats.accepted, 5000);
        assert_eq!(
            stats.closed_eof + stats.closed_reset,
            5000,
            "{stats:?}"
        );
    }
}

server_test! {
    /// 5,000 connections open *at once*, a verified round trip on each, then
    /// all closed: 1.5 s later the server's RSS is within 5 MiB of what it
    /// was before the first connection. A peak must not leave memory behind:
    /// glibc's per-thread arenas kept tens of MiB of the threads server's
    /// freed memory until it learned to give it back (`src/allocator.rs`).
    fn memory_of_a_peak_of_5000_connections_is_given_back(kind) for concurrent {
        raise_fd_limit();
        let server = Server::start(kind, &[]);
        thread::sleep(Duration::from_millis(200));
        let before = server.rss();
        let threads_before = server.threads();
        let mut clients: Vec<TcpStream> = (0..5000).map(|_| server.connect()).collect();
        for (i, c) in clients.iter_mut().enumerate() {
            let msg = pattern(64 + i % 200, i as u64);
            round_trip(c, &msg, &msg);
        }
        let peak = server.rss();
        drop(clients);
        assert!(
            eventually(PATIENCE, || server.threads() <= threads_before),
            "the connection threads did not exit"
        );
        thread::sleep(Duration::from_millis(1500));
        let after = server.rss();
        assert!(
            after <= before + (5 << 20),
            "RSS {} KiB before the first connection, {} KiB at the peak, {} KiB 1.5 s after \
             all closed: {} KiB kept",
            before >> 10,
            peak >> 10,
            after >> 10,
            after.saturating_sub(before) >> 10
        );
        let (_, stats) = server.stop();
        assert_eq!(stats.accepted, 5000);
        assert_eq!(stats.closed_eof, 5000, "{stats:?}");
    }
}
