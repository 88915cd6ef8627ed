//! Giving freed heap memory back to the system after a peak of threads.
//!
//! glibc's `malloc` keeps memory that the program has freed, to reuse it,
//! and returns to the system only the free space at the top of each heap.
//! A thread-per-connection server makes that visible: every thread that
//! calls `malloc` gets one of up to 8 arenas per core (glibc's own thread
//! start-up allocates, so every thread does), each arena keeps a few hundred
//! KiB free after its threads have gone, and free chunks between live ones
//! stay resident too. After 5,000 connections at once had closed, the
//! blocking server stayed tens of MiB above where it started (the test
//! `memory::memory_of_a_peak_of_5000_connections_is_given_back` failed).
//!
//! `malloc_trim(0)` walks every arena and hands all of its free pages back
//! (`madvise(MADV_DONTNEED)`), live allocations untouched
//! ([malloc_trim(3)](https://man7.org/linux/man-pages/man3/malloc_trim.3.html)).
//! It locks each arena in turn, so it belongs at a quiet moment, never on a
//! hot path. [`PeakTrimmer`] finds that moment: the last connection of a peak
//! has closed *and* its thread has exited (a thread frees the last of its
//! memory after the code it ran returns). The reactor has one thread and one
//! arena, but it holds what it owes peers that do not read; it calls
//! [`give_back_free_memory`] once such a peak has subsided
//! (`reactor/owed.rs`).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Returns the allocator's free memory to the system; true if any was
/// returned. Does nothing (and returns false) off glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn give_back_free_memory() -> bool {
    // SAFETY: malloc_trim takes a plain integer, touches only the
    // allocator's own bookkeeping (under its locks) and has no precondition
    // on the caller; 0 asks to keep no spare room at the top of the heap.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Returns the allocator's free memory to the system; true if any was
/// returned. Does nothing (and returns false) off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_free_memory() -> bool {
    false
}

/// The threads of this process, as the kernel counts them (`Threads:` in
/// `/proc/self/status`); `None` where that cannot be read.
pub fn process_threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Watches the number of open connections, and gives memory back once a
/// peak of at least `worth` connections is over and its threads are gone.
#[derive(Debug)]
pub struct PeakTrimmer {
    worth: usize,
    /// The most connections open at once since the last trim, and whether
    /// the server has gone quiet after a peak worth trimming.
    state: Mutex<Peak>,
    quiet: Condvar,
}

#[derive(Debug, Default)]
struct Peak {
    highest: usize,
    is_quiet: bool,
}

/// How long [`PeakTrimmer::run`] waits for the threads of a peak to exit.
const EXIT_PATIENCE: Duration = Duration::from_secs(2);

/// How long [`PeakTrimmer::run`] waits for the server to go quiet before it
/// checks again whether it should stop.
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(250);

impl PeakTrimmer {
    /// A trimmer for peaks of at least `worth` connections.
    pub fn new(worth: usize) -> Self {
        PeakTrimmer {
            worth,
            state: Mutex::new(Peak::default()),
            quiet: Condvar::new(),
        }
    }

    /// A connection opened; `now_open` are open with it.
    pub fn opened(&self, now_open: usize) {
        let mut peak = self.lock();
        peak.highest = peak.highest.max(now_open);
        peak.is_quiet = false;
    }

    /// A connection closed; `now_open` are still open.
    pub fn closed(&self, now_open: usize) {
        let mut peak = self.lock();
        if now_open == 0 && peak.highest >= self.worth {
            peak.is_quiet = true;
            self.quiet.notify_one();
        }
    }

    /// The trimming thread's loop: wait until the server goes quiet after a
    /// peak, wait for the peak's threads to exit (the process is back to
    /// `resting_threads`), then give the free memory back. Returns once
    /// `is_stopping` says so (checked every [`STOP_CHECK_INTERVAL`]).
    pub fn run(&self, resting_threads: u64, is_stopping: impl Fn() -> bool) {
        while !is_stopping() {
            {
                let peak = self.lock();
                let (mut peak, _) = self
                    .quiet
                    .wait_timeout_while(peak, STOP_CHECK_INTERVAL, |p| !p.is_quiet)
                    .unwrap_or_else(PoisonError::into_inner);
                if !peak.is_quiet {
                    continue;
                }
                peak.is_quiet = false;
                peak.highest = 0;
            }
            let deadline = Instant::now() + EXIT_PATIENCE;
            while process_threads().is_some_and(|n| n > resting_threads)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let returned = give_back_free_memory();
            log::debug!(
                "a peak of connections is over: free memory returned to the system: {returned}"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Peak> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
