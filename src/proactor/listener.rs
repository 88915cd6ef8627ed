//! Accepting with one multishot accept: the kernel accepts for us and
//! completes once per connection, until the accept fails or is cancelled.
//!
//! The reactor's acceptor accepts in a loop until `EAGAIN`; here the loop
//! is in the kernel, and each completion brings a descriptor. The rules are
//! the reactor's (`reactor/listener.rs`): past `--max-connections` a
//! connection is accepted and closed at once (counted `rejected`); running
//! out of descriptors (`EMFILE`, `ENFILE`) must neither spin nor stop
//! accepting for good. A failed multishot accept ends (its completion has
//! no `IORING_CQE_F_MORE`), so the acceptor *pauses*: it is armed again as
//! soon as a connection's slot is freed (a descriptor is back), or after
//! [`RETRY_WHILE_PAUSED`], whichever comes first. Connections wait in the
//! kernel's backlog meanwhile.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::time::Instant;

use log::{debug, warn};

use super::ring::Ring;
use super::user_data::{Op, SERVER_SLOT, UserData};
use crate::fd_limit;
pub use crate::reactor::listener::RETRY_WHILE_PAUSED;

/// Where the multishot accept is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// Armed in the kernel.
    Armed,
    /// Ended by an error at this moment; armed again on a freed slot or
    /// after [`RETRY_WHILE_PAUSED`].
    Paused(Instant),
    /// Cancelled (shutdown); its last completion has not come yet.
    Cancelling,
    /// Nothing in the kernel.
    Idle,
}

/// The TCP listener and its multishot accept.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    accepting: Accepting,
}

fn token() -> UserData {
    UserData::new(Op::Accept, 0, 0)
}

impl Acceptor {
    /// The acceptor, with its multishot accept armed.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn new(listener: TcpListener, ring: &mut Ring) -> io::Result<Acceptor> {
        ring.accept_multishot(listener.as_raw_fd(), token())?;
        Ok(Acceptor {
            listener,
            accepting: Accepting::Armed,
        })
    }

    /// The listener's address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// When a paused acceptor arms itself again without being prompted.
    pub fn retry_at(&self) -> Option<Instant> {
        match self.accepting {
            Accepting::Paused(since) => Some(since + RETRY_WHILE_PAUSED),
            _ => None,
        }
    }

    /// Whether the accept is still in the kernel (armed or being cancelled).
    pub fn is_in_kernel(&self) -> bool {
        matches!(self.accepting, Accepting::Armed | Accepting::Cancelling)
    }

    /// The accept's completion ended it (no `F_MORE`): pause if it failed,
    /// arm it again at once if it simply ended.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn ended(
        &mut self,
        failure: Option<&io::Error>,
        now: Instant,
        ring: &mut Ring,
    ) -> io::Result<()> {
        match (self.accepting, failure) {
            (Accepting::Cancelling, _) => {
                self.accepting = Accepting::Idle;
                Ok(())
            }
            (_, Some(e)) if e.raw_os_error() == Some(libc::ECANCELED) => {
                self.accepting = Accepting::Idle;
                Ok(())
            }
            (_, Some(e)) => {
                if fd_limit::is_out_of_descriptors(e) {
                    warn!(
                        "accept paused, out of file descriptors: {e}; resuming when one is freed"
                    );
                } else {
                    warn!("accept failed: {e}; retrying in {RETRY_WHILE_PAUSED:?}");
                }
                self.accepting = Accepting::Paused(now);
                Ok(())
            }
            (_, None) => {
                debug!("multishot accept ended; armed again");
                self.arm(ring)
            }
        }
    }

    /// Arms a paused acceptor again if a descriptor was freed or its retry
    /// is due.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn resume_if(&mut self, freed: bool, now: Instant, ring: &mut Ring) -> io::Result<()> {
        if let Accepting::Paused(since) = self.accepting {
            if freed || now >= since + RETRY_WHILE_PAUSED {
                warn!("accept resumed");
                return self.arm(ring);
            }
        }
        Ok(())
    }

    fn arm(&mut self, ring: &mut Ring) -> io::Result<()> {
        ring.accept_multishot(self.listener.as_raw_fd(), token())?;
        self.accepting = Accepting::Armed;
        Ok(())
    }

    /// Shutdown: cancels the accept; the listener closes when the acceptor
    /// is dropped, once the accept's last completion is in.
    ///
    /// # Errors
    /// If the ring cannot take the entry.
    pub fn stop(&mut self, ring: &mut Ring) -> io::Result<()> {
        if self.accepting == Accepting::Armed {
            ring.cancel(token(), UserData::new(Op::Cancel, SERVER_SLOT, 0))?;
            self.accepting = Accepting::Cancelling;
        } else {
            self.accepting = Accepting::Idle;
        }
        Ok(())
    }
}
