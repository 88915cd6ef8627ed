//! UDP: one reply datagram per datagram, sizes from 0 to the maximum, upper
//! per datagram, and the reflection guard.

use std::net::UdpSocket;
use std::time::Duration;

use crate::support::namespace;
use crate::support::*;

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket
}

fn ask(socket: &UdpSocket, server: &Server, request: &[u8]) -> Vec<u8> {
    socket.send_to(request, server.udp()).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, from) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(
        from,
        server.udp(),
        "the reply comes from the server's socket"
    );
    buf.truncate(n);
    buf
}

/// As [`ask`], but UDP may drop a datagram, even on loopback when the
/// machine is busy (a 65,507-byte datagram is 45 fragments' worth of
/// buffer): the request is sent again, up to five times, one second apart.
fn ask_until_answered(socket: &UdpSocket, server: &Server, request: &[u8]) -> Vec<u8> {
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..5 {
        socket.send_to(request, server.udp()).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            buf.truncate(n);
            return buf;
        }
    }
    panic!(
        "no reply to a datagram of {} bytes in five tries",
        request.len()
    );
}

server_test! {
    /// Empty datagrams get empty replies; 65,507 bytes (the IPv4 maximum) come
    /// back whole. The counters are checked against themselves: every
    /// datagram the server received, it answered (a lost one, sent again,
    /// is received once more).
    fn echo_empty_and_maximum_datagrams(kind) for all {
        let server = Server::start(kind, &[]);
        let socket = client();
        assert_eq!(ask_until_answered(&socket, &server, b""), b"");
        assert_eq!(ask_until_answered(&socket, &server, b"ping"), b"ping");
        let big = pattern(65_507, 3);
        assert!(
            ask_until_answered(&socket, &server, &big) == big,
            "65507-byte datagram differs"
        );
        let (_, stats) = server.stop();
        assert!(stats.udp_in >= 3, "{stats:?}");
        assert_eq!(stats.udp_out, stats.udp_in, "{stats:?}");
        assert_eq!(stats.udp_dropped, 0);
    }
}

server_test! {
    /// Each datagram is uppercased on its own; an incomplete tail passes unchanged.
    fn upper_per_datagram(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        let socket = client();
        assert_eq!(ask(&socket, &server, "straße".as_bytes()), b"STRASSE");
        assert_eq!(ask(&socket, &server, b"caf\xc3"), b"CAF\xc3");
        assert_eq!(ask(&socket, &server, b"\xff ok"), b"\xff OK");
    }
}

server_test! {
    /// A reply too large for a datagram (uppercasing can grow text: "ΐ",
    /// two bytes, is three characters, six bytes, in upper case) is dropped
    /// and counted, not sent, and the server goes on answering.
    fn a_reply_too_large_for_a_datagram_is_dropped_and_counted(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        let socket = client();
        socket.send_to("ΐ".repeat(30_000).as_bytes(), server.udp()).unwrap();
        assert_eq!(ask(&socket, &server, b"after"), b"AFTER");
        let (_, stats) = server.stop();
        assert_eq!(
            (stats.udp_in, stats.udp_out, stats.udp_dropped),
            (2, 1, 1),
            "{stats:?}"
        );
    }
}

server_test! {
    /// UDP over IPv6 on [::1], when the machine has it.
    fn udp_and_tcp_over_ipv6(kind) for all {
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        }
        let server = Server::start(kind, &["--tcp", "[::1]:0", "--udp", "[::1]:0"]);
        let socket = UdpSocket::bind("[::1]:0").unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(ask(&socket, &server, b"v6"), b"v6");
        let mut tcp = server.connect();
        round_trip(&mut tcp, b"six", b"six");
    }
}

