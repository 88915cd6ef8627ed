//! The interactive clients against a running server: piped, and in a real
//! terminal driven through tmux.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::*;

/// Runs `reactor-echo client ARGS` with `input` piped to stdin.
fn client(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    // The client may exit before reading its input (a refused connection).
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

/// Piped TCP use prints each reply and nothing else; empty lines are not sent.
#[test]
fn tcp_piped_echo_skips_empty_lines() {
    let server = Server::start(Kind::Reactor, &[]);
    let addr = server.tcp().to_string();
    let out = client(&["tcp", &addr], "hi\n\nthere\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nthere\n");
    let (_, stats) = server.stop();
    assert_eq!(stats.bytes_in, 9, "the empty line was not sent: {stats:?}");
}

/// Against upper, and against the blocking server: the same client works.
#[test]
fn tcp_piped_upper_against_the_blocking_server() {
    let server = Server::start(Kind::Iterative, &["--mode", "upper"]);
    let out = client(&["tcp", &server.tcp().to_string()], "hi\nstraße\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HI\nSTRASSE\n");
}

/// `quit` ends the session; nothing after it is sent.
#[test]
fn quit_ends_the_session() {
    let server = Server::start(Kind::Reactor, &[]);
    let out = client(&["tcp", &server.tcp().to_string()], "one\nquit\ntwo\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
}

/// A refused connection: one clear line on stderr and a non-zero exit.
#[test]
fn refused_connection_is_one_clear_error() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap().to_string();
    drop(unused);
    let out = client(&["tcp", &addr], "hi\n");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: cannot connect to"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// UDP: each line is a datagram and its reply is printed; empty lines are
/// not sent.
#[test]
fn udp_piped_round_trips() {
    let server = Server::start(Kind::Threads, &["--mode", "upper"]);
    let out = client(&["udp", &server.udp().to_string()], "hi\n\nthere\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HI\nTHERE\n");
    let (_, stats) = server.stop();
    assert_eq!(stats.udp_in, 2, "the empty line was not sent: {stats:?}");
}

/// UDP with nobody listening: each unanswered datagram gives one line on
/// stderr, and the client goes on to the next line and exits 0.
#[test]
fn udp_unanswered_datagrams_are_reported_and_skipped() {
    let unused = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap().to_string();
    drop(unused);
    let out = client(&["udp", &addr, "--timeout", "0.3"], "a\nb\n");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("no reply from"))
            .count(),
        2,
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// A tmux server of the test's own (`tmux -L NAME`), killed on drop even if
/// the test fails, so no session outlives it.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(test: &str) -> Tmux {
        if Command::new("tmux").arg("-V").output().is_err() {
            panic!("tmux is needed for this test (apt-get install tmux); .ci/run installs it");
        }
        Tmux {
            socket: format!("reactor-echo-{test}-{}", std::process::id()),
        }
    }

    /// Runs a tmux command; its output is captured only for `capture-pane`,
    /// since the tmux server would otherwise inherit the pipes and hold them open.
    fn run(&self, args: &[&str]) -> String {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null());
        if args[0] == "capture-pane" {
            return String::from_utf8_lossy(&command.output().expect("tmux").stdout).into_owned();
        }
        let status = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("tmux");
        assert!(
            status.success() || args[0] == "kill-server",
            "tmux {args:?} failed"
        );
        String::new()
    }

    /// A new tmux server running `reactor-echo client tcp ADDR` in a session
    /// named `client`; the shell prints `exit=N` when the client ends.
    fn with_client(test: &str, addr: std::net::SocketAddr) -> Tmux {
        let tmux = Tmux::new(test);
        let command = format!("{BIN} client tcp {addr}; echo exit=$?; sleep 30");
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "client",
            "-x",
            "80",
            "-y",
            "20",
            &command,
        ]);
        tmux
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "client"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// In a real terminal (tmux): the `>>> ` prompt appears, a typed line is
/// answered before the next prompt, `quit` ends the client, and the close is
/// a clean EOF at the server.
#[test]
fn interactive_session_in_a_terminal() {
    let server = Server::start(Kind::Reactor, &["--mode", "upper"]);
    let tmux = Tmux::with_client("session", server.tcp());
    let wait_for = |what: &str| {
        assert!(
            eventually(PATIENCE, || tmux.screen().contains(what)),
            "never saw {what:?}; screen:\n{}",
            tmux.screen()
        );
    };
    // (capture-pane trims trailing spaces, so the prompt shows as `>>>`.)
    wait_for(">>>");
    tmux.run(&["send-keys", "-t", "client", "hello there", "Enter"]);
    // The reply comes before the next prompt.
    wait_for(">>> hello there\nHELLO THERE\n>>>");
    tmux.run(&["send-keys", "-t", "client", "quit", "Enter"]);
    wait_for("exit=0");
    thread::sleep(Duration::from_millis(100));
    let (_, stats) = server.stop();
    assert_eq!(
        stats.closed_eof, 1,
        "quit closed the connection cleanly: {stats:?}"
    );
}

/// When the server closes the connection (greet), the interactive client says
/// so and exits 0 without waiting for another line.
#[test]
fn interactive_client_leaves_when_the_server_closes() {
    let server = Server::start(Kind::Reactor, &["--mode", "greet"]);
    let tmux = Tmux::with_client("closes", server.tcp());
    assert!(
        eventually(PATIENCE, || tmux.screen().contains(">>>")),
        "{}",
        tmux.screen()
    );
    tmux.run(&["send-keys", "-t", "client", "hi", "Enter"]);
    assert!(
        eventually(PATIENCE, || tmux.screen().contains("Hello, Client!")),
        "{}",
        tmux.screen()
    );
    assert!(
        eventually(PATIENCE, || tmux
            .screen()
            .contains("the server closed the connection")
            && tmux.screen().contains("exit=0")),
        "{}",
        tmux.screen()
    );
}
