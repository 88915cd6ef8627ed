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
