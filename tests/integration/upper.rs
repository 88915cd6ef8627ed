//! The streaming uppercase rule, end to end: characters split across
//! segments, invalid bytes, and an incomplete tail at EOF.

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use crate::support::*;

/// The whole-input rule: valid UTF-8 uppercased, invalid bytes unchanged.
fn expected(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in input.utf8_chunks() {
        out.extend_from_slice(chunk.valid().to_uppercase().as_bytes());
        out.extend_from_slice(chunk.invalid());
    }
    out
}

/// Sends `pieces` as separate segments (a pause between them makes the
/// server read them separately), half-closes, and returns everything read.
fn send_in_pieces(server: &Server, pieces: &[&[u8]]) -> Vec<u8> {
    let mut client = server.connect();
    for piece in pieces {
        client.write_all(piece).unwrap();
        client.flush().unwrap();
        thread::sleep(Duration::from_millis(40));
    }
    client.shutdown(Shutdown::Write).unwrap();
    read_to_eof(&mut client)
}

server_test! {
    /// `ß` split between its two bytes still becomes `SS`; a 4-byte emoji split
    /// three ways passes intact.
    fn characters_split_across_reads_are_uppercased(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        assert_eq!(
            send_in_pieces(&server, &[b"stra\xc3", b"\x9fe"]),
            b"STRASSE"
        );
        assert_eq!(
            send_in_pieces(&server, &[b"a\xf0", b"\x9f\x98", b"\x80b"]),
            "A😀B".as_bytes()
        );
        assert_eq!(
            send_in_pieces(&server, &[b"\xc5", b"\x89"]),
            "ʼN".as_bytes()
        );
    }
}

server_test! {
    /// Bytes that are not UTF-8 pass through unchanged; their neighbours are
    /// still converted.
    fn invalid_bytes_pass_unchanged(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        let input: &[u8] = b"ok\xff\xfe then \xe2\x82x \xed\xa0\x80z";
        assert_eq!(send_in_pieces(&server, &[input]), expected(input));
        assert_eq!(
            send_in_pieces(&server, &[input]),
            b"OK\xff\xfe THEN \xe2\x82X \xed\xa0\x80Z".to_vec()
        );
    }
}

server_test! {
    /// An incomplete sequence at the end of the stream is held until EOF, then
    /// sent unchanged.
    fn incomplete_tail_is_flushed_unchanged_at_eof(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        assert_eq!(send_in_pieces(&server, &[b"caf\xc3"]), b"CAF\xc3");
        assert_eq!(
            send_in_pieces(&server, &[b"x\xf0\x9f", b"\x98"]),
            b"X\xf0\x9f\x98"
        );
    }
}

server_test! {
    /// Mixed input cut at every offset into two segments matches the rule.
    fn every_two_way_split_of_a_mixed_input_matches(kind) for all {
        let server = Server::start(kind, &["--mode", "upper"]);
        let input = "aß\u{149}😀\u{390}z"
            .as_bytes()
            .iter()
            .copied()
            .chain([0xffu8, b'q'])
            .collect::<Vec<u8>>();
        let want = expected(&input);
        for cut in 0..=input.len() {
            let got = send_in_pieces(&server, &[&input[..cut], &input[cut..]]);
            assert_eq!(got, want, "cut at {cut}");
        }
    }
}
