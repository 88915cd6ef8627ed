//! The human-readable report: one line per figure, labels in a column of
//! their own, the honest clients first, then the hostile peers, the
//! server's memory, the kernel and the environment.
//!
//! Each figure says what it is over: an empty histogram reads `none`, not
//! 0; churn's rate is in connections per second, an idle run's in round
//! trips per second of its wave; the open loop's achieved rate stands
//! beside the one asked; a figure per connection taken from a difference
//! of two noisy readings is printed with its uncertainty.

use std::fmt::Write;

use super::{Latency, Report, Workload};
use crate::bench::chaos::kind::Kind;
use crate::bench::chaos::tally::Tally;
use crate::bench::measure::kernel::KernelSide;
use crate::bench::measure::server_memory::SETTLE;

impl Report {
    /// The rate lines: what the workload's rate is over, and the open
    /// loop's asked rate beside the achieved one.
    fn rate_lines(&self, s: &mut String) {
        let h = &self.honest;
        let summed = if self.run.processes > 1 {
            " (the parts' rates added, each over its own window)"
        } else {
            ""
        };
        let _ = match self.run.workload {
            Workload::Churn => writeln!(
                s,
                "cycles        {} in {:.2} s: {:.0} connections/s (connect, one message, check, \
                 close){summed}",
                h.messages, self.run.duration, h.messages_per_sec
            ),
            Workload::Idle => writeln!(
                s,
                "wave          {} round trips in {:.3} s after a hold of {:.2} s: {:.0} round \
                 trips/s{summed}",
                h.messages,
                h.latency.max() as f64 / 1e6,
                self.run.duration,
                h.messages_per_sec
            ),
            _ => writeln!(
                s,
                "messages      {} in {:.2} s: {:.0} msg/s, {:.0} bytes/s{summed}",
                h.messages, self.run.duration, h.messages_per_sec, h.bytes_per_sec
            ),
        };
        if let Some(asked) = self.timeline.rate_requested {
            let share = if asked > 0.0 {
                h.messages_per_sec / asked * 100.0
            } else {
                0.0
            };
            let behind = self
                .timeline
                .schedule_lag_ms
                .map_or_else(String::new, |ms| {
                    format!(
                        "; the generator itself fell behind its schedule by up to {ms:.1} ms (the \
                     late messages' latency includes it)"
                    )
                });
            let _ = writeln!(
                s,
                "rate          {asked:.0} msg/s asked, {:.0} achieved ({share:.1}%){behind}",
                h.messages_per_sec
            );
        }
    }

    /// The human-readable report, one figure a line.
    pub fn human(&self) -> String {
        let mut s = String::new();
        if self.timeline.interrupted {
            let _ = writeln!(
                s,
                "interrupted   by Ctrl-C: the figures are of the part that ran"
            );
        }
        let _ = writeln!(
            s,
            "mode          {} ({} bytes, pipeline {})",
            self.run.workload, self.run.size, self.run.pipeline
        );
        if self.run.processes > 1 {
            let _ = writeln!(
                s,
                "processes     {} load generators, one merged report (histograms added)",
                self.run.processes
            );
        }
        let opened = self
            .honest
            .opened_in
            .map_or_else(String::new, |t| format!(", all open after {t:.1} s"));
        let _ = writeln!(
            s,
            "connections   {} requested, {} established, {} failed{opened}",
            self.run.connections, self.honest.established, self.honest.failed
        );
        self.rate_lines(&mut s);
        match Latency::of_some(&self.honest.latency) {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "latency (us)  p50 {} p90 {} p99 {} p99.9 {} max {}",
                    l.p50, l.p90, l.p99, l.p999, l.max
                );
            }
            None => {
                let _ = writeln!(s, "latency (us)  none (no replies were counted)");
            }
        }
        if !self.honest.connect.is_empty() {
            let c = Latency::of(&self.honest.connect);
            let _ = writeln!(
                s,
                "connect (us)  p50 {} p90 {} p99 {} p99.9 {} max {}",
                c.p50, c.p90, c.p99, c.p999, c.max
            );
        }
        let _ = writeln!(
            s,
            "errors        {} connections lost, {} mismatched bytes",
            self.honest.errors, self.honest.mismatches
        );
        let failures = &self.timeline.failures;
        if let Some(first) = failures.first {
            let _ = writeln!(
                s,
                "failures      {} (the first: {})",
                failures.by_kind(),
                first.sentence()
            );
        }
        if let Some(lost) = self.honest.lost {
            let _ = writeln!(
                s,
                "udp           {lost} datagrams lost (no reply within 1 s)"
            );
        }
        if let Some(ok) = self.honest.idle_ok {
            let _ = writeln!(
                s,
                "idle          {ok} of {} round trips after the idle period succeeded, \
                 the last back {:.2} s after the wave began",
                self.honest.established,
                self.honest.latency.max() as f64 / 1e6
            );
        }
        for (label, cpu, run) in [
            ("server cpu", self.cpu.server, self.timeline.server_run),
            ("bench cpu", self.cpu.bench, self.timeline.bench_run),
        ] {
            if let Some(spent) = cpu {
                let (user, system) = (spent.user, spent.system);
                // An idle run's window is its hold, with no messages in it.
                let per_message = if self.honest.messages > 0 && self.run.workload != Workload::Idle
                {
                    format!(
                        ": {:.2} us per message",
                        spent.per_message(self.honest.messages)
                    )
                } else {
                    String::new()
                };
                let whole = run.map_or_else(String::new, |r| {
                    format!("; {:.2} s over the whole run", r.user + r.system)
                });
                let _ = writeln!(
                    s,
                    "{label:<14}{user:.2} s user + {system:.2} s system in the window{per_message}{whole}"
                );
            }
        }
        if let Some(chaos) = &self.chaos {
            let _ = writeln!(
                s,
                "chaos         {} hostile peers beside the verified clients, {} wrong reply bytes:",
                chaos.peers(),
                chaos.mismatches()
            );
            for (kind, tally) in &chaos.kinds {
                let _ = writeln!(s, "{}", tally_line(*kind, tally));
            }
        }
        if let Some(m) = self.chaos.as_ref().and_then(|c| c.memory) {
            let mib = |kib: u64| kib as f64 / 1024.0;
            let _ = writeln!(
                s,
                "server rss    {:.1} MiB before, {:.1} MiB at the peak, {:.1} MiB {:.0} s after the peers left",
                mib(m.before),
                mib(m.peak),
                mib(m.after),
                SETTLE.as_secs_f64()
            );
        }
        if let Some(rss) = self.server_rss {
            let _ = writeln!(
                s,
                "server memory {:.1} MiB before the first connect, {:.1} MiB with all open: {}",
                rss.before as f64 / 1024.0,
                rss.open as f64 / 1024.0,
                per_connection(
                    rss.open.saturating_sub(rss.before),
                    SERVER_NOISE_KIB,
                    self.honest.established
                )
            );
        }
        if let Some(kernel) = &self.kernel {
            let _ = writeln!(s, "{}", kernel_lines(kernel, self.honest.established));
        }
        let _ = writeln!(
            s,
            "environment   fd limit {} (hard {}), sources {}, cpus {}, kernel {}, {} cores",
            self.environment.fd_soft,
            self.environment.fd_hard,
            summarize(&self.environment.sources),
            self.environment.cpus,
            self.environment.kernel,
            self.environment.cores
        );
        s
    }
}

