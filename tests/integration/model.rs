//! Model-based random tests against the real binary: proptest generates a
//! sequence of client actions over a few concurrent connections (connect,
//! send a chunk, read some, pause, half-close, reset, reconnect, a UDP
//! datagram), in echo and in upper mode, runs it
//! against a fresh `serve` (and `proactor`), and checks the outcome against a model of what
//! the server owes: every honest byte back exact and in order, a fresh client
//! still served afterwards, and the final stats line agreeing with what the
//! clients did. A failure shrinks to a minimal sequence.
//!
//! CI runs a bounded number of cases (`MODEL_CASES`, default 12); a longer
//! run: `MODEL_CASES=500 cargo test --test integration model::`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::*;

/// Connections a sequence may use at once.
const SLOTS: usize = 3;

/// One thing a client does.
#[derive(Debug, Clone)]
enum Action {
    /// Open connection `slot` (if it is not open).
    Connect(usize),
    /// Send these bytes on `slot` (if open and not half-closed).
    Send(usize, Vec<u8>),
    /// Read what has arrived on `slot`, up to what is owed, without waiting long.
    Read(usize),
    /// Half-close `slot`: our FIN; the replies still come.
    HalfClose(usize),
    /// Reset `slot` (SO_LINGER 0, then close): its bytes are not checked.
    Reset(usize),
    /// A UDP datagram, which must come back.
    Datagram(Vec<u8>),
    /// Do nothing for this many milliseconds (the server's events batch up
    /// differently around a pause).
    Pause(u64),
}

/// What the model knows of one connection.
#[derive(Debug, Default)]
struct Client {
    stream: Option<TcpStream>,
    half_closed: bool,
    /// Everything sent, as the server must send it back.
    owed: Vec<u8>,
    /// Everything received so far.
    got: Vec<u8>,
}

/// The expected outcome of a whole sequence, for the stats line.
#[derive(Debug, Default)]
struct Tally {
    connects: u64,
    resets: u64,
    clean: u64,
    bytes_sent: u64,
    datagrams: u64,
}

fn action(upper: bool) -> impl Strategy<Value = Action> {
    let slot = 0..SLOTS;
    // Upper mode's expected reply is computed for ASCII letters only; echo
    // gets arbitrary bytes.
    let bytes = if upper {
        proptest::collection::vec(b'a'..=b'z', 1..3000).boxed()
    } else {
        proptest::collection::vec(any::<u8>(), 1..3000).boxed()
    };
    prop_oneof![
        slot.clone().prop_map(Action::Connect),
        (slot.clone(), bytes.clone()).prop_map(|(s, b)| Action::Send(s, b)),
        slot.clone().prop_map(Action::Read),
        slot.clone().prop_map(Action::HalfClose),
        slot.prop_map(Action::Reset),
        bytes.prop_map(Action::Datagram),
        (0u64..30).prop_map(Action::Pause),
    ]
}

