//! CPU time during the measured window: the server's (`--server-pid`) and
//! the load generator's own.
//!
//! When the load generator rather than the server is the bottleneck (UDP
//! with one datagram in flight per socket, say), messages per second say
//! nothing about the server. Its CPU time per message still does: read from
//! `/proc/PID/stat` at the start and the end of the window, user and system
//! time, of the process, of its children that have exited, and of its
//! children that are still running (`serve --workers N`: the supervisor
//! costs nothing, its workers everything; they are found through
//! `/proc/PID/task/TID/children`), divided by the messages answered in
//! between. Both files are read by [`procfs`].
//!
//! The generator reads its own the same way, so every report says what a
//! message cost the generator too: a generator that needs more CPU per
//! message than the server measures itself, and the figure shows it (and
//! compares with the C load generator's, which reports its CPU share).

use std::io;
use std::time::Duration;

use crate::bench::procfs;

/// A reading of a process's CPU time, children included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent in user space.
    pub user: Duration,
    /// Time spent in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// Reads `pid`'s CPU time now.
    ///
    /// # Errors
    /// If `/proc/PID/stat` cannot be read or parsed (no such process).
    pub fn of(pid: u32) -> io::Result<CpuTime> {
        let (user, system) = procfs::cpu_time(pid)?;
        Ok(CpuTime { user, system })
    }

    /// Reads the CPU time of `pid` and of every descendant still running
    /// (whose time is not yet in its parent's "children" fields).
    ///
    /// # Errors
    /// If `pid` itself cannot be read; a descendant that exits meanwhile is
    /// skipped.
    pub fn of_tree(pid: u32) -> io::Result<CpuTime> {
        let mut total = CpuTime::of(pid)?;
        for child in procfs::live_children(pid) {
            if let Ok(theirs) = CpuTime::of_tree(child) {
                total.user += theirs.user;
                total.system += theirs.system;
            }
        }
        Ok(total)
    }

    /// The time spent since `earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Samples a process's CPU time (and its descendants') at the start and the
/// end of the window.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    pid: u32,
    start: Option<CpuTime>,
}

impl CpuWindow {
    /// A sampler for the process `pid`.
    pub(crate) fn new(pid: u32) -> CpuWindow {
        CpuWindow { pid, start: None }
    }

    /// A sampler for this process, the load generator itself.
    pub(crate) fn own() -> CpuWindow {
        CpuWindow::new(std::process::id())
    }

    /// The window begins.
    pub(crate) fn window_starts(&mut self) {
        self.start = CpuTime::of_tree(self.pid).ok();
    }

    /// The window ends: the CPU time spent in it, if both readings worked.
    pub(crate) fn window_ends(&mut self) -> Option<CpuTime> {
        let start = self.start.take()?;
        Some(CpuTime::of_tree(self.pid).ok()?.since(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_counts_forward() {
        let pid = std::process::id();
        let before = CpuTime::of(pid).unwrap();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let spent = CpuTime::of(pid).unwrap().since(before);
        assert!(spent.user + spent.system > Duration::ZERO, "{spent:?}");
        assert!(CpuTime::of(u32::MAX).is_err());
    }

    #[test]
    fn counts_running_children() {
        // A child that burns CPU: its time is in the tree's, not in ours.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .unwrap();
        let pid = std::process::id();
        let mut is_counted = false;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            let tree = CpuTime::of_tree(pid).unwrap();
            let own = CpuTime::of(pid).unwrap();
            if tree.user + tree.system >= own.user + own.system + Duration::from_millis(100) {
                is_counted = true;
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(is_counted, "the running child's CPU time was not counted");
    }
}