/// A hostile kind's line.
fn tally_line(kind: Kind, tally: &Tally) -> String {
    let lost = if kind.is_datagram() {
        format!(", {} lost", tally.lost)
    } else {
        format!(
            "; the server closed {}, reset {}",
            tally.server_closed, tally.server_reset
        )
    };
    format!(
        "  {:<16}{} peers, {} connections ({} failed): {} {}; {} bytes sent, {} reply bytes checked, {} wrong{lost}",
        kind.name(),
        tally.peers,
        tally.connects,
        tally.connect_failures,
        tally.cycles,
        kind.cycle_noun(),
        tally.bytes_sent,
        tally.bytes_verified,
        tally.mismatches,
    )
}

/// The kernel's two lines: what the connections cost it, and how the storm
/// of connects went.
fn kernel_lines(kernel: &KernelSide, connections: u64) -> String {
    let (b, d) = (kernel.before, kernel.during);
    let fell = kernel.memory_fell_kib();
    let mut s = format!(
        "kernel        sockets {} -> {}, tcp in use {} -> {}, time-wait {} -> {}, \
         tcp buffer pages {} -> {}, memory available fell {:.1} MiB",
        b.sockets,
        d.sockets,
        b.tcp_inuse,
        d.tcp_inuse,
        b.tcp_tw,
        d.tcp_tw,
        b.tcp_mem_pages,
        d.tcp_mem_pages,
        fell as f64 / 1024.0
    );
    if connections > 0 {
        let _ = write!(
            s,
            " ({})",
            per_connection(fell, MACHINE_NOISE_KIB, connections)
        );
    }
    let _ = write!(
        s,
        "\nconnect storm {} SYN retransmits, {} accept-queue overflows",
        kernel.syn_retransmits(),
        kernel.listen_overflows()
    );
    s
}

/// How far the server's resident memory moves between two readings with
/// nothing to do with the connections (the allocator's arenas, pages
/// touched by the run): a difference below it says nothing per connection.
const SERVER_NOISE_KIB: u64 = 1_024;
/// The same for the machine's `MemAvailable`, which the rest of the
/// machine moves too.
const MACHINE_NOISE_KIB: u64 = 16 * 1_024;

/// A memory difference per connection, with its uncertainty: the noise of
/// the two readings spread over the connections, or, below the noise,
/// only the bound it sets.
fn per_connection(kib: u64, noise_kib: u64, connections: u64) -> String {
    let per = |k: u64| k as f64 * 1024.0 / connections.max(1) as f64;
    if kib < 2 * noise_kib {
        return format!(
            "{kib} KiB in all, within the readings' noise: under {:.0} B per connection",
            per(2 * noise_kib)
        );
    }
    format!("{:.0} B per connection, ± {:.0}", per(kib), per(noise_kib))
}

/// A long list of source addresses as its first and last and a count (a
/// million connections take a hundred addresses).
fn summarize(sources: &str) -> String {
    let list: Vec<&str> = sources.split(',').collect();
    match list.as_slice() {
        [first, .., last] if list.len() > 4 => {
            format!("{first} ... {last} ({} addresses)", list.len())
        }
        _ => sources.to_owned(),
    }
}
