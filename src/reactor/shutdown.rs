//! Signals and the drain phase: how the reactor stops without losing bytes.
//!
//! A signal handler may do almost nothing safely, so signal-hook's handler
//! only writes a byte to a pipe, and the pipe's read end is registered with
//! the reactor's `Poll` like any socket ([`SIGNALS`] token). The signal is
//! then handled in the loop, in order with everything else.
//!
//! On SIGINT or SIGTERM the reactor closes the listener (new connections are
//! refused), stops reading, and keeps writing what it owes for at most
//! [`DRAIN_LIMIT`]. A second signal ends the drain at once.

use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Registry};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::token::SIGNALS;

/// The longest the server keeps writing owed bytes after a signal.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// The signal source and the drain deadline.
pub struct Shutdown {
    signals: Signals,
    deadline: Option<Instant>,
}

/// What a batch of signals asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Nothing (the event was spurious).
    None,
    /// Begin the drain.
    Begin,
    /// A signal during the drain: stop now.
    StopNow,
}

impl std::fmt::Debug for Shutdown {
    // signal-hook-mio's `Signals` has no `Debug`; the deadline is what matters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Shutdown {
    /// Installs the SIGINT and SIGTERM handlers and registers their pipe.
    ///
    /// # Errors
    /// If the handlers cannot be installed or the pipe registered.
    pub fn new(registry: &Registry) -> io::Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        registry.register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Shutdown {
            signals,
            deadline: None,
        })
    }

    /// Reads the pending signals and says what they ask for.
    pub fn on_signal(&mut self, now: Instant) -> Request {
        let mut request = Request::None;
        for signal in self.signals.pending() {
            log::info!("received signal {signal}");
            request = match self.deadline {
                None => {
                    self.deadline = Some(now + DRAIN_LIMIT);
                    Request::Begin
                }
                Some(_) => {
                    self.deadline = Some(now);
                    Request::StopNow
                }
            };
        }
        request
    }

    /// The end of the drain, once it has begun.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}
