//! The hostile peers' loop, on their own thread: the reactor's four
//! phases once more.
//!
//! 1. **before sleep** (`PeerLoop::before_sleep`): how long the poll may
//!    sleep: until the earliest peer timer or memory sample, or, with
//!    neither, until an event (the stop is an event too: `Chaos::finish`
//!    wakes the poll);
//! 2. **sleep** (`engine::sleep`, every loop's): `Poll::poll`, then the
//!    clock is read once for the batch;
//! 3. **dispatch** (`PeerLoop::dispatch`): a readiness event steps its
//!    peer;
//! 4. **timers** (`PeerLoop::timers`): the peers whose timer is due step
//!    too, and the server's memory is sampled when a sample is due.
//!
//! The timers are not swept like the reactor's idle deadlines: those are
//! one timeout for every connection, seconds long, where a walk a quarter
//! of a second late costs nothing. A peer's pauses are its own and as short
//! as 5 ms, jittered so that the peers do not move in step (`jitter.rs`),
//! so they are kept in a heap ([`Timers`]) and each fires on time, with no
//! walk over the peers at all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Events, Poll, Token};

use super::Stage;
use super::datagram_peer::DatagramPeer;
use super::kind::Kind;
use super::tally::Tally;
use super::tcp_peer::TcpPeer;
use crate::bench::engine::sleep;
use crate::bench::measure::server_memory::PeakWatch;

/// The token of the waker that says the run is over.
pub(crate) const STOP: Token = Token(usize::MAX);
/// Events taken from the kernel per poll.
const EVENTS_CAPACITY: usize = 1024;

/// A peer of either transport.
#[derive(Debug)]
pub(crate) enum Peer {
    /// A hostile TCP peer.
    Tcp(TcpPeer),
    /// A hostile UDP peer.
    Datagram(DatagramPeer),
}

impl Peer {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Peer::Tcp(p) => p.deadline(),
            Peer::Datagram(p) => p.deadline(),
        }
    }

    fn step(&mut self, now: Instant, stage: &mut Stage<'_>, tally: &mut Tally) {
        match self {
            Peer::Tcp(p) => p.step(now, stage, tally),
            Peer::Datagram(p) => p.step(now, stage, tally),
        }
    }
}

/// The peers' timers, earliest first. A peer has at most one deadline;
/// when it changes, the new one is pushed and the old entry stays behind,
/// to be recognised as stale when it comes out (it no longer matches the
/// peer's deadline) rather than searched for and removed.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    /// Peer `key` waits until `at`.
    fn push(&mut self, at: Instant, key: usize) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry's time (maybe stale: a wake-up with nothing due).
    fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize)> {
        let Reverse((at, key)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some((at, key))
    }
}

/// The loop and what it keeps.
#[derive(Debug)]
pub(crate) struct PeerLoop<'a> {
    pub(crate) poll: Poll,
    pub(crate) stage: Stage<'a>,
    /// Each peer with its kind, its key its place here (and its token).
    pub(crate) peers: Vec<(Kind, Peer)>,
    /// Per kind, in [`Kind::ALL`] order.
    pub(crate) tallies: [Tally; Kind::ALL.len()],
    pub(crate) timers: Timers,
    /// `--server-pid`: the server's peak memory, sampled.
    pub(crate) memory: Option<PeakWatch>,
    /// Set by `Chaos::finish`, which then wakes the poll.
    pub(crate) stop: &'a AtomicBool,
}

impl PeerLoop<'_> {
    /// Runs until told to stop; then every peer leaves.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        for key in 0..self.peers.len() {
            if let Some(at) = self.peers[key].1.deadline() {
                self.timers.push(at, key);
            }
        }
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut due = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let timeout = self.before_sleep(Instant::now());
            let now = sleep(&mut self.poll, &mut events, timeout)?;
            for event in events.iter() {
                self.dispatch(event, now);
            }
            self.timers(now, &mut due);
        }
        for (kind, peer) in &mut self.peers {
            if let Peer::Tcp(p) = peer {
                p.leave(&mut self.stage, &mut self.tallies[kind.index()]);
            }
        }
        Ok(())
    }

    /// Phase 1: until the earliest timer or memory sample (`None`: until
    /// an event).
    fn before_sleep(&self, now: Instant) -> Option<Duration> {
        let sample = self.memory.as_ref().map(PeakWatch::next_sample);
        [self.timers.next(), sample]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Phase 3: a readiness event steps its peer (the stop's wakes the
    /// loop, whose condition then ends it).
    fn dispatch(&mut self, event: &Event, now: Instant) {
        if event.token() != STOP {
            self.step(event.token().0, now);
        }
    }

    /// Phase 4: the peers whose timer is due step, each once, and the
    /// memory is sampled. `due` is a reused list: the keys are taken first,
    /// so that a peer that sets a timer already due runs on the next turn,
    /// after the poll, not again in this one.
    fn timers(&mut self, now: Instant, due: &mut Vec<usize>) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            if self.peers[key].1.deadline() == Some(at) {
                due.push(key);
            }
        }
        for key in due.drain(..) {
            self.step(key, now);
        }
        if let Some(memory) = self.memory.as_mut() {
            memory.sample(now);
        }
    }

    /// Steps peer `key`, and notes its timer if the step changed it.
    fn step(&mut self, key: usize, now: Instant) {
        let Some((kind, peer)) = self.peers.get_mut(key) else {
            return;
        };
        let before = peer.deadline();
        peer.step(now, &mut self.stage, &mut self.tallies[kind.index()]);
        match peer.deadline() {
            Some(at) if Some(at) != before || at <= now => self.timers.push(at, key),
            _ => {}
        }
    }
}
