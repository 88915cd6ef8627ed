//! TCP echo and upper, byte-exact; half-close; reset by a peer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use crate::support::namespace;
use crate::support::*;

server_test! {
    /// A few bytes come back unchanged, and a second message on the same
    /// connection too; the byte counters agree.
    fn echo_small_messages_round_trip(kind) for all {
        let server = Server::start(kind, &[]);
        let mut client = server.connect();
        round_trip(&mut client, b"hello\n", b"hello\n");
        round_trip(&mut client, b"\x00\xff binary", b"\x00\xff binary");
        drop(client);
        thread::sleep(Duration::from_millis(100));
        let (status, stats) = server.stop();
        assert!(status.success());
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.bytes_in, 15);
        assert_eq!(stats.bytes_out, 15);
    }
}

server_test! {
    /// Four clients each stream 8 MiB at once; every byte comes back in
    /// order. (The iterative server passes too, serving them one after the
    /// other: each waiting client's writes block until its turn.)
    fn echo_multi_megabyte_concurrent_transfers_are_exact(kind) for all {
        let server = Server::start(kind, &[]);
        let addr = server.tcp();
        let handles: Vec<_> = (0..4u64)
            .map(|i| {
                thread::spawn(move || {
                    let payload = pattern(8 << 20, i);
                    let got = transfer(addr, payload.clone());
                    assert_bytes_eq(&got, &payload);
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            h.join().unwrap_or_else(|_| panic!("client {i} got different bytes back"));
        }
        let (_, stats) = server.stop();
        assert_eq!(stats.bytes_in, 4 * (8 << 20));
        assert_eq!(stats.bytes_out, 4 * (8 << 20));
        assert_eq!(stats.closed_eof, 4);
    }
}

server_test! {
    /// Upper over a multi-megabyte mixed ASCII / multi-byte stream, written in
    /// chunks whose edges fall inside characters.
    fn upper_multi_megabyte_transfer_is_exact(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        let unit = "straße ǰ ΐ 😀 abc ".repeat(1000);
        let text = unit.repeat(150); // ~3.5 MB
        let got = transfer(server.tcp(), text.clone().into_bytes());
        assert_bytes_eq(&got, text.to_uppercase().as_bytes());
    }
}

server_test! {
    /// Half-close: the client shuts down its write side; the server still
    /// sends everything it owes, then its own FIN, and counts the close as EOF.
    fn half_close_delivers_everything_owed_then_eof(kind) for all {
        let server = Server::start(kind, &[]);
        let mut client = server.connect();
        let payload = pattern(3 << 20, 7);
        let mut writer = client.try_clone().unwrap();
        let data = payload.clone();
        let sender = thread::spawn(move || {
            writer.write_all(&data).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let got = read_to_eof(&mut client);
        sender.join().unwrap();
        assert_bytes_eq(&got, &payload);
        let (_, stats) = server.stop();
        assert_eq!(stats.closed_eof, 1);
        assert_eq!(stats.closed_reset, 0);
        assert_eq!(stats.active, 0);
    }
}

server_test! {
    /// Half-close while the server still owes megabytes: the client writes
    /// 16 MiB without reading (a large --max-pending lets the reactor keep
    /// reading into its owed buffer), shuts down its write side, and only then
    /// reads. Every byte must still arrive before the server's FIN.
    fn half_close_with_megabytes_owed_still_delivers_them(kind) for [reactor, proactor]
    skip [
        threads: "a blocking write stops the reader: a peer that writes without reading deadlocks a blocking echo server (both wait in write)",
        iterative: "a blocking write stops the reader: a peer that writes without reading deadlocks a blocking echo server (both wait in write)"
    ] {
        let server = Server::start(kind, &["--max-pending", "67108864"]);
        let mut client = server.connect();
        let payload = pattern(16 << 20, 9);
        client.write_all(&payload).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let got = read_to_eof(&mut client);
        assert_bytes_eq(&got, &payload);
        let (_, stats) = server.stop();
        assert_eq!(stats.closed_eof, 1, "{stats:?}");
    }
}

server_test! {
    /// Megabytes that wait whole in the server's socket, with nothing more
    /// to come, are all answered: past the read budget (a reactor reads 1
    /// MiB per turn, twice per wake-up), the server reads again at once, not
    /// at the connection's next event, since none will come. To have them
    /// wait whole, the server is stopped (SIGSTOP) while the peer sends 3
    /// MiB, and continued once its socket holds every byte. On this machine's
    /// loopback a socket's receive buffer stays far under 2 MiB (autotuning
    /// sizes it to what the server reads in a round trip of a few
    /// microseconds), as it would not over a long, fast path; so the server
    /// runs in a network namespace of its own whose sockets start with 8 MiB
    /// buffers, and the client joins it. Needs root; skipped without.
    fn megabytes_waiting_whole_in_the_socket_are_all_answered(kind) for all {
        if let Some(why) = namespace::cannot_unshare_network_because() {
            eprintln!("skipped: {why}");
            return;
        }
        // tcp_rmem and tcp_wmem are each namespace's own.
        let wrapper = namespace::in_own_network(
            "echo '4096 8388608 8388608' > /proc/sys/net/ipv4/tcp_rmem \
             && echo '4096 8388608 8388608' > /proc/sys/net/ipv4/tcp_wmem",
        );
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let server = Server::start_wrapped(&wrapper, kind, &["--udp", "off"]);
        let addr = server.tcp();
        let mut client =
            namespace::in_network_of(server.pid(), move || TcpStream::connect(addr)).unwrap();
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        round_trip(&mut client, b"hello", b"hello");
        let payload = pattern(3 << 20, 11);
        server.signal("STOP");
        // The signal is delivered to each thread on its way back from the
        // kernel: one may still read a little before it stops.
        let pid = server.pid();
        assert!(
            eventually(PATIENCE, || namespace::every_thread_stopped(pid)),
            "the server did not stop"
        );
        client.write_all(&payload).unwrap();
        let held = || received_but_unread(&server).unwrap_or(0);
        let whole = eventually(PATIENCE, || held() == payload.len());
        server.signal("CONT");
        assert!(
            whole,
            "the stopped server's socket holds {} of the {} bytes sent",
            held(),
            payload.len()
        );
        let mut got = vec![0; payload.len()];
        let mut read = 0;
        while read < got.len() {
            match client.read(&mut got[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) => panic!(
                    "the peer got {read} of the {} bytes back, then: {e}",
                    payload.len()
                ),
            }
        }
        assert_bytes_eq(&got[..read], &payload);
        let (status, _) = server.stop();
        assert!(status.success());
    }
}

/// The bytes that the server's one established TCP connection has received
/// and the server has not read yet: its `rx_queue` in `/proc/PID/net/tcp`
/// (the table of the server's network namespace).
fn received_but_unread(server: &Server) -> Option<usize> {
    let table = std::fs::read_to_string(format!("/proc/{}/net/tcp", server.pid())).ok()?;
    let port = format!(":{:04X}", server.tcp().port());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local_address rem_address st tx_queue:rx_queue; 01 is ESTABLISHED.
        if fields.get(1)?.ends_with(&port) && *fields.get(3)? == "01" {
            let (_, rx) = fields.get(4)?.split_once(':')?;
            usize::from_str_radix(rx, 16).ok()
        } else {
            None
        }
    })
}

server_test! {
    /// A peer that resets (SO_LINGER 0, then close) is counted as a reset, and
    /// the server keeps serving another client throughout.
    fn reset_peer_is_counted_and_others_still_served(kind) for concurrent {
        let server = Server::start(kind, &["--stats-interval", "1"]);
        let mut other = server.connect();
        round_trip(&mut other, b"before", b"before");

        let mut rude = server.connect();
        round_trip(&mut rude, b"ping", b"ping");
        // Leave unread echo in our receive buffer too, then reset.
        rude.write_all(b"unread").unwrap();
        thread::sleep(Duration::from_millis(50));
        socket2::SockRef::from(&rude).set_linger(Some(Duration::ZERO)).unwrap();
        drop(rude);

        let seen = server.wait_for_stats(|s| s.closed_reset == 1);
        assert_eq!(seen.active, 1, "the other client is still connected: {seen:?}");
        round_trip(&mut other, b"after", b"after");
        drop(other);
        thread::sleep(Duration::from_millis(100));
        let (status, stats) = server.stop();
        assert!(status.success());
        assert_eq!(stats.closed_reset, 1, "{stats:?}");
        assert_eq!(stats.closed_eof, 1, "{stats:?}");
    }
}
