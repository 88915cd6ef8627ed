//! `serve --workers N`: N share-nothing reactors, one per process, on one
//! port, under a supervising process.
//!
//! Each worker is exactly the one reactor the rest of the project teaches
//! (`reactor::serve`), started by re-executing this binary with the same
//! flags plus `--reuse-port`: it binds its own listening socket and UDP
//! socket to the same address with SO_REUSEPORT, has its own open-file
//! limit and its own `--max-connections`, and shares nothing with the
//! others. The kernel spreads new connections over the listening sockets
//! by a hash of the four addresses (and each UDP flow to one socket); see
//! `docs/scaling.md` for what that does and does not promise. Re-executing
//! rather than forking keeps `unsafe` out: a forked Rust process may do
//! almost nothing safely before `exec`.
//!
//! The supervisor (this file) is not a reactor: it starts the workers,
//! reads their stdout (their `listening` and `stats` lines) on one thread
//! per worker, and acts on what they say and on signals:
//!
//! * start-up: the port is reserved first (a bound, non-listening socket,
//!   so that port 0 is chosen once and every worker binds that port), and
//!   the one `listening` line is printed once every worker has announced
//!   its own; a worker that fails to start fails the whole start, with no
//!   worker left behind;
//! * a worker that dies is logged with its status and started again (not
//!   more than once a second per slot), and the restart counted; the others
//!   serve meanwhile;
//! * SIGINT/SIGTERM is forwarded to every worker as SIGTERM; each runs its
//!   grace period as usual and prints its final stats line; the supervisor
//!   prints ONE line with the fields summed, plus `workers=N restarts=R
//!   lost=L` (`workers/summed.rs`);
//! * one signal, one grace period: each worker runs in a process group of
//!   its own. A terminal's Ctrl-C sends SIGINT to its foreground process
//!   group; were the workers in the supervisor's group, each would get
//!   that SIGINT and then the supervisor's SIGTERM, and a reactor takes a
//!   second signal to mean "stop now, without the grace period". In their
//!   own groups only the supervisor hears the terminal, and the workers
//!   hear the supervisor, once. (So Ctrl-Z stops the supervisor alone: the
//!   workers go on serving.)
//! * the books balance when a worker dies: the kernel resets every
//!   connection it held, so those leave `active` and are counted as `lost`
//!   (`accepted = active + closed_eof + closed_reset + closed_idle + lost`).
//!   The supervisor knows a worker's counts from its stats lines, which each
//!   worker prints to the supervisor every second ([`REPORT_EVERY_SECS`]),
//!   whatever `--stats-interval` says: what a worker counted in the second
//!   before it died dies with it, in every field at once, so the books
//!   still balance;
//! * no orphans: each worker asks the kernel for SIGTERM when its parent
//!   dies (PR_SET_PDEATHSIG, [`become_worker`]), so killing the supervisor,
//!   even with SIGKILL, stops the workers. The request is tied to the thread
//!   that spawned the worker, not to the process: the workers are spawned
//!   from the supervisor's main thread, which lives as long as it does.
//!
//! Each worker writes its slot into its log lines (`worker 2]`), since all
//! of them share the supervisor's stderr.

pub mod summed;

use std::io;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use rustix::process::{Pid, Signal};

use crate::children::{self, ChildProcess, Heard, Spawn};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::listening::Listening;
use crate::net;
use crate::proactor::ProactorStats;
use crate::reactor::shutdown::GRACE_PERIOD;
use crate::stats::Stats;
pub use summed::SupervisedStats;

/// How long the workers have to announce themselves.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the workers have after SIGTERM before SIGKILL: their own grace
/// period, and time to print their last line and exit.
const STOP_TIMEOUT: Duration = GRACE_PERIOD.saturating_add(Duration::from_secs(4));
/// The least time between two starts of the same slot (a worker that dies
/// at once must not make the supervisor spin).
const RESTART_PAUSE: Duration = Duration::from_secs(1);
/// How often the supervisor looks at its signal flag.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// How often each worker prints its stats line to the supervisor, whatever
/// the user's `--stats-interval`: the supervisor's view of a worker that
/// dies is at most this old.
pub const REPORT_EVERY_SECS: u64 = 1;

/// Called first thing in a worker (`--worker-of PID`): the orphan rule of
/// every child of this program ([`children::watch_parent`]).
///
/// # Errors
/// If the request fails, or the supervisor is already gone.
pub fn become_worker(supervisor: u32) -> Result<(), ServerError> {
    children::watch_parent(supervisor)
        .map_err(|e| ServerError::new("cannot stay tied to the supervisor", e))
}

