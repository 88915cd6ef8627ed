//! Safe to expose (`docs/security.md`): the guards that turn on when an
//! address is not loopback, exercised on loopback with `--exposed`. A
//! datagram from a chosen source port needs a socket bound to that port,
//! and a privileged port needs root: those tests say so and skip where the
//! tests do not run as root (CI does).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::support::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A UDP socket bound to `ip:port` (a privileged port needs root).
fn bound(ip: [u8; 4], port: u16) -> Option<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::from((ip, port))).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    Some(socket)
}

/// Whether `socket` gets a reply to `request` from the server within the
/// read timeout.
fn answered(socket: &UdpSocket, server: &Server, request: &[u8]) -> bool {
    socket.send_to(request, server.udp()).expect("send");
    let mut buf = [0u8; 2048];
    socket.recv_from(&mut buf).is_ok()
}

server_test! {
    /// Exposed: a datagram from source port 7, 19, 53 or 1023 gets no reply
    /// (7 and 19 counted as `udp_dropped`, the five reflecting ports that are
    /// refused everywhere; 53 and 1023 as `udp_refused`), one from 40000
    /// does. On loopback without `--exposed`, port 1023 is answered: the
    /// tutorials' behaviour is unchanged.
    fn privileged_and_well_known_source_ports_get_no_reply_when_exposed(kind) for all {
        if !is_root() {
            eprintln!("skipped: binding source ports below 1024 needs root");
            return;
        }
        let server = Server::start(kind, &["--exposed"]);
        let ip = [127, 0, 0, 40 + kind.index()];
        for port in [7, 19, 53, 1023] {
            let socket = bound(ip, port).unwrap_or_else(|| panic!("bind {ip:?}:{port}"));
            assert!(!answered(&socket, &server, b"ping"), "answered port {port}");
        }
        let ordinary = bound(ip, 0).expect("bind");
        assert!(answered(&ordinary, &server, b"ping"));
        let (_, stats) = server.stop();
        assert_eq!((stats.udp_dropped, stats.udp_refused, stats.udp_out), (2, 2, 1), "{stats:?}");

        let quiet = Server::start(kind, &[]);
        let socket = bound(ip, 1023).expect("bind 1023");
        assert!(answered(&socket, &quiet, b"ping"), "loopback, not exposed");
    }
}

server_test! {
    /// Exposed, upper and greet never answer with more bytes than they got:
    /// a two-byte letter whose uppercase is three bytes, and an empty
    /// datagram to greet, get nothing (counted `udp_oversize`); a datagram
    /// as long as the greeting gets it whole.
    fn exposed_replies_are_never_larger_than_their_datagram(kind) for all {
        let upper = Server::start(kind, &["--exposed", "--mode", "upper"]);
        let socket = bound([127, 0, 0, 1], 0).expect("bind");
        assert!(!answered(&socket, &upper, "ŉ".as_bytes()));
        assert!(answered(&socket, &upper, b"ascii"));
        let (_, stats) = upper.stop();
        assert_eq!((stats.udp_oversize, stats.udp_out), (1, 1), "{stats:?}");

        let greet = Server::start(kind, &["--exposed", "--mode", "greet", "--greeting", "hello"]);
        assert!(!answered(&socket, &greet, b""));
        socket.send_to(b"12345", greet.udp()).expect("send");
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf).expect("the greeting");
        assert_eq!(&buf[..n], b"hello");
        let (_, stats) = greet.stop();
        assert_eq!((stats.udp_oversize, stats.udp_out), (1, 1), "{stats:?}");
    }
}