server_test! {
    /// A datagram from port 7 (echo) is never answered, so two echo services
    /// cannot bounce a datagram between them forever; it is counted as dropped
    /// and logged once, and the server keeps answering everyone else.
    fn reflection_ports_are_not_answered(kind) for all {
        let server = Server::start(kind, &[]);
        // A loopback address per kind, so the three tests can run at once.
        let source = format!("127.0.0.{}:7", 2 + kind.index());
        let Ok(echo_port) = UdpSocket::bind(&source) else {
            eprintln!("skipped: cannot bind UDP port 7 here (needs root)");
            return;
        };
        echo_port
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        echo_port.send_to(b"loop?", server.udp()).unwrap();
        echo_port.send_to(b"loop?", server.udp()).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            echo_port.recv_from(&mut buf).is_err(),
            "the server answered port 7"
        );
        let socket = client();
        assert_eq!(ask(&socket, &server, b"normal"), b"normal");
        let stderr = server.stderr();
        assert_eq!(
            stderr.matches("not answering datagrams").count(),
            1,
            "stderr:\n{stderr}"
        );
        let (_, stats) = server.stop();
        assert_eq!(stats.udp_dropped, 2);
        assert_eq!(stats.udp_in, 3);
        assert_eq!(stats.udp_out, 1);
    }
}

server_test! {
    /// TCP off: UDP alone still works, and the line says `tcp=off`.
    fn udp_only(kind) for all {
        let server = Server::start(kind, &["--tcp", "off"]);
        assert!(server.tcp.is_none());
        let socket = client();
        assert_eq!(ask(&socket, &server, b"solo"), b"solo");
    }
}

server_test! {
    /// Replies the kernel cannot take yet (the socket's send buffer is full:
    /// `send_to` says `WouldBlock`) are queued and sent once it has room,
    /// every one, each counted once; and a shutdown waits for them. A send
    /// buffer fills only where replies leave more slowly than they are made,
    /// so the server runs in a network namespace of its own whose loopback
    /// sends 4 Mbit/s (tc's token bucket), and answers 150 datagrams at once
    /// (it is stopped while they come) with a greeting of 1,400 bytes each.
    /// SIGTERM comes as soon as the first reply is back, with most of the
    /// others still waiting. Needs root and tc; skipped without.
    fn replies_the_kernel_cannot_take_yet_are_queued_and_all_sent(kind) for [reactor, proactor]
    skip [
        threads: "no queue, by design: one blocking send_to at a time waits for room before the next request is read, so at SIGTERM the requests not yet read are not taken (the loops have read all 150 and hold what the kernel could not take)",
        iterative: "no queue, by design: one blocking send_to at a time waits for room before the next request is read, so at SIGTERM the requests not yet read are not taken (the loops have read all 150 and hold what the kernel could not take)"
    ] {
        if let Some(why) = namespace::cannot_unshare_network_because() {
            eprintln!("skipped: {why}");
            return;
        }
        if let Some(why) = namespace::missing_tool(&[("tc", "-V")]) {
            eprintln!("skipped: {why}");
            return;
        }
        let (mut server, socket, greeting) = greeter_behind_a_slow_loopback(kind);
        let (pid, addr) = (server.pid(), server.udp());
        server.signal("STOP");
        assert!(
            eventually(PATIENCE, || namespace::every_thread_stopped(pid)),
            "the server did not stop"
        );
        // 150 small requests pass the bucket at once (its burst), and the
        // stopped server's socket holds them all.
        const SENT: u64 = 150;
        for _ in 0..SENT {
            socket.send_to(b"?", addr).unwrap();
        }
        server.signal("CONT");
        let mut buf = vec![0u8; 2048];
        let mut got = 0;
        while got < SENT {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) => assert_eq!(&buf[..n], greeting.as_bytes()),
                Err(e) => panic!("{got} of {SENT} replies, then: {e}"),
            }
            got += 1;
            if got == 1 {
                server.signal("TERM");
            }
        }
        let status = server.wait_exit(PATIENCE).expect("exits");
        assert!(status.success());
        let stats = parse_stats(&server.last_stats_line().expect("a stats line"));
        assert_eq!(
            (stats.udp_in, stats.udp_out, stats.udp_dropped),
            (SENT, SENT, 0),
            "{stats:?}"
        );
    }
}

