//! TCP echo and upper, byte-exact; half-close; reset by a peer.

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

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
