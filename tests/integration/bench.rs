//! `reactor-echo bench`, the load generator, against a running server: every
//! mode, the JSON report, mismatch detection, and its limits.

use std::process::Command;

use crate::support::*;

/// Closed loop: all connections established, messages counted, no mismatch,
/// every documented key present, and a progress line on stderr.
#[test]
fn closed_loop_json_report() {
    let server = Server::start(Kind::Reactor, &[]);
    let addr = server.tcp().to_string();
    let out = bench_at(
        addr,
        &[
            "--connections",
            "50",
            "--duration",
            "1.5",
            "--warmup",
            "0.2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    for key in [
        "connections",
        "established",
        "failed",
        "messages",
        "messages_per_sec",
        "bytes_per_sec",
        "latency_us.p50",
        "latency_us.p90",
        "latency_us.p99",
        "latency_us.p999",
        "latency_us.max",
        "errors",
        "mismatches",
    ] {
        assert!(r.contains_key(key), "missing {key} in {r:?}");
    }
    assert_eq!(r["connections"], 50.0);
    assert_eq!(r["established"], 50.0);
    assert_eq!(r["mismatches"], 0.0);
    assert_eq!(r["errors"], 0.0);
    assert!(r["messages"] > 100.0, "{r:?}");
    assert!(r["latency_us.p50"] > 0.0 && r["latency_us.p50"] <= r["latency_us.p99"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("connections up,") && stderr.contains("msg/s"),
        "no progress line: {stderr}"
    );
    let (_, stats) = server.stop();
    assert_eq!(stats.accepted, 50);
}

/// Replies that are not what was sent are counted, and the run fails.
#[test]
fn mismatched_replies_fail_the_run() {
    // An echo server, but the generator expects uppercase.
    let server = Server::start(Kind::Reactor, &[]);
    let out = bench_at(
        server.tcp(),
        &["--connections", "5", "--duration", "0.5", "--mode", "upper"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(report(&out)["mismatches"] > 0.0);
    // Against upper, the same run is clean.
    let upper = Server::start(Kind::Reactor, &["--mode", "upper"]);
    let out = bench_at(
        upper.tcp(),
        &["--connections", "5", "--duration", "0.5", "--mode", "upper"],
    );
    assert!(out.status.success());
    assert_eq!(report(&out)["mismatches"], 0.0);
}

/// Connect failures are counted and reported; a run where they all
/// failed then fails (issue 24: it used to exit 0), with one `error:` line
/// naming the cause, and without waiting out its duration.
#[test]
fn refused_connections_are_counted() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap().to_string();
    drop(unused);
    let started = std::time::Instant::now();
    let out = bench_at(addr, &["--connections", "20", "--duration", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let r = report(&out);
    assert_eq!(r["failed"], 20.0);
    assert_eq!(r["established"], 0.0);
    assert_eq!(r["failures.refused"], 20.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [
            "error: connection refused: 20 of 20 connects and round trips failed (20 connection refused)"
        ],
        "{stderr}"
    );
    // No replies: no latency, null rather than 0.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"latency_us\":null"), "{text}");
}

/// More connections than one process's open-file limit allows, in one
/// process (`--processes 1`): a clear error, exit 2. (Without the flag, the
/// load is spread over processes: `processes.rs`.)
#[test]
fn connections_that_cannot_fit_are_refused_up_front() {
    let out = Command::new("prlimit")
        .args([
            "--nofile=200:200",
            BIN,
            "bench",
            "--connections",
            "1000",
            "--processes",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: 1000 connections cannot fit"),
        "{stderr}"
    );
}

/// Churn: whole connect-message-close cycles, each checked.
#[test]
fn churn_cycles_connections() {
    let server = Server::start(Kind::Reactor, &[]);
    let out = bench_at(
        server.tcp(),
        &["--connections", "4", "--duration", "1", "--churn"],
    );
    assert!(out.status.success());
    let r = report(&out);
    assert!(r["messages"] >= 20.0, "{r:?}");
    assert_eq!(r["mismatches"], 0.0);
    let (_, stats) = server.stop();
    assert!(
        stats.accepted as f64 >= r["messages"],
        "every cycle is a new connection: {stats:?}"
    );
}

/// Idle: N connections held, then one verified round trip on each.
#[test]
fn idle_connections_then_round_trips() {
    let server = Server::start(Kind::Reactor, &[]);
    let out = bench_at(
        server.tcp(),
        &["--connections", "300", "--duration", "0.5", "--idle"],
    );
    assert!(out.status.success());
    assert_eq!(report(&out)["idle_ok"], 300.0);
}

/// The open loop sends on schedule: about rate × duration messages.
#[test]
fn open_loop_keeps_the_rate() {
    let server = Server::start(Kind::Reactor, &[]);
    let out = bench_at(
        server.tcp(),
        &[
            "--connections",
            "10",
            "--duration",
            "2",
            "--warmup",
            "0.2",
            "--rate",
            "1000",
        ],
    );
    assert!(out.status.success());
    let r = report(&out);
    assert!((1600.0..=2400.0).contains(&r["messages"]), "{r:?}");
}

/// UDP: datagrams from N sockets, answered and checked; none lost on loopback.
#[test]
fn udp_datagrams_are_verified() {
    let server = Server::start(Kind::Reactor, &["--mode", "upper"]);
    let out = bench_at(
        server.udp(),
        &[
            "--udp",
            "--connections",
            "8",
            "--duration",
            "1",
            "--mode",
            "upper",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&out);
    assert!(r["messages"] > 100.0, "{r:?}");
    assert_eq!(r["mismatches"], 0.0);
    assert_eq!(r["lost"], 0.0);
}

/// The human-readable report names the figures and the environment.
#[test]
fn human_report() {
    let server = Server::start(Kind::Threads, &[]);
    let out = bench(&[
        "--addr",
        &server.tcp().to_string(),
        "--connections",
        "3",
        "--duration",
        "0.5",
        "--warmup",
        "0",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["msg/s", "p99", "mismatched", "fd limit", "kernel"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

/// `--server-pid`: the server's CPU time over the window, and per message,
/// for TCP and for UDP; without it the key is null. The generator's own CPU
/// time is always reported, the same way.
#[test]
fn cpu_of_the_server_and_of_the_bench_is_reported_per_message() {
    let server = Server::start(Kind::Reactor, &[]);
    let pid = server.pid().to_string();
    for (addr, udp) in [(server.tcp(), None), (server.udp(), Some("--udp"))] {
        let addr = addr.to_string();
        let mut args = vec![
            "--connections",
            "20",
            "--duration",
            "1.5",
            "--server-pid",
            &pid,
        ];
        args.extend(udp);
        let out = bench_at(&addr, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = report(&out);
        for who in ["server_cpu", "bench_cpu"] {
            let spent = r[&format!("{who}.user_s")] + r[&format!("{who}.system_s")];
            assert!(spent > 0.0, "{who}: work was done in the window: {r:?}");
            let per_message = r[&format!("{who}.us_per_msg")];
            let expected = spent * 1e6 / r["messages"];
            assert!(
                (per_message - expected).abs() < 0.01 + expected * 0.01,
                "{who}: {per_message} us per message, {expected} expected: {r:?}"
            );
        }
    }
    let out = bench_at(server.tcp(), &["--connections", "2", "--duration", "0.3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"server_cpu\":null"), "{text}");
    assert!(text.contains("\"bench_cpu\":{\"user_s\":"), "{text}");
}

/// `--start-at`: two load generators started a second apart, both told to
/// start their clock at the same wall-clock moment, measure the same
/// window: each one's run ends at that moment plus its warm-up and
/// duration, whenever it was started. A moment already past starts the run
/// at once, with a warning.
#[test]
fn start_at_lines_up_the_windows_of_two_load_generators() {
    let server = Server::start(Kind::Reactor, &[]);
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64
    };
    let start = (unix_ms() + 2_500).to_string();
    let addr = server.tcp().to_string();
    let run = |delay_ms: u64| {
        let (addr, start) = (addr.clone(), start.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let out = bench_at(
                &addr,
                &[
                    "--connections",
                    "4",
                    "--duration",
                    "1",
                    "--start-at",
                    &start,
                ],
            );
            (out, unix_ms())
        })
    };
    let (early, late) = (run(0), run(1_000));
    let (early, early_end) = early.join().expect("the first");
    let (late, late_end) = late.join().expect("the second");
    let start: u64 = start.parse().expect("a number");
    for (out, end) in [(&early, early_end), (&late, late_end)] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report(out)["messages"] > 0.0);
        // The clock started at `start`; one second of window, then the end.
        assert!(
            (start + 1_000..start + 2_000).contains(&end),
            "ended {} ms after the start moment",
            end as i64 - start as i64
        );
    }
    let past = bench_at(
        &addr,
        &[
            "--connections",
            "2",
            "--duration",
            "0.5",
            "--start-at",
            "1000",
        ],
    );
    assert!(past.status.success());
    let stderr = String::from_utf8_lossy(&past.stderr);
    assert!(
        stderr.contains("after the start time; starting now"),
        "{stderr}"
    );
}