/// One worker slot: the process now in it, and what it last said.
#[derive(Debug)]
struct Slot {
    child: Option<ChildProcess>,
    generation: u64,
    started: Instant,
    listening: bool,
    /// Its latest stats line (the final one, once it has exited cleanly).
    last: Stats,
}

/// The supervisor's state.
#[derive(Debug)]
struct Supervisor {
    worker_args: Vec<String>,
    slots: Vec<Slot>,
    tx: Sender<Heard>,
    rx: Receiver<Heard>,
    /// Counts of workers that died before their final line (their `active`
    /// moved to `lost`).
    departed: Stats,
    restarts: u64,
    /// Connections held by workers when they died.
    lost: u64,
}

/// Runs `count` workers serving `config` until SIGINT/SIGTERM; prints the
/// `listening` line once and the summed stats line at the end. `command` is
/// how a worker is started: the subcommand (`serve`, `proactor`) and its
/// flags, built from the parsed command line (`ServerArgs::worker_flags`);
/// the supervisor adds the flags it decides.
///
/// # Errors
/// A [`ServerError`] if the address cannot be bound (the `error:` line, no
/// worker started) or a worker fails to start (every other one stopped).
pub fn supervise(
    config: &ServerConfig,
    count: usize,
    command: &[String],
) -> Result<SupervisedStats, ServerError> {
    // Reserve the ports (and learn them, for port 0) before any worker
    // starts; the reservations close once every worker holds the ports.
    let tcp = config
        .tcp
        .addr()
        .map(|a| net::bound_tcp_socket(a, true))
        .transpose()?;
    let tcp_addr = local(tcp.as_ref().map(|s| s.local_addr()))?;
    let udp = config
        .udp
        .addr()
        .map(|a| net::bind_udp(a, net::SocketCalls::Blocking, true))
        .transpose()?;
    let udp_addr = udp
        .as_ref()
        .map(std::net::UdpSocket::local_addr)
        .transpose()
        .map_err(|e| ServerError::new("cannot read the UDP address", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| ServerError::new("cannot install signal handlers", e))?;
    }
    let (tx, rx) = mpsc::channel();
    let mut supervisor = Supervisor {
        worker_args: worker_arguments(command, tcp_addr, udp_addr, std::process::id()),
        slots: Vec::with_capacity(count),
        tx,
        rx,
        departed: Stats::default(),
        restarts: 0,
        lost: 0,
    };
    if let Err(e) = supervisor.start_all(count, &stop) {
        supervisor.stop_all();
        return Err(e);
    }
    drop((tcp, udp));
    Listening {
        tcp: tcp_addr,
        udp: udp_addr,
    }
    .announce()
    .map_err(|e| ServerError::new("cannot announce the listening addresses", e))?;
    info!("{count} workers serving");
    supervisor.serve(&stop, config.stats_interval);
    let summed = supervisor.summed();
    if let Err(e) = summed.print_line() {
        warn!("cannot print the stats line: {e}");
    }
    Ok(summed)
}

fn local(addr: Option<io::Result<socket2::SockAddr>>) -> Result<Option<SocketAddr>, ServerError> {
    addr.transpose()
        .map_err(|e| ServerError::new("cannot read the TCP address", e))?
        .map(|a| {
            a.as_socket().ok_or_else(|| {
                ServerError::new("no TCP address", io::Error::other("not an IP address"))
            })
        })
        .transpose()
}

