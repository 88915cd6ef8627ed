//! `bench --chaos M`: hostile peers beside the verified clients.
//!
//! The verified ("honest") clients run exactly as without chaos, on the
//! driver's loop; the M hostile peers run on a loop of their own, in a
//! second thread, so that their scripts (pauses, resets, one-byte writes)
//! never touch the driver's code or its measurements. Both loops play
//! against the same server at the same time; the report keeps their figures
//! apart: the honest clients' throughput, latency, errors and mismatches
//! (which must stay 0), and for each kind of hostile peer what it did and
//! what the server did to it. With `--server-pid`, the server's resident
//! memory before, at its peak and after the peers left.
//!
//! This file starts and stops the peers' thread and says what they share
//! (`Stage`). The rest, one job a file:
//!
//! * [`kind`]: the kinds of hostile peer and the mix of them;
//! * `chaos/peer_loop.rs`: their loop, in the reactor's four phases, with
//!   the peers' timers in a heap;
//! * `chaos/tcp_peer.rs` and its state machine `tcp_peer/state.rs`: a TCP
//!   peer's scripts, and where it is between one connection and the next;
//! * `chaos/datagram_peer.rs`: a UDP peer's;
//! * `chaos/jitter.rs`: their pauses, jittered so that they do not move
//!   in step;
//! * [`tally`]: what each kind met, as the report prints it.

pub(crate) mod datagram_peer;
pub(crate) mod jitter;
pub mod kind;
pub(crate) mod peer_loop;
pub mod tally;
pub(crate) mod tcp_peer;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Registry, Token, Waker};

use super::BenchArgs;
use super::engine::plan::Plan;
use super::measure::server_memory::{PeakWatch, RssSpan, SETTLE};
use super::payload::{Expect, Pattern};
use super::procfs;
use datagram_peer::{DatagramPeer, HUGE_DATAGRAM};
use kind::{Kind, Mix};
use peer_loop::{Peer, PeerLoop, Timers};
use tally::Tally;
use tcp_peer::TcpPeer;

/// Puts this thread (the hostile peers') in the `SCHED_IDLE` class: it runs
/// only on CPU time no ordinary thread wants. Only beside an open loop:
/// honest clients in a closed loop at saturation never wait, so there the
/// peers would never run; they keep the ordinary class and share the core,
/// and their share shows as the honest clients' lower throughput and, the
/// messages in flight being fixed, as their higher latency (Little's law).
///
/// The hostile peers share the load generator's core with the honest
/// clients; on a real network they would be other machines. At equal
/// priority a burst of theirs (a reset cycle, a 64-byte message in 64
/// writes) holds the core while an honest reply waits in the load
/// generator's socket, and that wait is counted as the server's latency,
/// though the server answered at once. A lower nice value is not enough:
/// Linux's scheduler (EEVDF) lets the running thread finish its slice (up
/// to a few milliseconds) before a waking one of any weight takes the core,
/// and a few milliseconds is the whole p99. A `SCHED_IDLE` thread is
/// preempted at once by any ordinary thread that wakes (`kernel/sched/
/// fair.c`: "idle tasks are by definition preempted by non-idle tasks"),
/// yet still runs whenever the honest loop waits for the server, which in
/// an open loop at a rate the server sustains is most of the time: the
/// peers still reach the server by the thousand (the report counts their
/// cycles), but no longer stand in the honest clients' queue. A failure to
/// change the class is not fatal; the run goes on at equal priority.
fn yield_to_the_honest_clients() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        log::warn!("the hostile peers run at the honest clients' priority: {e:?}");
    }
}

/// A peer that stopped short (its write budget spent, or its socket full
/// for a paced byte or datagram) goes on this much later: soon, but not
/// before the other peers and the memory sampler have had the thread.
pub(crate) const RESUME_PAUSE: Duration = Duration::from_millis(1);

/// What the hostile peers are asked to do.
#[derive(Debug, Clone)]
pub(crate) struct ChaosPlan {
    /// The server (TCP, or UDP for the datagram kinds).
    pub addr: SocketAddr,
    /// How many hostile peers.
    pub peers: usize,
    /// Which kinds, in what shares.
    pub mix: Mix,
    /// Bytes per sliced message.
    pub size: usize,
    /// What the server does to the bytes.
    pub expect: Expect,
    /// The server's process, whose peak resident memory is sampled.
    pub server_pid: Option<u32>,
    /// The honest clients run an open loop (`--rate`): they wait between
    /// their sends, and the peers' thread yields the core to them (it runs
    /// in the `SCHED_IDLE` class: see `yield_to_the_honest_clients`).
    pub beside_open_loop: bool,
}

