//! What only the proactor has: operations still in the kernel when their
//! connection closes, and a kernel that refuses io_uring. (Everything else
//! it shares with the reactor runs in the other modules, `kind proactor`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// Connections closed by the idle timeout while their multishot recvs are
/// armed (each close is a cancel, and its completions come later), and new
/// connections arriving in the same moments, taking slots as they are
/// freed: every byte of every newcomer comes back right, no completion is
/// ever delivered to the wrong connection (the server would log `stale
/// completion`), and the counts add up.
#[test]
fn slots_closed_with_operations_in_flight_are_reused_safely() {
    let server = Server::start_spec(
        &Kind::Proactor.spec(),
        &["--idle-timeout", "1", "--udp", "off"],
    );
    let rounds = 3;
    let per_round = 60;
    let mut idle: Vec<TcpStream> = Vec::new();
    for round in 0..rounds {
        // These go idle and are closed by the server around one second
        // from now, with their recvs armed.
        for i in 0..per_round {
            let mut c = server.connect();
            let hello = format!("idle {round} {i}\n");
            round_trip(&mut c, hello.as_bytes(), hello.as_bytes());
            idle.push(c);
        }
        // Meanwhile, and through the closes, newcomers come and go.
        let started = std::time::Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(1600) {
            let mut c = server.connect();
            let message = pattern(3000, (round * 10_000 + n) as u64);
            round_trip(&mut c, &message, &message);
            n += 1;
        }
    }
    // The idle ones were closed by the server: EOF (its FIN), or a reset
    // when the bytes we never read were thrown away.
    for mut c in idle {
        let mut buf = [0u8; 16];
        let _ = c.write_all(b"x");
        assert!(
            matches!(c.read(&mut buf), Ok(0) | Err(_)),
            "an idle connection still open"
        );
    }
    let (status, stats) = server.stop();
    assert!(status.success());
    assert_eq!(stats.closed_idle, (rounds * per_round) as u64, "{stats:?}");
    assert_eq!(stats.active, 0, "{stats:?}");
    assert_eq!(
        stats.accepted,
        stats.closed_eof + stats.closed_reset + stats.closed_idle,
        "{stats:?}"
    );
}

/// The provided buffers as the running server takes them. On a kernel with
/// the recv byte limit (6.16 and later) the start-up log names 256 buffers
/// of 64 KiB consumed incrementally, so the messages of many connections
/// share a buffer one after another and a message longer than what is left
/// of one ends it and goes on in the next; before, 4,096 whole buffers of
/// 4 KiB. Forty connections, each sending messages of every size from a
/// few bytes to 96 KiB, all written before any reply is read: every byte
/// of each comes back right, while the 16 MiB of buffers go round the ring
/// several times.
#[test]
fn connections_share_the_provided_buffers_and_every_byte_comes_back() {
    let server = Server::start_spec(&Kind::Proactor.spec(), &["--udp", "off"]);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut version = release.split(|c: char| !c.is_ascii_digit());
    let (major, minor) = (version.next(), version.next());
    let has_limit = matches!(
        (major.and_then(|m| m.parse::<u32>().ok()), minor.and_then(|m| m.parse::<u32>().ok())),
        (Some(a), Some(b)) if (a, b) >= (6, 16)
    );
    let expected = if has_limit {
        "256 provided buffers of 64 KiB, consumed incrementally"
    } else {
        "4096 provided buffers of 4 KiB, whole"
    };
    assert!(
        eventually(PATIENCE, || server.stderr().contains(expected)),
        "the start-up log does not say {expected:?}:\n{}",
        server.stderr()
    );
    let mut conns: Vec<TcpStream> = (0..40).map(|_| server.connect()).collect();
    let mut sent = 0usize;
    for round in 0..30u64 {
        let messages: Vec<Vec<u8>> = (0..conns.len() as u64)
            .map(|i| {
                let len = 1 + ((round * 7919 + i * 104_729) % 98_304) as usize;
                pattern(len, round * 1000 + i)
            })
            .collect();
        for (conn, message) in conns.iter_mut().zip(&messages) {
            conn.write_all(message).expect("write");
            sent += message.len();
        }
        for (conn, message) in conns.iter_mut().zip(&messages) {
            let mut got = vec![0; message.len()];
            conn.read_exact(&mut got).expect("read the echo");
            assert_bytes_eq(&got, message);
        }
    }
    drop(conns);
    let (status, stats) = server.stop();
    assert!(status.success());
    assert_eq!(stats.bytes_in, sent as u64, "{stats:?}");
    assert!(
        sent > 3 * (16 << 20),
        "only {sent} bytes: the ring did not go round"
    );
}

/// Where io_uring is unavailable (here: `io_uring_setup` made to fail with
/// ENOSYS by strace, as an old kernel or a seccomp profile would), the
/// proactor exits 1 with one `error:` line that says so and points to
/// `serve`, before taking any address.
#[test]
fn without_io_uring_the_proactor_says_so_in_one_line_and_exits_1() {
    let strace = Command::new("strace").arg("-V").output();
    if strace.map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipped: strace (which refuses io_uring_setup for this test) is not installed");
        return;
    }
    let out = Command::new("strace")
        .args([
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "inject=io_uring_setup:error=ENOSYS",
        ])
        .args([BIN, "proactor", "--tcp", "127.0.0.1:0", "--udp", "off"])
        .output()
        .expect("run the proactor under strace");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: io_uring is unavailable here"),
        "{stderr}"
    );
    assert!(first.contains("reactor-echo serve"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty(), "no listening line: {out:?}");
}
