//! `bench --processes N`: one load spread over N load-generator processes,
//! one report.
//!
//! One process holds at most its descriptor limit of connections (20,000
//! here, a hard limit), and one event loop uses one core, so past that the
//! load generator must be several processes, like the servers it measures.
//! This file is the parent. It
//!
//! 1. splits the work: each process gets its share of the connections, of
//!    an open loop's rate and of the connects in flight, and source
//!    addresses of its own;
//! 2. starts the processes by re-executing this binary with
//!    `bench --coordinated PID --json` and the share's flags, built from
//!    the parsed ones (`children.rs`: no fork in a Rust process, and one
//!    orphan rule for every child of this program);
//! 3. prints one progress line for all of them, from the `@progress` lines
//!    they send it (`progress.rs`), and with `--json-stream` one JSON line
//!    an interval for all of them, once every process has sent its
//!    `@interval` line of that interval (their points added: `add_series`);
//!    Ctrl-C is passed on to them, and their reports of what they measured
//!    are merged as usual;
//! 4. waits until every process has opened its connections (`@ready`), reads
//!    the kernel's figures, and then tells all of them to start (`go` on
//!    their stdin), so the measured windows line up, and an idle hold
//!    starts with every connection of the fleet open;
//! 5. reads each process's JSON report and merges them exactly
//!    (`report/merge.rs`, the same path as `bench merge`).
//!
//! The server's CPU is measured by the first process only: it is one
//! server, and its window is everyone's.

pub mod link;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::Instant;

use clap::ValueEnum;

use super::engine::interrupted;
use super::engine::plan::connect_window;
use super::measure::kernel::{KernelReading, KernelSide};
use super::measure::progress::{LINE_EVERY, PARENT_INTERVAL, PARENT_LINE, StreamLine};
use super::measure::series::Point;
use super::measure::server_memory::{OpenCost, resident_kib};
use super::report::merge::merge_texts;
use super::{BenchArgs, BenchError};
use crate::children::{self, ChildProcess, Heard, Spawn};

/// One load-generator process and what the parent knows of it.
#[derive(Debug)]
struct Member {
    process: ChildProcess,
    connections: usize,
    up: usize,
    is_ready: bool,
    is_closed: bool,
    report: Option<String>,
}

/// Runs the load over `processes` processes and prints one report.
/// Returns whether every reply byte was right.
///
/// # Errors
/// If a process cannot be started or fails before it reports.
pub fn run(
    args: &BenchArgs,
    addr: SocketAddr,
    processes: usize,
    sources: &[IpAddr],
) -> Result<bool, BenchError> {
    let shares = split(args.connections as usize, processes);
    let source_shares = split_sources(sources, processes);
    let before = KernelReading::now();
    let rss_before = args.server_pid.and_then(|pid| resident_kib(pid).ok());
    let (tell, heard) = mpsc::channel();
    let mut members: Vec<Member> = Vec::with_capacity(processes);
    for (index, connections) in shares.iter().copied().enumerate() {
        let words = child_arguments(
            args,
            addr,
            (index, processes),
            connections,
            &source_shares[index],
        );
        let how = Spawn {
            slot: index,
            generation: 0,
            with_stdin: true,
            own_process_group: false,
        };
        match children::spawn_self(&words, how, &tell) {
            Ok(process) => members.push(Member {
                process,
                connections,
                up: 0,
                is_ready: false,
                is_closed: false,
                report: None,
            }),
            Err(e) => {
                stop_all(&mut members);
                return Err(BenchError::Failed(format!(
                    "cannot start load-generator process {}: {e}",
                    index + 1
                )));
            }
        }
    }
    drop(tell);
    let (during, rss_open, opened_in) = coordinate(&mut members, &heard, args)?;
    let server = rss_before
        .zip(rss_open)
        .map(|(before, open)| OpenCost { before, open });
    let mut texts = Vec::with_capacity(processes);
    for (index, member) in members.iter_mut().enumerate() {
        let status = member.process.child.wait().ok();
        match member.report.take() {
            Some(line) => texts.push((format!("process {}", index + 1), line)),
            None => {
                stop_all(&mut members);
                return Err(BenchError::Failed(format!(
                    "load-generator process {} ended without a report ({})",
                    index + 1,
                    status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
                )));
            }
        }
    }
    let report = merge_texts(&texts)
        .map_err(|e| BenchError::Failed(format!("the processes' reports: {e}")))?
        .with_kernel(opened_in, Some(KernelSide { before, during }), server);
    super::deliver(args, &report)
}

/// `--json-stream` over processes: each interval's points, kept until
/// every process has sent its own, then added and printed as one line.
#[derive(Debug, Default)]
struct Stream {
    pending: Vec<(Point, usize)>,
    printed: u64,
}