impl ChaosPlan {
    /// The hostile peers `--chaos` and `--chaos-mix` ask for, if any, beside
    /// the honest clients of `plan`.
    ///
    /// # Errors
    /// A mix that does not parse, or names a kind of the other transport.
    pub(crate) fn from_args(args: &BenchArgs, plan: &Plan) -> Result<Option<ChaosPlan>, String> {
        let Some(peers) = args.chaos else {
            return Ok(None);
        };
        let mix = match &args.chaos_mix {
            Some(text) => {
                Mix::parse(text, args.udp).map_err(|e| format!("invalid --chaos-mix: {e}"))?
            }
            None => Mix::every_kind(args.udp),
        };
        Ok(Some(ChaosPlan {
            addr: plan.addr,
            peers: peers as usize,
            mix,
            size: plan.size,
            expect: plan.expect,
            server_pid: plan.server_pid,
            beside_open_loop: args.rate.is_some(),
        }))
    }
}

/// Runs `honest`, the verified clients' engine, with the hostile peers of
/// `plan` beside it, if there are any: with `--server-pid` the server's
/// memory is read first, then the peers start on their thread, `honest`
/// runs, the peers stop, and once the server has had [`SETTLE`] to give
/// back what they cost it, its memory is read again.
///
/// # Errors
/// If the peers cannot start or their loop failed, or `honest` failed.
pub(crate) fn alongside<T>(
    plan: Option<ChaosPlan>,
    honest: impl FnOnce() -> io::Result<T>,
) -> io::Result<(T, Option<ChaosOutcome>, Option<RssSpan>)> {
    let Some(plan) = plan else {
        return Ok((honest()?, None, None));
    };
    let server_pid = plan.server_pid;
    let before = server_pid.and_then(|pid| procfs::resident_kib(pid).ok());
    let chaos = Chaos::start(plan)?;
    let honest = honest()?;
    let chaos = chaos.finish()?;
    let memory = match (server_pid, before) {
        (Some(pid), Some(before)) => {
            // What the server keeps once every peer has gone.
            std::thread::sleep(SETTLE);
            procfs::resident_kib(pid).ok().map(|after| RssSpan {
                before,
                peak: chaos.peak_rss_kib.unwrap_or(0).max(before).max(after),
                after,
            })
        }
        _ => None,
    };
    Ok((honest, Some(chaos), memory))
}

/// What the hostile peers did, and the server's peak memory meanwhile.
#[derive(Debug, Clone)]
pub(crate) struct ChaosOutcome {
    /// Per kind, in [`Kind::ALL`] order, the kinds that played.
    pub kinds: Vec<(Kind, Tally)>,
    /// The server's largest resident memory sample, in KiB.
    pub peak_rss_kib: Option<u64>,
}

impl ChaosOutcome {
    /// Wrong or undelivered reply bytes, over every kind.
    pub(crate) fn mismatches(&self) -> u64 {
        self.kinds.iter().map(|(_, t)| t.mismatches).sum()
    }
}

/// The text of the UTF-8 kind, and what the server owes for it.
#[derive(Debug, Clone)]
pub(crate) struct SplitText {
    /// Two-, three- and four-byte characters, a character whose uppercase
    /// is longer (`ß` → `SS`, `ﬃ` → `FFI`), a lone `FF`, a broken leader
    /// (`C3` then ASCII) and an encoded surrogate (invalid in UTF-8).
    pub request: Vec<u8>,
    /// The same after the server's transform.
    pub reply: Vec<u8>,
}

impl SplitText {
    /// The text and its reply for a server in mode `expect`; the uppercase
    /// reply is written out by hand (checked against Python's
    /// `decode('utf-8', 'surrogateescape').upper()`), not computed with the
    /// server's own transform.
    pub(crate) fn new(expect: Expect) -> SplitText {
        let request = b"stra\xc3\x9fe \xc3\xa9 \xef\xac\x83 \xf0\x9f\x98\x80 \xff\xc3a\xed\xa0\x80z \xc4\xb1\n";
        let upper = b"STRASSE \xc3\x89 FFI \xf0\x9f\x98\x80 \xff\xc3A\xed\xa0\x80Z I\n";
        SplitText {
            request: request.to_vec(),
            reply: match expect {
                Expect::Echo => request.to_vec(),
                Expect::Upper => upper.to_vec(),
            },
        }
    }
}

