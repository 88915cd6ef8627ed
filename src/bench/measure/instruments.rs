//! The instruments an engine carries beside its connections: everything it
//! reads that is not a reply.
//!
//! * the live progress line ([`Progress`]), counted on every reply;
//! * the CPU time over the measured window, the server's (`--server-pid`)
//!   and the load generator's own ([`CpuWindow`]), read as the window
//!   opens and closes;
//! * what opening the connections cost (TCP only): the kernel's figures
//!   ([`KernelReading`]) and the server's memory, read before the first
//!   connect and again once every connection is open.
//!
//! Both engines (`engine/driver.rs`, `engine/udp.rs`) carry one, so that
//! neither keeps its own copy of the reading rules; the engine says when
//! (a change of period, every connection open), the instruments read.

use std::time::Instant;

use super::cpu_window::CpuWindow;
use super::kernel::{KernelReading, KernelSide};
use super::progress::Progress;
use super::server_memory::OpenCost;
use crate::bench::engine::period::Period;
use crate::bench::engine::plan::Outcome;
use crate::bench::procfs;

/// What an engine reads besides the replies.
#[derive(Debug)]
pub(crate) struct Instruments {
    /// The live progress line.
    pub(crate) progress: Progress,
    /// `--server-pid`: the server's CPU time over the window.
    server_cpu: Option<CpuWindow>,
    /// The generator's own CPU time over the same window.
    own_cpu: CpuWindow,
    /// TCP: the figures read before the first connect.
    opening: Option<Opening>,
}

/// The figures read before the first connect, to compare with those once
/// every connection is open.
#[derive(Debug)]
struct Opening {
    started: Instant,
    kernel: KernelReading,
    /// `--server-pid`: the server, and its memory then.
    server: Option<(u32, u64)>,
}

impl Instruments {
    /// Instruments for a run whose server is `server_pid`, if known.
    pub(crate) fn new(server_pid: Option<u32>, progress: Progress) -> Instruments {
        Instruments {
            progress,
            server_cpu: server_pid.map(CpuWindow::new),
            own_cpu: CpuWindow::own(),
            opening: None,
        }
    }

    /// The same, reading the kernel and the server's memory now, before
    /// the first connect ([`Instruments::all_open`] reads them again).
    pub(crate) fn watching_the_opening(server_pid: Option<u32>, progress: Progress) -> Instruments {
        let server = server_pid.and_then(|pid| Some((pid, procfs::resident_kib(pid).ok()?)));
        Instruments {
            opening: Some(Opening {
                started: Instant::now(),
                kernel: KernelReading::now(),
                server,
            }),
            ..Instruments::new(server_pid, progress)
        }
    }

    /// The run moves from `from` to `to`: CPU times are read as the
    /// measured window opens and closes.
    pub(crate) fn period_changes(&mut self, from: Period, to: Period, outcome: &mut Outcome) {
        match from.window_change(to) {
            Some(true) => {
                if let Some(cpu) = self.server_cpu.as_mut() {
                    cpu.window_starts();
                }
                self.own_cpu.window_starts();
            }
            Some(false) => {
                outcome.server_cpu = self.server_cpu.as_mut().and_then(CpuWindow::window_ends);
                outcome.bench_cpu = self.own_cpu.window_ends();
            }
            None => {}
        }
    }

    /// Every connection is open (or has failed): how long it took, and the
    /// kernel's figures and the server's memory now, beside those before.
    pub(crate) fn all_open(&self, outcome: &mut Outcome) {
        let Some(opening) = &self.opening else {
            return;
        };
        outcome.opened_in = Some(opening.started.elapsed());
        outcome.kernel = Some(KernelSide {
            before: opening.kernel,
            during: KernelReading::now(),
        });
        outcome.server_rss = opening.server.and_then(|(pid, before)| {
            let open = procfs::resident_kib(pid).ok()?;
            Some(OpenCost { before, open })
        });
    }
}