server_test! {
    /// One source prefix sending ten times its rate gets about its rate
    /// answered (the burst, then the rate), and a second prefix at an
    /// ordinary rate gets every reply. The two sources are in different /24s
    /// (127.0.1.x and 127.0.2.x): the rate is per prefix.
    fn a_source_over_its_rate_is_limited_and_another_is_not(kind) for all {
        let server = Server::start(kind, &["--exposed", "--udp-rate", "50"]);
        let flood = bound([127, 0, 1, 10 + kind.index()], 0).expect("bind");
        let calm = bound([127, 0, 2, 10 + kind.index()], 0).expect("bind");
        let started = Instant::now();
        let (mut sent_calm, mut got_calm) = (0, 0);
        let mut sent_flood = 0;
        let mut buf = [0u8; 64];
        // Two seconds: the flood at 500 a second (ten times the rate), the
        // calm source at 10 a second, each waiting for its reply.
        while started.elapsed() < Duration::from_secs(2) {
            for _ in 0..10 {
                flood.send_to(b"flood", server.udp()).expect("send");
                sent_flood += 1;
            }
            if sent_flood % 50 == 0 {
                sent_calm += 1;
                if answered(&calm, &server, b"calm") {
                    got_calm += 1;
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        flood.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut got_flood = 0;
        while flood.recv_from(&mut buf).is_ok() {
            got_flood += 1;
        }
        assert_eq!(got_calm, sent_calm, "the calm source lost replies");
        // The burst (50) and 50 a second for about 2 s: about 150, of ~1000.
        assert!(
            (100..=220).contains(&got_flood),
            "{got_flood} of {sent_flood} answered at 50/s"
        );
        let (_, stats) = server.stop();
        assert!(stats.udp_limited >= sent_flood - 220, "{stats:?}");
    }
}

server_test! {
    /// `--max-per-source 10`: the eleventh connection from 127.0.0.2 is
    /// accepted and closed at once (counted `rejected_source`), 127.0.0.3
    /// still connects, and once one of the ten closes, 127.0.0.2 may connect
    /// again.
    fn one_address_holds_at_most_its_share_of_connections(kind) for concurrent {
        let server = Server::start(kind, &["--max-per-source", "10", "--udp", "off"]);
        let from = |last: u8| {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.bind(&SocketAddr::from(([127, 0, 0, last], 0)).into()).unwrap();
            socket.connect(&server.tcp().into()).unwrap();
            let stream: TcpStream = socket.into();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            stream
        };
        let mut ten: Vec<TcpStream> = (0..10).map(|_| from(2)).collect();
        for (i, c) in ten.iter_mut().enumerate() {
            let m = format!("{i}");
            round_trip(c, m.as_bytes(), m.as_bytes());
        }
        let mut eleventh = from(2);
        assert_eq!(read_to_eof(&mut eleventh), b"", "the eleventh is closed at once");
        let mut other = from(3);
        round_trip(&mut other, b"other", b"other");
        drop(ten.pop());
        let again = eventually(PATIENCE, || {
            let mut c = from(2);
            std::io::Write::write_all(&mut c, b"x").is_ok() && {
                let mut b = [0u8; 1];
                std::io::Read::read(&mut c, &mut b).map(|n| n == 1).unwrap_or(false)
            }
        });
        assert!(again, "a share given back is not taken again");
        let (_, stats) = server.stop();
        assert!(stats.rejected_source >= 1, "{stats:?}");
    }
}

server_test! {
    /// Exposed with no `--idle-timeout`, the start-up log says which guards
    /// are on, the idle timeout of 60 s among them; on loopback it says the
    /// server is not exposed.
    fn the_start_up_log_says_which_guards_are_on(kind) for all {
        let exposed = Server::start(kind, &["--exposed"]);
        let line = "exposed (--exposed); UDP source check strict, amplification refused, \
                    rate 100/s per source /24 or /56 (burst 100); TCP 100 connections per \
                    source; idle timeout 60s";
        assert!(eventually(PATIENCE, || exposed.stderr().contains(line)), "{}", exposed.stderr());
        let quiet = Server::start(kind, &[]);
        let line = "not exposed (loopback only); UDP source check basic, amplification allowed";
        assert!(eventually(PATIENCE, || quiet.stderr().contains(line)), "{}", quiet.stderr());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    /// Fuzz-style, against the real binary (upper mode, exposed): datagrams
    /// of any size from any source port, privileged ones included when the
    /// tests run as root. The server never stops answering, no reply is
    /// larger than its datagram, and its counters balance: every datagram
    /// received is answered or counted once by a guard.
    #[test]
    fn arbitrary_datagrams_never_crash_or_amplify_and_the_counters_balance(
        datagrams in proptest::collection::vec(
            (0usize..3000, prop_oneof![1u16..1024, 1024u16..65535], any::<u8>()),
            1..25,
        ),
    ) {
        let server = Server::start(Kind::Reactor, &["--exposed", "--mode", "upper", "--udp-rate", "100000"]);
        let mut sent = 0u64;
        for (size, port, byte) in &datagrams {
            let port = if *port < 1024 && !is_root() { 0 } else { *port };
            let Some(socket) = bound([127, 0, 0, 60], port) else { continue };
            let payload: Vec<u8> = (0..*size).map(|i| byte.wrapping_add(i as u8)).collect();
            socket.send_to(&payload, server.udp()).expect("send");
            sent += 1;
            let mut buf = vec![0u8; 70_000];
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                prop_assert!(n <= *size, "{n} bytes back for {size}");
            }
        }
        let socket = bound([127, 0, 0, 1], 0).expect("bind");
        prop_assert!(answered(&socket, &server, b"still there"));
        let (_, stats) = server.stop();
        prop_assert_eq!(stats.udp_in, sent + 1, "{:?}", stats);
        prop_assert_eq!(
            stats.udp_in,
            stats.udp_out + stats.udp_dropped + stats.udp_refused + stats.udp_oversize + stats.udp_limited,
            "{:?}", stats
        );
    }
}

/// Sends one UDP datagram to `to` that claims to come from port `from` on
/// 127.0.0.1: a raw socket writes the UDP header itself (root only), and
/// the kernel adds the IP header. This is the forged datagram of CERT
/// CA-1996-01.
fn forge(from: u16, to: SocketAddr, payload: &[u8]) {
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::UDP),
    )
    .expect("a raw socket (root)");
    let len = (8 + payload.len()) as u16;
    let mut packet = Vec::with_capacity(len as usize);
    packet.extend_from_slice(&from.to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&len.to_be_bytes());
    // Checksum 0: "none", which IPv4 allows for UDP.
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    raw.send_to(&packet, &to.into())
        .expect("send the forged datagram");
}

/// How many datagrams `a` answered in `window` after one forged datagram
/// from `b` made the two answer each other.
fn loop_between(a: &Server, b: &Server, window: Duration) {
    forge(b.udp().port(), a.udp(), b"loop");
    thread::sleep(window);
}

/// CERT CA-1996-01, the echo packet storm: one forged datagram, "from" one
/// echo service to another, makes them answer each other for ever. Without
/// the guards (loopback) it runs at full speed between two servers on
/// ordinary ports; exposed, between the same ports it is capped at the
/// rate (the port check cannot stop it: both are ordinary ports), and
/// between well-known answering ports (NFS's 2049 and memcached's 11211) it
/// cannot start. Bounded to a second each.
#[test]
fn the_echo_loop_of_ca_1996_01_runs_free_without_the_guards_and_is_capped_or_stopped_with_them() {
    if !is_root() {
        eprintln!("skipped: forging a datagram's source needs a raw socket, which needs root");
        return;
    }
    let window = Duration::from_secs(1);
    let answered = |args: &[&str], ports: Option<(u16, u16)>| -> u64 {
        let start = |port: Option<u16>| {
            let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            if let Some(port) = port {
                all.extend(["--udp".into(), format!("127.0.0.1:{port}")]);
            }
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            Server::start(Kind::Reactor, &all)
        };
        let a = start(ports.map(|p| p.0));
        let b = start(ports.map(|p| p.1));
        loop_between(&a, &b, window);
        let (_, a_stats) = a.stop();
        let (_, _) = b.stop();
        a_stats.udp_out
    };
    let free = answered(&["--tcp", "off"], None);
    let capped = answered(&["--tcp", "off", "--exposed"], None);
    let well_known = answered(&["--tcp", "off", "--exposed"], Some((2049, 11_211)));
    assert!(
        free > 2_000,
        "without the guards the loop ran {free} times in a second"
    );
    // The burst (100) and 100 a second: at most about 200 in a second.
    assert!(
        (50..=250).contains(&capped),
        "capped at the rate: {capped} in a second"
    );
    assert_eq!(well_known, 0, "a loop between well-known ports started");
}
