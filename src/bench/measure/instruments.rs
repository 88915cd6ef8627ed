//! The instruments an engine carries beside its connections: everything it
//! reads that is not a reply.
//!
//! * the series ([`Series`]): every reply's latency goes to the interval
//!   under way, which closes once a second and at every change of period,
//!   adding itself to the run's totals if it was measured;
//! * where each closed interval goes ([`Progress`]): the live line, and
//!   with `--json-stream` the JSON stream;
//! * the CPU time over the measured window, the server's (`--server-pid`)
//!   and the load generator's own ([`CpuWindow`]), read as the window
//!   opens and closes;
//! * what opening the connections cost (TCP only): the kernel's figures
//!   ([`KernelReading`]) and the server's memory, read before the first
//!   connect and again once every connection is open.
//!
//! Every engine (`engine/driver.rs`, `engine/udp.rs`) carries one, so that
//! none keeps its own copy of the reading rules; the engine says when (a
//! wake-up, a change of period, every connection open), the instruments
//! read.

use std::io;
use std::time::Instant;

use super::cpu_window::CpuWindow;
use super::kernel::{KernelReading, KernelSide};
use super::progress::Progress;
use super::series::{Series, Stage};
use super::server_memory::OpenCost;
use crate::bench::engine::period::Period;
use crate::bench::engine::plan::Outcome;
use crate::bench::procfs;

/// What an engine reads besides the replies.
#[derive(Debug)]
pub(crate) struct Instruments {
    /// The per-second series: the interval under way, the points closed.
    pub(crate) series: Series,
    /// Where each closed interval goes.
    progress: Progress,
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
    ///
    /// # Errors
    /// Only if a histogram could not be made (its bounds are constants).
    pub(crate) fn new(server_pid: Option<u32>, progress: Progress) -> io::Result<Instruments> {
        Ok(Instruments {
            series: Series::new(server_pid)?,
            progress,
            server_cpu: server_pid.map(CpuWindow::new),
            own_cpu: CpuWindow::own(),
            opening: None,
        })
    }

    /// The same, reading the kernel and the server's memory now, before
    /// the first connect ([`Instruments::all_open`] reads them again).
    ///
    /// # Errors
    /// As [`Instruments::new`].
    pub(crate) fn watching_the_opening(
        server_pid: Option<u32>,
        progress: Progress,
    ) -> io::Result<Instruments> {
        let server = server_pid.and_then(|pid| Some((pid, procfs::resident_kib(pid).ok()?)));
        Ok(Instruments {
            opening: Some(Opening {
                started: Instant::now(),
                kernel: KernelReading::now(),
                server,
            }),
            ..Instruments::new(server_pid, progress)?
        })
    }

    /// Once a turn, before the sleep: the interval closes if its second is
    /// over (`up` of `total` connections open).
    pub(crate) fn tick(&mut self, now: Instant, outcome: &mut Outcome, up: usize, total: usize) {
        if now >= self.series.closes_at() {
            let stage = self.series.stage();
            let point = self.series.close(now, stage, outcome, up);
            self.progress.interval(now, &point, up, total);
        }
    }

    /// When the loop must wake for the interval to close on time.
    pub(crate) fn next_close(&self) -> Instant {
        self.series.closes_at()
    }

    /// The run moves from `from` to `to` (whose stage is `stage`) at `now`:
    /// the interval under way closes, and CPU times are read as the
    /// measured window opens and closes.
    pub(crate) fn period_changes(
        &mut self,
        (from, to): (Period, Period),
        stage: Stage,
        now: Instant,
        outcome: &mut Outcome,
        (up, total): (usize, usize),
    ) {
        if stage != self.series.stage() {
            let point = self.series.close(now, stage, outcome, up);
            self.progress.interval(now, &point, up, total);
        }
        match from.window_change(to) {
            Some(true) => {
                outcome.window_start_ms = Some(super::series::unix_ms());
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

    /// The run is over: the last interval closes, and the series goes to
    /// `outcome`.
    pub(crate) fn finish(&mut self, now: Instant, outcome: &mut Outcome, up: usize, total: usize) {
        let point = self.series.finish(now, outcome, up);
        self.progress.interval(now, &point, up, total);
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