impl Supervisor {
    /// Starts every worker and waits for each one's `listening` line.
    fn start_all(&mut self, count: usize, stop: &AtomicBool) -> Result<(), ServerError> {
        for slot in 0..count {
            let child = self
                .spawn(slot, 0)
                .map_err(|e| ServerError::new("cannot start a worker", e))?;
            self.slots.push(Slot {
                child: Some(child),
                generation: 0,
                started: Instant::now(),
                listening: false,
                last: Stats::default(),
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.slots.iter().all(|s| s.listening) {
            if stop.load(Ordering::Relaxed) {
                return Err(ServerError::new(
                    "stopped during start-up",
                    io::Error::from(io::ErrorKind::Interrupted),
                ));
            }
            let heard = match self.rx.recv_timeout(SIGNAL_CHECK_INTERVAL) {
                Ok(heard) => heard,
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => continue,
                Err(_) => {
                    return Err(ServerError::new(
                        "workers did not start",
                        io::Error::from(io::ErrorKind::TimedOut),
                    ));
                }
            };
            match heard {
                Heard::Line { slot, line, .. } if announces(&line) => {
                    self.slots[slot].listening = true;
                }
                Heard::Line { .. } => {}
                Heard::Gone { slot, .. } => {
                    let status = self.reap(slot);
                    return Err(ServerError::new(
                        format!("worker {slot} exited during start-up"),
                        io::Error::other(describe(status)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Serves until a signal: restarts workers that die, prints the summed
    /// line every `interval`, then stops every worker and collects its
    /// final line.
    fn serve(&mut self, stop: &AtomicBool, interval: Option<Duration>) {
        let mut next_line = interval.map(|i| Instant::now() + i);
        let mut pending_restarts: Vec<usize> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match self.next_exit() {
                Ok(Some((slot, status))) => {
                    warn!(
                        "worker {slot} exited ({}); starting it again",
                        describe(status)
                    );
                    self.depart(slot);
                    self.restarts += 1;
                    pending_restarts.push(slot);
                }
                Ok(None) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            pending_restarts.retain(|&slot| !self.restart_if_due(slot, now));
            if let (Some(at), Some(every)) = (next_line, interval) {
                if now >= at {
                    next_line = Some(at + every);
                    if let Err(e) = self.summed().print_line() {
                        warn!("cannot print the stats line: {e}");
                    }
                }
            }
        }
        info!("stopping {} workers", self.slots.len());
        self.stop_all();
    }

    /// Waits (at most [`SIGNAL_CHECK_INTERVAL`]) for what a worker says: a
    /// line is heard; the end of the current worker of a slot is reaped and
    /// returned, with its exit status. A report from a worker already
    /// replaced (an older generation) is dropped, here, for both the lines
    /// and the exits.
    ///
    /// # Errors
    /// `Timeout` when nothing came; `Disconnected` when no reader is left.
    fn next_exit(&mut self) -> Result<Option<(usize, Option<ExitStatus>)>, RecvTimeoutError> {
        match self.rx.recv_timeout(SIGNAL_CHECK_INTERVAL)? {
            Heard::Line {
                slot,
                generation,
                line,
            } => {
                self.hear(slot, generation, &line);
                Ok(None)
            }
            Heard::Gone { slot, generation }
                if from_current(generation, self.slots[slot].generation) =>
            {
                Ok(Some((slot, self.reap(slot))))
            }
            Heard::Gone { .. } => Ok(None),
        }
    }

    /// A line from a worker: its stats lines are kept (the last one counts).
    fn hear(&mut self, slot: usize, generation: u64, line: &str) {
        if !from_current(generation, self.slots[slot].generation) {
            return;
        }
        if line.starts_with("stats") {
            // A reactor's line, or a proactor's (the same fields, then the
            // ring's own two, which the summed line leaves out).
            let read = line.parse::<Stats>().or_else(|e| {
                line.parse::<ProactorStats>()
                    .map(|counted| counted.stats)
                    .map_err(|_| e)
            });
            match read {
                Ok(stats) => self.slots[slot].last = stats,
                Err(e) => warn!("worker {slot}: {e}"),
            }
        }
    }

    /// The worker in `slot` died: the connections it held were reset by the
    /// kernel as it went, so they leave `active` and are counted as lost;
    /// the rest of its counts join those of the departed.
    fn depart(&mut self, slot: usize) {
        let mut last = std::mem::take(&mut self.slots[slot].last);
        if last.active > 0 {
            warn!(
                "worker {slot} held {} connections when it died; the kernel reset them",
                last.active
            );
        }
        self.lost += last.active;
        last.active = 0;
        self.departed.add(&last);
    }

    /// Starts a new worker in `slot` if its pause is over; whether it did.
    fn restart_if_due(&mut self, slot: usize, now: Instant) -> bool {
        if now < self.slots[slot].started + RESTART_PAUSE {
            return false;
        }
        let generation = self.slots[slot].generation + 1;
        match self.spawn(slot, generation) {
            Ok(child) => {
                let s = &mut self.slots[slot];
                s.child = Some(child);
                s.generation = generation;
                s.started = now;
                s.last = Stats::default();
                true
            }
            Err(e) => {
                error!("cannot start worker {slot} again: {e}");
                self.slots[slot].started = now;
                false
            }
        }
    }

    /// SIGTERM to every worker, then their final lines (SIGKILL to any
    /// still running after [`STOP_TIMEOUT`]).
    fn stop_all(&mut self) {
        for slot in &self.slots {
            if let Some(pid) = slot
                .child
                .as_ref()
                .and_then(|c| Pid::from_raw(c.child.id() as i32))
            {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.slots.iter().any(|s| s.child.is_some()) {
            match self.next_exit() {
                Ok(Some((slot, status))) => {
                    debug!("worker {slot} stopped ({})", describe(status));
                    info!("worker {slot}: {}", self.slots[slot].last);
                }
                Ok(None) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= deadline {
                for (n, slot) in self.slots.iter_mut().enumerate() {
                    if let Some(mut worker) = slot.child.take() {
                        warn!("worker {n} did not stop within {STOP_TIMEOUT:?}; killing it");
                        let _ = worker.child.kill();
                        let _ = worker.child.wait();
                    }
                }
            }
        }
    }

    /// Waits for the worker in `slot` to exit and returns its status.
    fn reap(&mut self, slot: usize) -> Option<ExitStatus> {
        self.slots[slot]
            .child
            .take()
            .and_then(|mut c| c.child.wait().ok())
    }

    /// Every worker's latest counts, and those of workers that died, added.
    fn summed(&self) -> SupervisedStats {
        let mut stats = self.departed;
        for slot in &self.slots {
            stats.add(&slot.last);
        }
        SupervisedStats {
            stats,
            workers: self.slots.len() as u64,
            restarts: self.restarts,
            lost: self.lost,
        }
    }

    /// Starts worker `slot` (its `generation`th start), in a process group
    /// of its own (see the module doc), its stdout read by a thread that
    /// passes its lines on.
    fn spawn(&self, slot: usize, generation: u64) -> io::Result<ChildProcess> {
        let mut args = self.worker_args.clone();
        args.extend(["--worker-slot".to_owned(), slot.to_string()]);
        let how = Spawn {
            slot,
            generation,
            with_stdin: false,
            own_process_group: true,
        };
        let worker = children::spawn_self(&args, how, &self.tx)?;
        debug!("worker {slot} started (pid {})", worker.child.id());
        Ok(worker)
    }
}

/// An exit status in words.
/// Whether a worker's line is its announcement: the `listening` line, the
/// first it prints once its sockets are bound.
fn announces(line: &str) -> bool {
    line.starts_with("listening")
}

/// Whether a report (a line, or the end) of a slot's worker of `generation`
/// comes from the slot's current worker, of `current`, rather than from
/// one already replaced. (Today a worker's lines and its end come through
/// one pipe, its end last, and a slot restarts only after that end, so no
/// older report arrives late; the rule holds for a change that breaks that
/// order.)
fn from_current(generation: u64, current: u64) -> bool {
    generation == current
}

fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
}

/// A worker's command line: `command` (the subcommand and the flags built
/// from the parsed command line), then the flags the supervisor decides:
/// the resolved addresses, the report interval, `--reuse-port` and
/// `--worker-of` this process (`--worker-slot` is added per worker).
fn worker_arguments(
    command: &[String],
    tcp: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    supervisor: u32,
) -> Vec<String> {
    let endpoint = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let mut out = command.to_vec();
    out.extend([
        format!("--tcp={}", endpoint(tcp)),
        format!("--udp={}", endpoint(udp)),
        format!("--stats-interval={REPORT_EVERY_SECS}"),
        "--reuse-port".to_owned(),
        format!("--worker-of={supervisor}"),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn only_the_listening_line_announces_a_worker() {
        assert!(announces("listening tcp=127.0.0.1:4000 udp=off"));
        for other in [
            "stats accepted=0 rejected=0 active=0",
            "error: cannot bind 127.0.0.1:4000",
            "",
        ] {
            assert!(!announces(other), "{other:?} taken for an announcement");
        }
    }

    #[test]
    fn a_report_of_a_replaced_worker_is_told_from_the_current_ones() {
        assert!(from_current(3, 3));
        assert!(
            !from_current(2, 3),
            "a report of the worker replaced taken for the current one's"
        );
        assert!(!from_current(0, 3));
    }

    #[test]
    fn workers_get_the_command_then_what_the_supervisor_decides() {
        let command = words("serve --mode=upper --greeting=--tcp --max-pending=100");
        let tcp: SocketAddr = "127.0.0.1:4000".parse().expect("address");
        assert_eq!(
            worker_arguments(&command, Some(tcp), None, 77),
            words(
                "serve --mode=upper --greeting=--tcp --max-pending=100 --tcp=127.0.0.1:4000 --udp=off --stats-interval=1 --reuse-port --worker-of=77"
            )
        );
    }
}
