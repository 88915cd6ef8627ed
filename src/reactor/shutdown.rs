//! Signals and the grace period: how the reactor stops without losing bytes.
//!
//! A signal handler may do almost nothing safely, so signal-hook's handler
//! only writes a byte to a pipe, and the pipe's read end is registered with
//! the reactor's `Poll` like any socket ([`SIGNALS`] token). The signal is
//! then handled in the loop, in order with everything else.
//!
//! On SIGINT or SIGTERM the reactor closes the listener (new connections are
//! refused), stops taking requests, and for at most [`GRACE_PERIOD`] keeps
//! writing what it owes: each connection flushes, sends its FIN, and reads
//! (and discards) until the peer's FIN, so that closing cannot turn into an
//! RST that throws away replies still on their way to the peer. The loop
//! stops when
//! every connection has closed or the grace period is over. A second signal
//! ends it at once.

use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Registry};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::token::SIGNALS;

/// The grace period: the longest the server keeps going after a signal.
pub const GRACE_PERIOD: Duration = Duration::from_secs(1);

/// The signal source and the end of the grace period.
pub struct Shutdown {
    signals: Signals,
    deadline: Option<Instant>,
}

/// What a batch of signals asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Nothing (the event was spurious).
    None,
    /// Begin the grace period.
    Begin,
    /// A signal during the grace period: stop now.
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
    /// Installs the SIGINT and SIGTERM handlers: from now on the signals
    /// only write to signal-hook's pipe, which [`Shutdown::register`] puts on
    /// a poll.
    ///
    /// # Errors
    /// If the handlers cannot be installed.
    pub fn on_signals() -> io::Result<Self> {
        Ok(Shutdown {
            signals: Signals::new([SIGINT, SIGTERM])?,
            deadline: None,
        })
    }

    /// Registers the signal pipe with the reactor's poll ([`SIGNALS`] token).
    ///
    /// # Errors
    /// If the registration fails.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.signals, SIGNALS, Interest::READABLE)
    }

    /// Reads the pending signals and says what they ask for.
    pub fn on_signal(&mut self, now: Instant) -> Request {
        let mut request = Request::None;
        for signal in self.signals.pending() {
            log::info!("received signal {signal}");
            request = match self.deadline {
                None => {
                    self.deadline = Some(now + GRACE_PERIOD);
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

    /// The end of the grace period, once it has begun.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reactor's `Debug` form shows the shutdown's deadline: the one
    /// thing of it that matters (the signal source has no `Debug`). Made
    /// with no signal at all, so that the test process's own handlers stay
    /// as they are.
    #[test]
    fn the_debug_form_shows_the_deadline() {
        let mut shutdown = Shutdown {
            signals: Signals::new(std::iter::empty::<i32>()).unwrap(),
            deadline: None,
        };
        assert_eq!(format!("{shutdown:?}"), "Shutdown { deadline: None, .. }");
        let at = Instant::now();
        shutdown.deadline = Some(at);
        assert_eq!(
            format!("{shutdown:?}"),
            format!("Shutdown {{ deadline: Some({at:?}), .. }}")
        );
    }
}
