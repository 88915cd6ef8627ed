//! Bytes on the wire: test payloads, round trips, and comparisons that say
//! where two byte strings differ (a failing multi-megabyte `assert_eq!`
//! would print megabytes, or nothing useful).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;

use super::process::PATIENCE;

/// Deterministic, non-repeating-looking test bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `request` and reads exactly `expected.len()` bytes back.
pub fn round_trip(stream: &mut TcpStream, request: &[u8], expected: &[u8]) {
    stream.write_all(request).expect("write");
    let mut got = vec![0; expected.len()];
    stream.read_exact(&mut got).expect("read reply");
    assert_bytes_eq(&got, expected);
}

/// Asserts that `got` is a prefix of `sent`, saying where they differ.
#[track_caller]
pub fn assert_bytes_prefix(got: &[u8], sent: &[u8]) {
    assert!(
        got.len() <= sent.len(),
        "got {} bytes, more than the {} sent",
        got.len(),
        sent.len()
    );
    if let Some(at) = got.iter().zip(sent).position(|(a, b)| a != b) {
        let window = |b: &[u8]| format!("{:02x?}", &b[at..(at + 16).min(b.len())]);
        panic!(
            "bytes differ at offset {at} of {}: got {} expected {}",
            got.len(),
            window(got),
            window(sent)
        );
    }
}

/// Reads until EOF (the server's FIN).
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read to EOF");
    all
}

/// Asserts that `got` equals `expected`; on failure says the lengths, the
/// first differing offset and a short hex window around it.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], expected: &[u8]) {
    if got == expected {
        return;
    }
    let at = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    let window = |b: &[u8]| {
        let start = at.saturating_sub(4);
        format!("{:02x?}", &b[start.min(b.len())..(at + 12).min(b.len())])
    };
    panic!(
        "bytes differ: got {} bytes, expected {}; first difference at offset {at}: \
         got {} expected {} (from offset {})",
        got.len(),
        expected.len(),
        window(got),
        window(expected),
        at.saturating_sub(4)
    );
}

/// Connects to `addr`, writes `payload` on one thread (then half-closes)
/// while reading the reply to EOF on another, so that neither side's
/// buffers can deadlock a transfer larger than they hold.
pub fn transfer(addr: SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(4 * PATIENCE)).unwrap();
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
