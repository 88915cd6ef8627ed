//! A test that dies must not leave a server behind: a test process killed
//! with SIGKILL (a harness's timeout, a mutant that hangs) runs no `Drop`,
//! so its servers must end by themselves (`support::process`'s
//! `tied_to_this_thread`, and the supervisor's own rule for its workers).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// The line the holder prints: the PIDs of everything it started.
const PIDS: &str = "holding pids";

/// Not a test of its own (ignored): the process the test below kills. It
/// starts a reactor, a proactor and a supervisor with two workers, prints
/// their PIDs, and waits to be killed.
#[test]
#[ignore = "run by a_killed_test_process_leaves_no_server_behind, which kills it"]
fn hold_servers_until_killed() {
    let reactor = Server::start(Kind::Reactor, &[]);
    let proactor = Server::start(Kind::Proactor, &[]);
    let supervisor = Server::start(Kind::Reactor, &["--workers", "2"]);
    let mut pids = vec![reactor.pid(), proactor.pid(), supervisor.pid()];
    pids.extend(supervisor.children());
    let list: Vec<String> = pids.iter().map(ToString::to_string).collect();
    println!("{PIDS} {}", list.join(" "));
    std::thread::sleep(Duration::from_secs(60));
}

/// SIGKILL to a test process holding servers (one of them a supervisor
/// with workers): every one of them is gone soon after.
#[test]
fn a_killed_test_process_leaves_no_server_behind() {
    let this = std::env::current_exe().expect("this test binary");
    let mut holder = Command::new(this)
        .args(["--ignored", "--exact", "--nocapture"])
        .arg("leftovers::hold_servers_until_killed")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the holder");
    let stdout = holder.stdout.take().expect("stdout");
    let pids: Vec<u32> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix(PIDS).map(|rest| {
                rest.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
        })
        .expect("the holder's PIDs");
    assert_eq!(pids.len(), 5, "three servers and two workers: {pids:?}");
    assert!(pids.iter().all(|&p| alive(p)), "{pids:?}");
    holder.kill().expect("SIGKILL the holder");
    holder.wait().expect("reap the holder");
    let gone = eventually(PATIENCE, || pids.iter().all(|&p| !alive(p)));
    let left: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(
        gone,
        "left running after their test process was killed: {left:?}"
    );
}
