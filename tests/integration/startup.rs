//! Bad start-up input: one `error:` line on stderr naming the problem, no
//! panic, exit status 2 for bad arguments and 1 for a failure to bind.

use std::process::Command;

use crate::support::*;

fn start_bad(kind: Kind, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(kind.subcommand())
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic on {args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for {args:?}");
    (out.status.code().expect("exit code"), stderr)
}

fn assert_error(kind: Kind, args: &[&str], code: i32, mentions: &str) {
    let (got, stderr) = start_bad(kind, args);
    assert_eq!(got, code, "exit code for {args:?}; stderr:\n{stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error:"),
        "first line for {args:?}: {first}"
    );
    assert!(
        stderr.contains(mentions),
        "stderr for {args:?} should mention {mentions:?}:\n{stderr}"
    );
}

server_test! {
    fn address_in_use_exits_1(kind) for [reactor, threads, iterative] {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        assert_error(kind, &["--tcp", &addr, "--udp", "off"], 1, "in use");
    }
}

server_test! {
    fn udp_address_in_use_exits_1(kind) for [reactor, threads, iterative] {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        assert_error(kind, &["--tcp", "off", "--udp", &addr], 1, "cannot bind UDP");
    }
}

server_test! {
    fn unparsable_address_exits_2(kind) for [reactor, threads, iterative] {
        assert_error(kind, &["--tcp", "not an address"], 2, "--tcp");
        assert_error(kind, &["--udp", "127.0.0.1:99999"], 2, "--udp");
    }
}

server_test! {
    fn unknown_mode_exits_2(kind) for [reactor, threads, iterative] {
        assert_error(kind, &["--mode", "shout"], 2, "shout");
    }
}

server_test! {
    fn zero_or_absurd_limits_exit_2(kind) for [reactor, threads, iterative] {
        assert_error(kind, &["--max-connections", "0"], 2, "--max-connections");
        assert_error(kind, &["--max-pending", "0"], 2, "--max-pending");
        assert_error(kind, &["--max-pending", "99999999999"], 2, "--max-pending");
        assert_error(kind, &["--max-connections", "-5"], 2, "--max-connections");
        assert_error(kind, &["--idle-timeout", "999999999999"], 2, "--idle-timeout");
    }
}

server_test! {
    fn nothing_to_serve_exits_2(kind) for [reactor, threads, iterative] {
        assert_error(kind, &["--tcp", "off", "--udp", "off"], 2, "nothing to serve");
    }
}