server_test! {
    /// A queued reply that the kernel then refuses (here a firewall rule,
    /// added while it waits, drops everything to the client: `send_to` says
    /// EPERM) is dropped and counted, once: every datagram is either sent or
    /// dropped, and the client gets exactly the ones sent. The same slow
    /// loopback as above, in a namespace of its own, with nftables' rule
    /// added there while the server is stopped, its queue full. Needs root
    /// and nft; skipped without.
    fn a_queued_reply_the_kernel_refuses_is_dropped_and_counted(kind) for [reactor, proactor]
    skip [
        threads: "no queue, by design: a blocking send_to waits for room, one reply at a time",
        iterative: "no queue, by design: a blocking send_to waits for room, one reply at a time"
    ] {
        if let Some(why) = namespace::cannot_unshare_network_because() {
            eprintln!("skipped: {why}");
            return;
        }
        let tools = [("tc", "-V"), ("nft", "--version"), ("nsenter", "--version")];
        if let Some(why) = namespace::missing_tool(&tools) {
            eprintln!("skipped: {why}");
            return;
        }
        let (mut server, socket, _) = greeter_behind_a_slow_loopback(kind);
        let (pid, addr) = (server.pid(), server.udp());
        let stop = |server: &Server| {
            server.signal("STOP");
            assert!(
                eventually(PATIENCE, || namespace::every_thread_stopped(pid)),
                "the server did not stop"
            );
        };
        stop(&server);
        const SENT: u64 = 150;
        for _ in 0..SENT {
            socket.send_to(b"?", addr).unwrap();
        }
        server.signal("CONT");
        let mut buf = vec![0u8; 2048];
        socket.recv_from(&mut buf).expect("a first reply");
        // The server has answered all 150 in one turn, and queued what its
        // send buffer could not take: stop it there, and refuse the rest.
        stop(&server);
        let rule = format!(
            "add table inet t; add chain inet t out {{ type filter hook output priority 0; }}; \
             add rule inet t out udp dport {} drop",
            socket.local_addr().unwrap().port()
        );
        let added = std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["nft", &rule])
            .status()
            .expect("run nsenter nft");
        assert!(added.success(), "nft failed: {rule}");
        server.signal("CONT");
        server.signal("TERM");
        let status = server.wait_exit(PATIENCE).expect("exits");
        assert!(status.success());
        let stats = parse_stats(&server.last_stats_line().expect("a stats line"));
        assert_eq!(
            (stats.udp_in, stats.udp_out + stats.udp_dropped),
            (SENT, SENT),
            "{stats:?}"
        );
        assert!(stats.udp_dropped > 0, "nothing was refused: {stats:?}");
        // The client gets exactly the replies sent (the first one included).
        let mut got = 1;
        while got < stats.udp_out {
            match socket.recv_from(&mut buf) {
                Ok(_) => got += 1,
                Err(e) => panic!("{got} of {} replies sent, then: {e}", stats.udp_out),
            }
        }
    }
}

/// A UDP server greeting every datagram with 1,400 bytes, in a network
/// namespace of its own whose loopback sends 4 Mbit/s (tc tbf), so that
/// its replies outrun the kernel; a client socket in that namespace; and
/// the greeting.
fn greeter_behind_a_slow_loopback(kind: Kind) -> (Server, UdpSocket, String) {
    let greeting = "g".repeat(1400);
    let wrapper =
        namespace::in_own_network("tc qdisc add dev lo root tbf rate 4mbit burst 32kb latency 2s");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let server = Server::start_wrapped(
        &wrapper,
        kind,
        &["--mode", "greet", "--greeting", &greeting, "--tcp", "off"],
    );
    let socket = namespace::in_network_of(server.pid(), || {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(PATIENCE))?;
        Ok(socket)
    })
    .unwrap();
    (server, socket, greeting)
}