/// What every peer's step needs: the server, the bytes to send and expect,
/// and one read buffer for all.
#[derive(Debug)]
pub(crate) struct Stage<'a> {
    /// Where new connections and sockets are registered.
    pub registry: &'a Registry,
    /// The server.
    pub addr: SocketAddr,
    /// The verified clients' byte pattern.
    pub pattern: &'a Pattern,
    /// The UTF-8 kind's text.
    pub text: &'a SplitText,
    /// Bytes per sliced message.
    pub size: usize,
    /// Where replies are read to.
    pub buf: &'a mut [u8],
}

/// The hostile peers, running.
#[derive(Debug)]
pub(crate) struct Chaos {
    stop: Arc<AtomicBool>,
    /// Wakes the peers' poll to say the run is over.
    waker: Arc<Waker>,
    thread: JoinHandle<io::Result<ChaosOutcome>>,
}

impl Chaos {
    /// Sets the peers loose on their own thread.
    ///
    /// # Errors
    /// If the poll or the thread cannot be started.
    pub(crate) fn start(plan: ChaosPlan) -> io::Result<Chaos> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), peer_loop::STOP)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("chaos".into())
            .spawn(move || run(&plan, poll, &flag))?;
        Ok(Chaos {
            stop,
            waker,
            thread,
        })
    }

    /// Ends the run: every peer closes its connection, and the tallies come
    /// back.
    ///
    /// # Errors
    /// If the peers' loop failed (its poll), or the thread panicked.
    pub(crate) fn finish(self) -> io::Result<ChaosOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake()?;
        self.thread
            .join()
            .map_err(|_| io::Error::other("the chaos thread panicked"))?
    }
}

/// The peers' thread: it sets the peers up, runs their loop
/// (`chaos/peer_loop.rs`) until told to stop, and hands back their tallies.
fn run(plan: &ChaosPlan, poll: Poll, stop: &AtomicBool) -> io::Result<ChaosOutcome> {
    if plan.beside_open_loop {
        yield_to_the_honest_clients();
    }
    let pattern = Pattern::new(plan.expect, HUGE_DATAGRAM.max(plan.size));
    let text = SplitText::new(plan.expect);
    let mut buf = vec![0u8; 64 * 1024];
    let mut tallies = [Tally::default(); Kind::ALL.len()];
    // The peers register new connections while the loop polls: a second
    // handle on the same epoll instance.
    let registry = poll.registry().try_clone()?;
    let stage = Stage {
        registry: &registry,
        addr: plan.addr,
        pattern: &pattern,
        text: &text,
        size: plan.size,
        buf: &mut buf,
    };
    let split = plan.mix.split(plan.peers);
    let mut peers: Vec<(Kind, Peer)> = Vec::with_capacity(plan.peers);
    for &(kind, count) in &split {
        tallies[kind.index()].peers += count as u64;
        for _ in 0..count {
            let token = Token(peers.len());
            let peer = if kind.is_datagram() {
                Peer::Datagram(DatagramPeer::open(
                    kind,
                    token,
                    &stage,
                    &mut tallies[kind.index()],
                )?)
            } else {
                // Seeds far apart, so no two peers send the same bytes.
                Peer::Tcp(TcpPeer::new(kind, token, token.0 as u64 * 1_000_003))
            };
            peers.push((kind, peer));
        }
    }
    let mut peer_loop = PeerLoop {
        poll,
        stage,
        peers,
        tallies,
        timers: Timers::default(),
        memory: plan.server_pid.map(PeakWatch::new),
        stop,
    };
    peer_loop.run()?;
    Ok(ChaosOutcome {
        kinds: split
            .iter()
            .filter(|&&(_, count)| count > 0)
            .map(|&(kind, _)| (kind, peer_loop.tallies[kind.index()]))
            .collect(),
        peak_rss_kib: peer_loop.memory.map(|m| m.peak()),
    })
}
