//! The human-readable report: one line per figure, labels in a column of
//! their own, the honest clients first, then the hostile peers, the
//! server's memory, the kernel and the environment.

use std::fmt::Write;

use super::{Latency, Report};
use crate::bench::chaos::kind::Kind;
use crate::bench::chaos::tally::Tally;
use crate::bench::measure::kernel::KernelSide;
use crate::bench::measure::server_memory::SETTLE;

impl Report {
    /// The human-readable report, one figure a line.
    pub fn human(&self) -> String {
        let mut s = String::new();
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
        let _ = writeln!(
            s,
            "messages      {} in {:.2} s: {:.0} msg/s, {:.0} bytes/s",
            self.honest.messages,
            self.run.duration,
            self.honest.messages_per_sec,
            self.honest.bytes_per_sec
        );
        let l = Latency::of(&self.honest.latency);
        let _ = writeln!(
            s,
            "latency (us)  p50 {} p90 {} p99 {} p99.9 {} max {}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
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
        for (label, cpu) in [
            ("server cpu", self.cpu.server),
            ("bench cpu", self.cpu.bench),
        ] {
            if let Some(spent) = cpu {
                let (user, system) = (spent.user, spent.system);
                let per_message = spent.per_message(self.honest.messages);
                let _ = writeln!(
                    s,
                    "{label:<14}{user:.2} s user + {system:.2} s system in the window: {per_message:.2} us per message"
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
                "server memory {:.1} MiB before the first connect, {:.1} MiB with all open: {:.0} B per connection",
                rss.before as f64 / 1024.0,
                rss.open as f64 / 1024.0,
                rss.bytes_per_connection(self.honest.established)
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
        "kernel        sockets {} -> {}, tcp in use {} -> {}, tcp buffer pages {} -> {}, \
         memory available fell {:.1} MiB",
        b.sockets,
        d.sockets,
        b.tcp_inuse,
        d.tcp_inuse,
        b.tcp_mem_pages,
        d.tcp_mem_pages,
        fell as f64 / 1024.0
    );
    if connections > 0 {
        let _ = write!(
            s,
            " ({:.0} B per connection)",
            fell as f64 * 1024.0 / connections as f64
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
