//! Signals for a completion loop: a pipe the ring polls.
//!
//! The reactor registers signal-hook's pipe with mio like a socket. The
//! proactor does the same with the ring: a signal handler may only do
//! async-signal-safe things, so signal-hook's handler writes a byte to a
//! pipe (one per signal) and records which signal came; the pipe's read end
//! has a multishot poll armed on the ring, so a signal is one more
//! completion, handled in order with the others. A signal that arrives
//! while the loop waits in `io_uring_enter` interrupts the wait as well
//! (`EINTR`), and the next wait finds the poll's completion.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The signal pipe's read end, and the last signal's number.
#[derive(Debug)]
pub struct SignalPipe {
    reader: UnixStream,
    last: Arc<AtomicUsize>,
}

impl SignalPipe {
    /// Installs the SIGINT and SIGTERM handlers.
    ///
    /// # Errors
    /// If the pipe or the handlers cannot be set up.
    pub fn install() -> io::Result<SignalPipe> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let last = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            // Which signal first, then the byte that wakes the ring: the
            // handler's actions run in the order they were registered.
            signal_hook::flag::register_usize(signal, Arc::clone(&last), signal as usize)?;
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
        }
        Ok(SignalPipe { reader, last })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// How many signals arrived since the last call, and the number of the
    /// latest.
    pub fn take(&mut self) -> (usize, usize) {
        let mut count = 0;
        let mut buf = [0u8; 64];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => count += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (count, self.last.load(Ordering::SeqCst))
    }
}
