//! Accepting connections: accept until the backlog is empty, turn away
//! what is past the limit, and survive running out of descriptors.
//!
//! # Running out of descriptors, and other accept errors
//! When `accept` fails with `EMFILE` (this process is at its open-file limit)
//! or `ENFILE` (the whole system is), or for lack of kernel memory (`ENOBUFS`,
//! `ENOMEM`), the pending connection stays in the kernel's backlog. Retrying
//! at once would fail again, and would spin the CPU at 100%. Stopping and
//! waiting for the listener's next event is no better: epoll is
//! edge-triggered, and no new event comes for connections already queued
//! (only a new arrival raises one). So the acceptor *pauses*: the reactor
//! calls [`Acceptor::accept_all`] again as soon as a connection closes (a
//! descriptor is free), and also once per [`RETRY_WHILE_PAUSED`] in case the
//! descriptors were freed elsewhere; a new arrival's event calls it too.
//! Queued clients wait in the backlog meanwhile instead of being refused.
//!
//! Two errors concern one call only, and `accept_all` goes straight on:
//! `ECONNABORTED` (a queued connection was reset before we took it) and
//! `EINTR`. Every other error pauses the same way, logged as "accept
//! failed" rather than "out of file descriptors": Linux also reports, as
//! `accept`'s error, a network error already pending on the new connection
//! (`EPROTO`, `ENETDOWN`, `EHOSTUNREACH`, ...), and an error this code does
//! not know is safer met with a pause of a second at most than with a loop
//! that might spin on it.

use std::io;
use std::time::{Duration, Instant};

use log::{debug, trace, warn};
use mio::net::TcpListener;
use mio::{Interest, Registry};
use slab::Slab;

use super::connection::Connection;
use super::deadlines::{Clock, Sweeper};
use super::token::{LISTENER, connection_token};
use crate::fd_limit;
use crate::service::Service;
use crate::source_limit::SourceLimit;
use crate::stats::Stats;

/// How often a paused acceptor retries without being prompted.
pub const RETRY_WHILE_PAUSED: Duration = Duration::from_secs(1);

/// The TCP listener and the connection limit.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    max_connections: usize,
    /// `--max-per-source`: connections held per source address.
    per_source: Option<SourceLimit>,
    /// Set while `accept` is failing for lack of descriptors.
    paused_since: Option<Instant>,
}

/// What accepting needs from the reactor.
#[derive(Debug)]
pub struct AcceptCtx<'a> {
    /// Where connections are registered.
    pub registry: &'a Registry,
    /// The connections.
    pub conns: &'a mut Slab<Connection>,
    /// The service, for a fresh per-connection transform.
    pub service: &'a Service,
    /// The counters.
    pub stats: &'a mut Stats,
    /// The idle-deadline timer.
    pub sweeper: &'a mut Sweeper,
    /// The idle timeout, if any.
    pub idle_timeout: Option<Duration>,
    /// The connections' clock, which turns `now` into a new connection's
    /// first [`Tick`](super::deadlines::Tick).
    pub clock: Clock,
    /// The moment of this batch of events (the one clock read per wake-up).
    pub now: Instant,
}

impl Acceptor {
    /// Registers the listener (readable only) and wraps it.
    ///
    /// # Errors
    /// If the registration fails.
    pub fn new(
        mut listener: TcpListener,
        registry: &Registry,
        max_connections: usize,
        max_per_source: Option<u32>,
    ) -> io::Result<Self> {
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Acceptor {
            listener,
            max_connections,
            per_source: max_per_source.map(SourceLimit::new),
            paused_since: None,
        })
    }

    /// Connection `key` has been removed: its source's share is back.
    pub fn release(&mut self, key: usize) {
        if let Some(limit) = self.per_source.as_mut() {
            limit.release(key);
        }
    }

    /// Whether accepting is paused for lack of descriptors.
    pub fn is_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// When a paused acceptor should retry by itself.
    pub fn retry_at(&self) -> Option<Instant> {
        self.paused_since.map(|since| since + RETRY_WHILE_PAUSED)
    }

    /// The listener's address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Removes the listener from the poll; dropping the acceptor closes it,
    /// after which new connections are refused by the kernel.
    pub fn close(mut self, registry: &Registry) {
        if let Err(e) = registry.deregister(&mut self.listener) {
            debug!("deregistering the listener failed: {e}");
        }
    }

    /// Accepts until the backlog is empty (edge-triggered: a partial drain
    /// would never be reported again).
    pub fn accept_all(&mut self, ctx: &mut AcceptCtx<'_>) {
        let accepted_at = ctx.clock.tick(ctx.now);
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.resume();
                    return;
                }
                // A connection reset while it waited in the backlog, or a signal.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return self.pause(&e, ctx.now),
            };
            self.resume();
            if ctx.conns.len() >= self.max_connections {
                // Accepted so that the client is not left hanging in the
                // backlog; dropped at once, which closes it.
                ctx.stats.rejected();
                debug!(
                    "rejected {peer}: at the connection limit ({})",
                    self.max_connections
                );
                continue;
            }
            // Echo replies are small and latency matters: do not let Nagle
            // hold a reply back waiting for the previous one's ACK.
            if let Err(e) = stream.set_nodelay(true) {
                debug!("TCP_NODELAY on {peer} failed: {e}");
            }
            let entry = ctx.conns.vacant_entry();
            let key = entry.key();
            if let Some(limit) = self.per_source.as_mut() {
                if !limit.admit(key, peer.ip()) {
                    // As past the connection limit: accepted, closed at once.
                    ctx.stats.rejected_source += 1;
                    debug!("rejected {peer}: its address holds its share (--max-per-source)");
                    continue;
                }
            }
            // Registered once, for both directions, for the connection's whole
            // life, so no re-registration is ever needed. With edge-triggered
            // epoll the unused WRITABLE interest costs no event and no
            // syscall: every readable event also reports writable (epoll
            // hands over the socket's whole readiness), and `on_writable`
            // finds nothing owed, about 3 instructions a message
            // (docs/benchmarks/writable_interest.md).
            if let Err(e) = ctx.registry.register(
                &mut stream,
                connection_token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("cannot register connection from {peer}: {e}");
                self.release(key);
                continue;
            }
            entry.insert(Connection::new(
                stream,
                ctx.service.new_stream(),
                accepted_at,
            ));
            ctx.stats.opened();
            if let Some(idle) = ctx.idle_timeout {
                ctx.sweeper.wake_at(ctx.now + idle);
            }
            trace!("conn={key} accepted from {peer}");
        }
    }

    fn pause(&mut self, err: &io::Error, now: Instant) {
        if self.paused_since.is_none() {
            if fd_limit::is_out_of_descriptors(err) {
                warn!("accept paused, out of file descriptors: {err}; resuming when one is freed");
            } else {
                warn!("accept failed: {err}; retrying in {RETRY_WHILE_PAUSED:?}");
            }
        }
        self.paused_since = Some(now);
    }

    fn resume(&mut self) {
        if self.paused_since.take().is_some() {
            warn!("accept resumed");
        }
    }
}
