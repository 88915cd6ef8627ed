//! SIGTERM and SIGINT: stop accepting, write what is owed, print the stats
//! line, exit 0. And the periodic stats line.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::*;

server_test! {
    /// SIGTERM: exit status 0 and one stats line with the final counts.
    fn sigterm_prints_stats_and_exits_zero(kind) for all {
        let server = Server::start(kind, &[]);
        let mut c = server.connect();
        round_trip(&mut c, b"abc", b"abc");
        let (status, stats) = server.stop();
        assert_eq!(status.code(), Some(0));
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.active, 1, "the client was still connected");
        assert_eq!(stats.bytes_out, 3);
    }
}

server_test! {
    /// The loop's own counters on the stats line: the events handled, and
    /// the largest batch of them. A connection and three requests, each
    /// sent only once the previous one is answered, are at least four
    /// events (the listener's, then one per request), and at least four
    /// wake-ups; no batch is larger than all of them together.
    fn the_stats_line_counts_the_events_the_loop_handled(kind) for [reactor, proactor]
    skip [
        threads: "no event loop: a thread per connection blocks in its own calls, and the loop's counters stay 0",
        iterative: "no event loop: one thread blocks in each call in turn, and the loop's counters stay 0"
    ] {
        let server = Server::start(kind, &[]);
        let mut c = server.connect();
        for request in [&b"one"[..], b"two", b"three"] {
            round_trip(&mut c, request, request);
        }
        let (status, stats) = server.stop();
        assert_eq!(status.code(), Some(0));
        assert!(stats.wakeups >= 4, "{stats:?}");
        assert!(stats.events >= 4, "{stats:?}");
        assert!(
            stats.max_batch >= 1 && stats.max_batch <= stats.events,
            "{stats:?}"
        );
    }
}

server_test! {
    /// An ordinary run raises no warning about accepting: connections come,
    /// are served and go, and the acceptor never pauses (its warnings are
    /// for running out of descriptors, or an accept that fails). Read once
    /// the server has said its last line, `stopped`.
    fn ordinary_connections_raise_no_accept_warning(kind) for all {
        let mut server = Server::start(kind, &[]);
        for request in [&b"one"[..], b"two", b"three"] {
            let mut c = server.connect();
            round_trip(&mut c, request, request);
        }
        server.signal("TERM");
        let status = server.wait_exit(PATIENCE).expect("exits");
        assert_eq!(status.code(), Some(0));
        assert!(
            eventually(PATIENCE, || server.stderr().contains("stopped")),
            "stderr:\n{}",
            server.stderr()
        );
        let stderr = server.stderr();
        for warning in ["accept failed", "accept paused", "accept resumed"] {
            assert!(!stderr.contains(warning), "{warning:?} in:\n{stderr}");
        }
    }
}

server_test! {
    /// After the signal, UDP requests are no longer taken, while a TCP
    /// connection still holds the grace period open: one asked before is
    /// answered and counted, one sent after the server's FIN is not read.
    fn after_the_signal_udp_requests_are_no_longer_taken(kind) for [reactor, proactor]
    skip [
        threads: "not so: its UDP thread answers until the process exits, so a datagram during the grace period may be answered (seen: udp_in 2)",
        iterative: "not so: its UDP thread answers until the process exits, so a datagram during the grace period may be answered (seen: udp_in 2)"
    ] {
        let server = Server::start(kind, &[]);
        let mut tcp = server.connect();
        round_trip(&mut tcp, b"held", b"held");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(PATIENCE)).unwrap();
        udp.send_to(b"before", server.udp()).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"before");
        server.signal("TERM");
        // The server's FIN: the grace period has begun.
        assert_eq!(tcp.read(&mut buf).unwrap_or(0), 0, "the server's FIN");
        udp.send_to(b"after", server.udp()).unwrap();
        drop(tcp);
        let (status, stats) = server.stop_after_signal();
        assert_eq!(status.code(), Some(0));
        assert_eq!((stats.udp_in, stats.udp_out), (1, 1), "{stats:?}");
    }
}

server_test! {
    /// SIGINT behaves the same: the connected client sees the server's FIN
    /// at once, and once it closes too the server exits without waiting out
    /// the grace period.
    fn sigint_prints_stats_exits_zero_and_closes_clients(kind) for all {
        let mut server = Server::start(kind, &[]);
        let mut c = server.connect();
        round_trip(&mut c, b"x", b"x");
        let started = Instant::now();
        server.signal("INT");
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "the server's FIN");
        drop(c);
        let status = server.wait_exit(PATIENCE).expect("exits");
        assert_eq!(status.code(), Some(0));
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "shutdown took {:?} with no client left",
            started.elapsed()
        );
        let line = server.last_stats_line().expect("stats line");
        assert_eq!(parse_stats(&line).accepted, 1);
    }
}

