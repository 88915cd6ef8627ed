//! Bad start-up input: one `error:` line on stderr naming the problem, no
//! panic, exit status 2 for bad arguments and 1 for a failure to bind.

use std::process::Command;

use crate::support::*;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic on {args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for {args:?}");
    (out.status.code().expect("exit code"), stderr)
}

fn assert_error(args: &[&str], code: i32, mentions: &str) {
    let (got, stderr) = run(args);
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

#[test]
fn address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_error(&["--tcp", &addr, "--udp", "off"], 1, "in use");
}

#[test]
fn udp_address_in_use_exits_1() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_error(&["--tcp", "off", "--udp", &addr], 1, "cannot bind UDP");
}

#[test]
fn unparsable_address_exits_2() {
    assert_error(&["--tcp", "not an address"], 2, "--tcp");
    assert_error(&["--udp", "127.0.0.1:99999"], 2, "--udp");
}

#[test]
fn unknown_mode_exits_2() {
    assert_error(&["--mode", "shout"], 2, "shout");
}

#[test]
fn zero_or_absurd_limits_exit_2() {
    assert_error(&["--max-connections", "0"], 2, "--max-connections");
    assert_error(&["--max-pending", "0"], 2, "--max-pending");
    assert_error(&["--max-pending", "99999999999"], 2, "--max-pending");
    assert_error(&["--max-connections", "-5"], 2, "--max-connections");
    assert_error(&["--idle-timeout", "999999999999"], 2, "--idle-timeout");
}

#[test]
fn nothing_to_serve_exits_2() {
    assert_error(&["--tcp", "off", "--udp", "off"], 2, "nothing to serve");
}