fn cases() -> u32 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn run_model(kind: Kind, upper: bool) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // Shrunk failures are printed, not stored: the sequence is in the
        // panic message.
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(action(upper), 1..24);
    let result = runner.run(&strategy, |actions| {
        check_sequence(kind, &actions, upper);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_sequences_in_echo_mode_get_every_byte_back() {
    run_model(Kind::Reactor, false);
}

#[test]
fn random_sequences_in_upper_mode_get_every_byte_back() {
    run_model(Kind::Reactor, true);
}

/// The proactor, against the same model: its connections run the same
/// state machine, driven by completions instead of readiness.
#[test]
fn random_sequences_against_the_proactor_get_every_byte_back() {
    run_model(Kind::Proactor, false);
    run_model(Kind::Proactor, true);
}

/// Runs one sequence against a fresh server and checks it (panics on a
/// mismatch, which proptest then shrinks).
fn check_sequence(kind: Kind, actions: &[Action], upper: bool) {
    let mode = if upper { "upper" } else { "echo" };
    let server = Server::start(kind, &["--mode", mode]);
    let reply_of = |bytes: &[u8]| -> Vec<u8> {
        if upper {
            bytes.to_ascii_uppercase()
        } else {
            bytes.to_vec()
        }
    };
    let mut clients: Vec<Client> = (0..SLOTS).map(|_| Client::default()).collect();
    let mut tally = Tally::default();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(PATIENCE)).unwrap();
    for action in actions {
        match action {
            Action::Connect(slot) => {
                let client = &mut clients[*slot];
                if client.stream.is_none() {
                    // One byte's round trip: the server has accepted it
                    // (a reset before the accept may never reach the
                    // server's counters).
                    let mut stream = server.connect();
                    round_trip(&mut stream, b".", b".");
                    *client = Client {
                        stream: Some(stream),
                        owed: b".".to_vec(),
                        got: b".".to_vec(),
                        ..Client::default()
                    };
                    tally.connects += 1;
                    tally.bytes_sent += 1;
                }
            }
            Action::Send(slot, bytes) => {
                let client = &mut clients[*slot];
                if let (Some(stream), false) = (&mut client.stream, client.half_closed) {
                    // Read what is there first, so that neither side's
                    // buffers can fill and block this write.
                    drain(stream, &mut client.got, client.owed.len());
                    stream.write_all(bytes).unwrap();
                    client.owed.extend(reply_of(bytes));
                    tally.bytes_sent += bytes.len() as u64;
                }
            }
            Action::Read(slot) => {
                let client = &mut clients[*slot];
                if let Some(stream) = &mut client.stream {
                    drain(stream, &mut client.got, client.owed.len());
                    assert_bytes_prefix(&client.got, &client.owed);
                }
            }
            Action::HalfClose(slot) => {
                let client = &mut clients[*slot];
                if let (Some(stream), false) = (&client.stream, client.half_closed) {
                    stream.shutdown(Shutdown::Write).unwrap();
                    client.half_closed = true;
                }
            }
            Action::Reset(slot) => {
                let client = &mut clients[*slot];
                if client.half_closed {
                    // Only resets of open connections are modelled; a
                    // half-closed one is finished cleanly instead.
                    finish(client, &mut tally);
                } else if let Some(stream) = client.stream.take() {
                    socket2::SockRef::from(&stream)
                        .set_linger(Some(Duration::ZERO))
                        .unwrap();
                    drop(stream);
                    tally.resets += 1;
                    *client = Client::default();
                }
            }
            Action::Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Action::Datagram(bytes) => {
                udp.send_to(bytes, server.udp()).unwrap();
                let mut buf = vec![0u8; 65_536];
                let (n, _) = udp.recv_from(&mut buf).unwrap();
                assert_bytes_eq(&buf[..n], &reply_of(bytes));
                tally.datagrams += 1;
            }
        }
    }
    for client in &mut clients {
        finish(client, &mut tally);
    }
    // The server is alive and serves a newcomer.
    let mut fresh = server.connect();
    round_trip(&mut fresh, b"still here", &reply_of(b"still here"));
    drop(fresh);
    tally.connects += 1;
    tally.clean += 1;
    tally.bytes_sent += 10;
    // A moment for the server to see the last resets.
    std::thread::sleep(Duration::from_millis(100));
    let (status, stats) = server.stop();
    assert!(status.success());
    assert_eq!(stats.accepted, tally.connects, "{stats:?} {tally:?}");
    assert_eq!(stats.closed_eof, tally.clean, "{stats:?} {tally:?}");
    assert_eq!(stats.closed_reset, tally.resets, "{stats:?} {tally:?}");
    assert_eq!(stats.active, 0, "{stats:?}");
    assert_eq!(stats.udp_in, tally.datagrams, "{stats:?}");
    assert_eq!(stats.udp_out, tally.datagrams, "{stats:?}");
    if tally.resets == 0 {
        // Without resets every byte sent reached the server and came back.
        assert_eq!(stats.bytes_in, tally.bytes_sent, "{stats:?} {tally:?}");
        assert_eq!(stats.bytes_out, tally.bytes_sent, "{stats:?} {tally:?}");
    } else {
        // A reset may throw away bytes the server had not read yet.
        assert!(stats.bytes_in <= tally.bytes_sent, "{stats:?} {tally:?}");
    }
}

/// Ends a connection cleanly: our FIN (if not sent), then every reply, then
/// the server's FIN; checks the bytes.
fn finish(client: &mut Client, tally: &mut Tally) {
    let Some(mut stream) = client.stream.take() else {
        return;
    };
    if !client.half_closed {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.read_to_end(&mut client.got).unwrap();
    assert_bytes_eq(&client.got, &client.owed);
    tally.clean += 1;
    *client = Client::default();
}

/// Reads what has arrived, without waiting more than a moment, up to `owed`
/// bytes in all.
fn drain(stream: &mut TcpStream, got: &mut Vec<u8>, owed: usize) {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 65_536];
    while got.len() < owed {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("read failed: {e}"),
        }
    }
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
}