server_test! {
    /// After the signal, new connections are refused.
    fn listener_closes_on_signal(kind) for all {
        let mut server = Server::start(kind, &[]);
        let addr = server.tcp();
        // A paused peer keeps the grace period going for its full second.
        let mut slow = server.connect();
        // Fill the buffers between us; the write may block once they are
        // full, so it is bounded, and its outcome does not matter.
        slow.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        slow.write_all(&pattern(8 << 20, 1)).ok();
        server.signal("TERM");
        assert!(eventually(PATIENCE, || std::net::TcpStream::connect(addr).is_err()));
        server
            .wait_exit(PATIENCE)
            .expect("exits within the grace period");
    }
}

server_test! {
    /// --stats-interval 1 prints the live line every second.
    fn periodic_stats_line(kind) for all {
        let server = Server::start(kind, &["--stats-interval", "1"]);
        let mut c = server.connect();
        round_trip(&mut c, b"12345", b"12345");
        let stats = server.wait_for_stats(|s| s.bytes_in == 5);
        assert_eq!(stats.active, 1);
        let again = server
            .next_line(Duration::from_millis(2500))
            .expect("a second line");
        assert_eq!(parse_stats(&again).accepted, 1, "{again}");
        // One a second, not one every two: the next three take about three
        // seconds (a line that comes late does not move the next one later).
        let from = Instant::now();
        for _ in 0..3 {
            let line = server.next_line(PATIENCE).expect("another line");
            parse_stats(&line);
        }
        let took = from.elapsed();
        assert!(
            (Duration::from_millis(1500)..Duration::from_millis(4500)).contains(&took),
            "three more lines took {took:?} at one a second"
        );
    }
}

server_test! {
    /// SIGTERM while a peer is still sending and has not read its replies:
    /// the server flushes what it owes, sends its FIN, and then waits (for
    /// at most the grace period) for the peer's FIN, reading and discarding
    /// its input. Closing at once, with that input unread, would make the
    /// kernel send RST and throw away the replies still in the server's send
    /// buffer: the peer would lose them, and see a reset or even a clean EOF.
    fn sigterm_lets_a_sending_peer_read_every_reply_then_eof(kind) for [reactor, proactor]
    skip [
        threads: "a thread blocked in read can only be woken by shutdown(Read), after which Linux returns 0 at once: the peer's later input cannot be read and discarded, so closing may reset (docs/blocking-vs-reactor.md)",
        iterative: "a thread blocked in read can only be woken by shutdown(Read), after which Linux returns 0 at once: the peer's later input cannot be read and discarded, so closing may reset (docs/blocking-vs-reactor.md)"
    ] {
        let server = Server::start(kind, &["--max-pending", "16384"]);
        // A small receive window: the replies the server has written wait in
        // its send buffer while the peer reads, as they would over a real
        // network.
        let c = connect_with_receive_buffer(server.tcp(), 4096);
        let payload = pattern(4 << 20, 7);
        // The peer sends 4 MiB and reads nothing yet: the server pauses with
        // input left unread in its socket. Then it keeps sending a little
        // until told to stop, so that input is still arriving while the
        // server shuts down.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let mut c = c.try_clone().unwrap();
            let payload = payload.clone();
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                c.write_all(&payload)?;
                let deadline = Instant::now() + PATIENCE;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                    c.write_all(&[b'.'; 1024])?;
                }
                c.shutdown(std::net::Shutdown::Write)
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        server.signal("TERM");
        // Now the peer reads: every reply the server sent, then a clean EOF.
        let mut got = Vec::new();
        let read = (&c).read_to_end(&mut got);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            read.is_ok(),
            "the peer saw {read:?} after {} bytes instead of EOF",
            got.len()
        );
        assert!(!got.is_empty(), "the server replied nothing");
        assert_bytes_prefix(&got, &payload);
        // The peer stops sending and half-closes: that is the FIN the server
        // waits for.
        let _ = writer.join();
        let (status, stats) = server.stop_after_signal();
        assert_eq!(status.code(), Some(0));
        // Every byte the server wrote reached the peer (an RST would have
        // thrown away what was still in the server's send buffer, and Linux
        // may then even report a clean EOF to the peer).
        assert_eq!(
            got.len() as u64,
            stats.bytes_out,
            "the peer read fewer bytes than the server sent; {stats:?}"
        );
        assert_eq!(stats.closed_reset, 0, "{stats:?}");
    }
}
