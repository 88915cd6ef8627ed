//! Bad start-up input: one `error:` line on stderr naming the problem, no
//! panic, exit status 2 for bad arguments and 1 for a failure to bind. The
//! error is the *first* line on stderr whatever `RUST_LOG` says: the servers
//! log their limits only once their sockets are bound.

use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use crate::support::*;

/// The log levels a start-up error must come first under: unset (the
/// default, `info`), everything, nothing.
const LOG_LEVELS: [Option<&str>; 3] = [None, Some("trace"), Some("off")];

fn start_bad_logging(kind: Kind, args: &[&str], rust_log: Option<&str>) -> (i32, String) {
    let spec = kind.spec();
    let mut command = Command::new(&spec.program);
    command.args(&spec.args).args(args);
    match rust_log {
        Some(level) => command.env("RUST_LOG", level),
        None => command.env_remove("RUST_LOG"),
    };
    let out = command.output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic on {args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for {args:?}");
    (out.status.code().expect("exit code"), stderr)
}

fn assert_error(kind: Kind, args: &[&str], code: i32, mentions: &str) {
    assert_error_logging(kind, args, None, code, mentions);
}

/// The exit status is `code`, and the first line on stderr is the `error:`
/// line and names the problem.
fn assert_error_logging(
    kind: Kind,
    args: &[&str],
    rust_log: Option<&str>,
    code: i32,
    mentions: &str,
) {
    let (got, stderr) = start_bad_logging(kind, args, rust_log);
    assert_eq!(
        got, code,
        "exit code for {args:?} (RUST_LOG {rust_log:?}); stderr:\n{stderr}"
    );
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error:") && first.contains(mentions),
        "the first line on stderr for {args:?} (RUST_LOG {rust_log:?}) should be the \
         error naming {mentions:?}; stderr:\n{stderr}"
    );
}

server_test! {
    /// A TCP port in use: the bind error is the first line, at every log level.
    fn address_in_use_exits_1(kind) for all {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        for level in LOG_LEVELS {
            assert_error_logging(kind, &["--tcp", &addr, "--udp", "off"], level, 1, "in use");
        }
    }
}

server_test! {
    /// A UDP port in use, after TCP bound fine: still the first line.
    fn udp_address_in_use_exits_1(kind) for all {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        for level in LOG_LEVELS {
            assert_error_logging(kind, &["--tcp", "off", "--udp", &addr], level, 1, "cannot bind UDP");
            assert_error_logging(
                kind,
                &["--tcp", "127.0.0.1:0", "--udp", &addr],
                level,
                1,
                "cannot bind UDP",
            );
        }
    }
}

/// The README's first command (`serve` with its defaults) while the default
/// port is taken: the error line first, exit 1, for every server. One test
/// for all three, so that the port stays held by this test the whole time.
#[test]
fn default_port_in_use_exits_1_for_every_server() {
    // Hold 127.0.0.1:8080 (if something else on the machine already holds
    // it, that serves as well).
    let held = match TcpListener::bind("127.0.0.1:8080") {
        Ok(listener) => Some(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("cannot bind 127.0.0.1:8080 to hold it: {e}"),
    };
    for kind in [
        Kind::Reactor,
        Kind::Threads,
        Kind::Iterative,
        Kind::Proactor,
    ] {
        for level in LOG_LEVELS {
            assert_error_logging(kind, &[], level, 1, "cannot bind TCP 127.0.0.1:8080");
        }
    }
    drop(held);
}

server_test! {
    fn unparsable_address_exits_2(kind) for all {
        assert_error(kind, &["--tcp", "not an address"], 2, "--tcp");
        assert_error(kind, &["--udp", "127.0.0.1:99999"], 2, "--udp");
    }
}

server_test! {
    fn unknown_mode_exits_2(kind) for all {
        assert_error(kind, &["--mode", "shout"], 2, "shout");
    }
}

server_test! {
    fn zero_or_absurd_limits_exit_2(kind) for all {
        assert_error(kind, &["--max-connections", "0"], 2, "--max-connections");
        assert_error(kind, &["--max-pending", "0"], 2, "--max-pending");
        assert_error(kind, &["--max-pending", "99999999999"], 2, "--max-pending");
        assert_error(kind, &["--max-connections", "-5"], 2, "--max-connections");
        assert_error(kind, &["--idle-timeout", "999999999999"], 2, "--idle-timeout");
    }
}

server_test! {
    fn nothing_to_serve_exits_2(kind) for all {
        assert_error(kind, &["--tcp", "off", "--udp", "off"], 2, "nothing to serve");
    }
}

server_test! {
    /// `RUST_LOG=trace` shows the reactor's per-message path, as the
    /// docs promise: each wake-up, each connection's event with the
    /// readiness it reported, and each read; and no flush where nothing
    /// is owed.
    fn the_trace_log_shows_every_wake_up_event_and_read(kind) for [reactor]
    skip [
        threads: "its trace lines are its own: this test reads the reactor's",
        iterative: "its trace lines are its own: this test reads the reactor's",
        proactor: "its trace lines are its own: this test reads the reactor's"
    ] {
        let server = Server::start_wrapped(&["env", "RUST_LOG=trace"], kind, &[]);
        let mut client = server.connect();
        round_trip(&mut client, b"abc", b"abc");
        round_trip(&mut client, b"defg", b"defg");
        let lines = [
            "wake: ",
            "conn=0 event readable",
            "conn=0 read 3 bytes",
            "conn=0 read 4 bytes",
        ];
        for line in lines {
            let said = eventually(PATIENCE, || server.stderr().contains(line));
            assert!(said, "no {line:?} in:\n{}", server.stderr());
        }
        // The first request's whole turn is logged before the second's
        // read. Its reply, sent whole, is no partial write and leaves
        // nothing owed: each writable event finds nothing to flush, and
        // says nothing.
        let stderr = server.stderr();
        let first = &stderr[..stderr.find("conn=0 read 4 bytes").unwrap()];
        assert!(
            !first.contains("partial write"),
            "a whole reply called partial in:\n{first}"
        );
        assert!(
            !first.contains("owed bytes"),
            "a flush of nothing in:\n{first}"
        );
    }
}

server_test! {
    /// The start-up log says which mode runs, by its name: the one line
    /// that tells an operator what `--mode` the server took.
    fn the_log_names_the_mode_that_runs(kind) for all {
        for mode in ["echo", "upper", "greet"] {
            let server = Server::start(kind, &["--mode", mode]);
            let line = format!("mode {mode}\n");
            let said = eventually(PATIENCE, || server.stderr().contains(&line));
            assert!(said, "no `{}` line in:\n{}", line.trim(), server.stderr());
        }
    }
}
