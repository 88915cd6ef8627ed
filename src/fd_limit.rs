//! The open-file limit: raise it, and derive the default connection limit.
//!
//! Every connection is a file descriptor, so `RLIMIT_NOFILE` is the real cap
//! on how many a process can hold. Its soft limit often starts at 1024 while
//! the hard limit is far higher; a process may raise its own soft limit up to
//! the hard one ([getrlimit(2)](https://man7.org/linux/man-pages/man2/getrlimit.2.html)),
//! so we do that at start and plan the connection limit around the result.
//!
//! Raising and reporting are two steps on purpose: a server raises the limit
//! before it binds (every accepted connection counts against it), but says
//! so only after its sockets are bound, so that a start-up failure such as
//! "address in use" is the first line on stderr whatever `RUST_LOG` says.

use log::{info, warn};

/// Descriptors kept back from the connection limit for everything else the
/// process opens: stdio, the epoll instance, the listener, the UDP socket, the
/// signal pipe, and a margin.
pub const RESERVED_FDS: u64 = 16;

/// The open-file limits after [`raise_to_hard_limit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdLimits {
    /// The soft limit before it was raised.
    pub before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (the ceiling for the soft one).
    pub hard: u64,
    /// Why the soft limit could not be raised, if it could not.
    pub raise_error: Option<String>,
}

impl FdLimits {
    /// The default connection limit: the soft limit less [`RESERVED_FDS`]
    /// (at least 1).
    pub fn default_max_connections(&self) -> usize {
        self.soft.saturating_sub(RESERVED_FDS).max(1) as usize
    }

    /// Logs what [`raise_to_hard_limit`] did: a warning if it could not
    /// raise the limit, else one info line.
    pub fn log(&self) {
        match &self.raise_error {
            Some(err) => warn!(
                "cannot raise the open-file limit (soft {}, hard {}): {err}",
                self.soft, self.hard
            ),
            None => info!(
                "open-file limit: soft {} -> {}, hard {}",
                self.before, self.soft, self.hard
            ),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, quietly: call
/// [`FdLimits::log`] once the sockets are bound.
///
/// Failure is not fatal: the server runs with whatever limit it has, and
/// [`FdLimits::log`] says so.
pub fn raise_to_hard_limit() -> FdLimits {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    let (soft, raise_error) = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => (soft, None),
        Err(err) => (before.0, Some(err.to_string())),
    };
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(before.1, |l| l.1);
    FdLimits {
        before: before.0,
        soft,
        hard,
        raise_error,
    }
}

/// Whether an `accept` error means "no descriptor to give you": `EMFILE`
/// (this process is at its limit), `ENFILE` (the system is), or the memory
/// shortages that look the same to accept. The pending connection stays in
/// the backlog; retrying at once would fail again.
pub fn is_out_of_descriptors(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
