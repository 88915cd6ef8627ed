//! `--mode greet`: the greeting after the first bytes, then the server's FIN.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::*;

server_test! {
    /// TCP: the first bytes get exactly the greeting, then EOF; the close is
    /// counted as EOF.
    fn tcp_greeting_then_server_closes(kind) for all {
        let server = Server::start(kind, &["--mode", "greet"]);
        let mut client = server.connect();
        client.write_all(b"hi\n").unwrap();
        assert_eq!(read_to_eof(&mut client), b"Hello, Client!");
        drop(client);
        let (_, stats) = server.stop();
        assert_eq!(stats.closed_eof, 1, "{stats:?}");
    }
}

server_test! {
    /// The greeting is exactly the UTF-8 bytes of --greeting, no newline added;
    /// nothing is sent before the client speaks.
    fn custom_utf8_greeting_after_first_bytes_only(kind) for all {
        let server = Server::start(kind, &["--mode", "greet", "--greeting", "Grüße, 世界"]);
        let mut client = server.connect();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(
            client.read(&mut buf).is_err(),
            "greeting sent before the client spoke"
        );
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        client.write_all(b"x").unwrap();
        assert_eq!(read_to_eof(&mut client), "Grüße, 世界".as_bytes());
    }
}

server_test! {
    /// A client that keeps its side open is closed by the server about 1 s
    /// after the greeting.
    fn server_closes_after_linger_when_peer_stays_open(kind) for all {
        let server = Server::start(kind, &["--mode", "greet", "--stats-interval", "1"]);
        let mut client = server.connect();
        client.write_all(b"hello").unwrap();
        let mut greeting = [0u8; 14];
        client.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting, b"Hello, Client!");
        let sent = Instant::now();
        // The client keeps sending; the server discards it and still closes.
        client.write_all(b"more input that is ignored").unwrap();
        let stats = server.wait_for_stats(|s| s.closed_eof == 1);
        assert_eq!(stats.active, 0);
        let waited = sent.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "closed too early: {waited:?}"
        );
        assert!(
            waited < Duration::from_millis(3500),
            "closed too late: {waited:?}"
        );
        assert_eq!(stats.closed_reset, 0);
    }
}

server_test! {
    /// UDP: the greeting answers every datagram, an empty one included.
    fn udp_greeting_for_every_datagram(kind) for all {
        let server = Server::start(kind, &["--mode", "greet"]);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 100];
        for request in [&b"anything"[..], b""] {
            socket.send_to(request, server.udp()).unwrap();
            let (n, _) = socket.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"Hello, Client!");
        }
    }
}
