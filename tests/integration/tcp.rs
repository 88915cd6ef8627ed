//! TCP echo and upper, byte-exact; half-close; reset by a peer.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;

use crate::support::*;

/// Writes `payload` on one thread while reading the reply on another, so that
/// neither side's buffers can deadlock a transfer larger than they hold.
fn transfer(addr: std::net::SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let len = payload.len();
    let sending = thread::spawn(move || {
        for chunk in payload.chunks(100_003) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let mut got = Vec::with_capacity(len);
    reader.read_to_end(&mut got).unwrap();
    sending.join().unwrap();
    got
}

/// A few bytes come back unchanged, and a second message on the same
/// connection too.
#[test]
fn echo_small_messages_round_trip() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    round_trip(&mut client, b"hello\n", b"hello\n");
    round_trip(&mut client, b"\x00\xff binary", b"\x00\xff binary");
    drop(client);
    let (status, stats) = server.stop();
    assert!(status.success());
    assert_eq!(stats["accepted"], 1);
    assert_eq!(stats["bytes_in"], 15);
    assert_eq!(stats["bytes_out"], 15);
}

/// Four clients each stream 8 MiB at once; every byte comes back in order.
#[test]
fn echo_multi_megabyte_concurrent_transfers_are_exact() {
    let server = Server::start(&[]);
    let results: Vec<_> = thread::scope(|s| {
        (0..4u64)
            .map(|i| {
                let addr = server.tcp();
                s.spawn(move || {
                    let payload = pattern(8 << 20, i);
                    (transfer(addr, payload.clone()) == payload, i)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    });
    for (ok, i) in results {
        assert!(ok, "client {i} got different bytes back");
    }
    let (_, stats) = server.stop();
    assert_eq!(stats["bytes_in"], 4 * (8 << 20));
    assert_eq!(stats["bytes_out"], 4 * (8 << 20));
    assert_eq!(stats["closed_eof"], 4);
}

/// Upper over a multi-megabyte mixed ASCII / multi-byte stream, written in
/// chunks whose edges fall inside characters.
#[test]
fn upper_multi_megabyte_transfer_is_exact() {
    let server = Server::start(&["--mode", "upper"]);
    let unit = "straße ǰ ΐ 😀 abc ".repeat(1000);
    let text = unit.repeat(150); // ~3.5 MB
    let got = transfer(server.tcp(), text.clone().into_bytes());
    assert_eq!(got.len(), text.to_uppercase().len());
    assert!(
        got == text.to_uppercase().into_bytes(),
        "uppercased stream differs"
    );
}

/// Half-close: the client shuts down its write side; the server still sends
/// everything it owes, then its own FIN, and counts the close as EOF.
#[test]
fn half_close_delivers_everything_owed_then_eof() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let payload = pattern(3 << 20, 7);
    // Write it all before reading anything, then half-close.
    let mut writer = client.try_clone().unwrap();
    let data = payload.clone();
    let sender = thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_eof(&mut client);
    sender.join().unwrap();
    assert!(
        got == payload,
        "half-closed client did not get every byte back"
    );
    let (_, stats) = server.stop();
    assert_eq!(stats["closed_eof"], 1);
    assert_eq!(stats["closed_reset"], 0);
    assert_eq!(stats["active"], 0);
}

/// A peer that resets (SO_LINGER 0, then close) is counted as a reset, and
/// the server keeps serving another client throughout.
#[test]
fn reset_peer_is_counted_and_others_still_served() {
    let server = Server::start(&["--stats-interval", "1"]);
    let mut other = server.connect();
    round_trip(&mut other, b"before", b"before");

    let mut rude = server.connect();
    round_trip(&mut rude, b"ping", b"ping");
    // Leave unread echo in our receive buffer too, then reset.
    rude.write_all(b"unread").unwrap();
    thread::sleep(std::time::Duration::from_millis(50));
    socket2::SockRef::from(&rude)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(rude);

    let seen = server.wait_for_stats(|s| s["closed_reset"] == 1);
    assert_eq!(
        seen["active"], 1,
        "the other client is still connected: {seen:?}"
    );
    round_trip(&mut other, b"after", b"after");
    drop(other);
    let (status, stats) = server.stop();
    assert!(status.success());
    assert_eq!(stats["closed_reset"], 1, "{stats:?}");
    assert_eq!(stats["closed_eof"], 1, "{stats:?}");
}

/// Half-close while the server still owes megabytes: the client writes
/// 16 MiB without reading (a large --max-pending lets the server keep reading
/// into its owed buffer), shuts down its write side, and only then reads.
/// Every byte must still arrive before the server's FIN.
#[test]
fn half_close_with_megabytes_owed_still_delivers_them() {
    let server = Server::start(&["--max-pending", "67108864"]);
    let mut client = server.connect();
    let payload = pattern(16 << 20, 9);
    client.write_all(&payload).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let got = read_to_eof(&mut client);
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "bytes owed at EOF were not all delivered");
    let (_, stats) = server.stop();
    assert_eq!(stats["closed_eof"], 1, "{stats:?}");
}
