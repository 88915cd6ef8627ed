//! Opening the TCP engine's connections: connects started at most the
//! plan's window at a time, each timed from its own start, their timeouts
//! found by a sweep, and each failure counted with its cause. (Methods of
//! the `Driver`, apart from its loop.)

use std::io;
use std::time::Instant;

use mio::{Interest, Token};

use super::Driver;
use super::conn::{self, Conn, ConnState};
use crate::bench::engine::period::Period;
use crate::bench::measure::failures::Cause;

impl Driver {
    /// Starts connects until the window is full or all are started.
    pub(super) fn open_more(&mut self, now: Instant) {
        if self.period == Period::Done {
            return;
        }
        let mut is_first = true;
        while self.to_open > 0 && self.connecting < self.plan.connect_window {
            self.to_open -= 1;
            // Each connect is timed from its own start: a thousand started
            // in one turn take milliseconds to start, and the last must not
            // be charged for the first's.
            let started = if is_first { now } else { Instant::now() };
            is_first = false;
            match self.connect(started) {
                Ok(()) => self.connecting += 1,
                Err(e) => self.connect_failed(Cause::of(&e)),
            }
        }
    }

    pub(super) fn connect(&mut self, now: Instant) -> io::Result<()> {
        // The source addresses in turn, if there are any.
        let sources = &self.plan.sources;
        let source = (!sources.is_empty()).then(|| {
            let source = sources[self.next_source % sources.len()];
            self.next_source += 1;
            source
        });
        let mut stream = conn::start_connect(self.plan.addr, source)?;
        let entry = self.conns.vacant_entry();
        self.poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.next_seed += 1;
        entry.insert(Conn::connecting(stream, self.next_seed * 7, now));
        // A sweep must come by its deadline (`wake_at` keeps the earliest).
        self.connect_sweeper
            .wake_at(now + self.plan.connect_timeout);
        Ok(())
    }

    pub(super) fn connect_failed(&mut self, cause: Cause) {
        self.outcome.failed += 1;
        self.outcome.failures.count(cause);
        if self.plan.role.replaces_connections() && self.is_running() {
            self.to_open += 1;
        }
    }

    /// A connect that did not complete: its slot goes, and it counts as
    /// failed, for `cause`.
    pub(super) fn abandon_connect(&mut self, key: usize, cause: Cause) {
        self.conns.remove(key);
        self.connecting -= 1;
        self.connect_failed(cause);
    }

    /// The sweep of connects: those past their timeout fail, and the
    /// earliest deadline of the others is noted for the next sweep. A
    /// connect only ever finishes, so the noted deadline is a lower bound
    /// (a sweep may find nothing to do, but none is missed), and sweeps are
    /// spaced like the reactor's: a walk over 20,000 connections on every
    /// wake-up of a connection storm would cost more than the storm.
    pub(super) fn sweep_connects(&mut self, now: Instant) {
        let timeout = self.plan.connect_timeout;
        let mut expired = Vec::new();
        let mut earliest: Option<Instant> = None;
        for (key, conn) in &self.conns {
            if conn.state != ConnState::Connecting {
                continue;
            }
            let deadline = conn.connect_started + timeout;
            if now - conn.connect_started > timeout {
                expired.push(key);
            } else {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        for key in expired {
            self.abandon_connect(key, Cause::TimedOut);
        }
        self.connect_sweeper.swept(now, earliest);
    }

    /// Every connect so far failed, and none is left to try: every one of
    /// the connections (churn: as many attempts as slots) has failed.
    pub(super) fn nothing_connects(&self) -> bool {
        self.outcome.established == 0
            && self.connecting == 0
            && self.outcome.failed >= self.plan.connections as u64
    }
}