impl Stream {
    /// A process's point; the interval is printed once `of` have come.
    fn heard(&mut self, point: Point, of: usize) {
        let key = (point.stage, point.second);
        let at = match self
            .pending
            .iter()
            .position(|(p, _)| (p.stage, p.second) == key)
        {
            Some(at) => {
                let (mine, count) = &mut self.pending[at];
                mine.add(&point);
                *count += 1;
                at
            }
            None => {
                self.pending.push((point, 1));
                self.pending.len() - 1
            }
        };
        if self.pending[at].1 >= of {
            let (point, _) = self.pending.remove(at);
            self.print(&point);
        }
    }

    /// The intervals some process never sent (it ended first), as they are.
    fn flush(&mut self) {
        for (point, _) in std::mem::take(&mut self.pending) {
            self.print(&point);
        }
    }

    fn print(&mut self, point: &Point) {
        let line = StreamLine {
            interval: self.printed,
            point,
        };
        self.printed += 1;
        if let Ok(json) = serde_json::to_string(&line) {
            println!("{json}");
        }
    }
}

/// Steps 3 and 4: the progress line, the start signal, and each process's
/// report. Returns the kernel's reading with every connection open, the
/// server's memory then (`--server-pid`), and how long opening took.
fn coordinate(
    members: &mut [Member],
    heard: &mpsc::Receiver<Heard>,
    args: &BenchArgs,
) -> Result<(KernelReading, Option<u64>, Option<f64>), BenchError> {
    let total = args.connections as usize;
    let mut rss_open = None;
    let mut opened_in = None;
    let started = Instant::now();
    let mut next_line = started + LINE_EVERY;
    let mut last_line = started;
    let mut messages = 0u64;
    let mut during = None;
    let mut stage = String::from("opening");
    let mut stream = Stream::default();
    let mut is_interrupt_passed_on = false;
    while members.iter().any(|m| !m.is_closed) {
        if interrupted() && !is_interrupt_passed_on {
            pass_on_interrupt(members);
            is_interrupt_passed_on = true;
        }
        match heard.recv_timeout(next_line.saturating_duration_since(Instant::now())) {
            Ok(Heard::Line {
                slot: index, line, ..
            }) => {
                let member = &mut members[index];
                if let Some(rest) = line.strip_prefix(PARENT_INTERVAL) {
                    if let Ok(point) = serde_json::from_str::<Point>(rest.trim()) {
                        stream.heard(point, members.len());
                    }
                } else if let Some(rest) = line.strip_prefix(PARENT_LINE) {
                    let mut words = rest.split_whitespace();
                    let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
                    if let (Some(up), Some(done)) = (number(), number()) {
                        member.up = up as usize;
                        messages += done;
                    }
                    if let Some(word) = rest.split_whitespace().nth(2) {
                        word.clone_into(&mut stage);
                    }
                } else if line == link::READY {
                    member.is_ready = true;
                    member.up = member.connections;
                } else if line.starts_with('{') {
                    member.report = Some(line);
                }
            }
            Ok(Heard::Gone { slot: index, .. }) => {
                let member = &mut members[index];
                member.is_closed = true;
                if !member.is_ready && member.report.is_none() {
                    // It failed before it could start (its error is on
                    // stderr, which it shares with this process).
                    stop_all(members);
                    return Err(BenchError::Failed(format!(
                        "load-generator process {} stopped before it was ready",
                        index + 1
                    )));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Once interrupted, the processes still waiting for their word get
        // it, so that they start, see the interrupt and report at once.
        let ready_or_done = |m: &Member| m.is_ready || m.is_closed || m.report.is_some();
        let all_ready = members.iter().all(|m| m.is_ready)
            || (is_interrupt_passed_on && members.iter().all(ready_or_done));
        if during.is_none() && all_ready {
            during = Some(KernelReading::now());
            rss_open = args.server_pid.and_then(|pid| resident_kib(pid).ok());
            opened_in = Some(started.elapsed().as_secs_f64());
            for member in members.iter_mut() {
                if let Some(stdin) = member.process.stdin.as_mut() {
                    // A process that is gone shows as a missing report.
                    let _ = writeln!(stdin, "{}", link::GO);
                    let _ = stdin.flush();
                }
            }
        }
        let now = Instant::now();
        if now >= next_line {
            let up: usize = members.iter().map(|m| m.up).sum();
            let rate = messages as f64 / now.duration_since(last_line).as_secs_f64();
            eprintln!(
                "[{:5.1}s] {stage:<9} {up}/{total} connections up, {rate:.0} msg/s ({} processes)",
                now.duration_since(started).as_secs_f64(),
                members.len()
            );
            messages = 0;
            last_line = now;
            next_line = now + LINE_EVERY;
        }
    }
    stream.flush();
    Ok((
        during.unwrap_or_else(KernelReading::now),
        rss_open,
        opened_in,
    ))
}

/// Ctrl-C reached this process (a terminal sends it to the whole process
/// group, but a `kill -INT` to the parent alone does not): each process is
/// told too, ends its run and sends the report of what it measured.
fn pass_on_interrupt(members: &[Member]) {
    for member in members.iter().filter(|m| !m.is_closed) {
        if let Some(pid) = rustix::process::Pid::from_raw(member.process.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
    }
}

/// Ends the processes started so far: closing their stdin ends a process
/// waiting for `go`; one that is running is stopped outright (it is our own
/// child, and its report is no longer wanted).
fn stop_all(members: &mut [Member]) {
    for member in members.iter_mut() {
        member.process.stdin = None;
        if !member.is_closed {
            let _ = member.process.child.kill();
        }
        let _ = member.process.child.wait();
    }
}

/// `total` split into `parts` shares that differ by at most one.
fn split(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Each process's source addresses: its own run of consecutive addresses
/// when there are at least as many addresses as processes (so no address
/// is shared and none carries more than its planned share), otherwise one
/// each, in turn.
fn split_sources(sources: &[IpAddr], parts: usize) -> Vec<Vec<IpAddr>> {
    if sources.is_empty() {
        return vec![Vec::new(); parts];
    }
    if sources.len() < parts {
        return (0..parts)
            .map(|i| vec![sources[i % sources.len()]])
            .collect();
    }
    let mut rest = sources;
    split(sources.len(), parts)
        .into_iter()
        .map(|n| {
            let (mine, others) = rest.split_at(n);
            rest = others;
            mine.to_vec()
        })
        .collect()
}

/// The flags of process `index`: the user's, with its share of the
/// connections and of the rate, its own source addresses, JSON out, and the
/// server's CPU measured by the first process only.
fn child_arguments(
    args: &BenchArgs,
    addr: SocketAddr,
    (index, processes): (usize, usize),
    connections: usize,
    sources: &[IpAddr],
) -> Vec<String> {
    let mut words: Vec<String> = vec![
        "bench".into(),
        "--coordinated".into(),
        std::process::id().to_string(),
        "--json".into(),
        "--processes".into(),
        "1".into(),
        "--addr".into(),
        addr.to_string(),
        "--connections".into(),
        connections.to_string(),
        "--duration".into(),
        args.duration.to_string(),
        "--warmup".into(),
        args.warmup.to_string(),
        "--size".into(),
        args.size.to_string(),
        "--pipeline".into(),
        args.pipeline.to_string(),
        "--connect-timeout".into(),
        args.connect_timeout.to_string(),
        "--reply-timeout".into(),
        args.reply_timeout.to_string(),
        "--connect-window".into(),
        connect_window(processes).to_string(),
    ];
    if let Some(expect) = args.expect.to_possible_value() {
        words.extend(["--mode".into(), expect.get_name().to_owned()]);
    }
    if let Some(at) = args.start_at {
        words.extend(["--start-at".into(), at.to_string()]);
    }
    if let Some(rate) = args.rate {
        let share = rate * connections as f64 / args.connections as f64;
        words.extend(["--rate".into(), share.to_string()]);
    }
    for (flag, is_set) in [
        ("--udp", args.udp),
        ("--churn", args.churn),
        ("--idle", args.idle),
        ("--json-stream", args.json_stream),
    ] {
        if is_set {
            words.push(flag.into());
        }
    }
    if !sources.is_empty() {
        let list: Vec<String> = sources.iter().map(ToString::to_string).collect();
        words.extend(["--source-addrs".into(), list.join(",")]);
    }
    if let (0, Some(pid)) = (index, args.server_pid) {
        words.extend(["--server-pid".into(), pid.to_string()]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_one_at_most() {
        let shares = split(1_000_003, 51);
        assert_eq!(shares.iter().sum::<usize>(), 1_000_003);
        let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
        assert!(max - min <= 1);
        assert_eq!(split(2, 3), vec![1, 1, 0]);
    }

    #[test]
    fn sources_are_not_shared_when_there_are_enough() {
        let sources: Vec<IpAddr> = (2..12).map(|i| IpAddr::from([127, 0, 0, i])).collect();
        let shares = split_sources(&sources, 4);
        assert_eq!(
            shares.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 2, 2]
        );
        let all: Vec<IpAddr> = shares.concat();
        assert_eq!(all, sources);
        let few = split_sources(&sources[..2], 3);
        assert_eq!(few[2], vec![sources[0]]);
        assert!(split_sources(&[], 2).iter().all(Vec::is_empty));
    }
}
