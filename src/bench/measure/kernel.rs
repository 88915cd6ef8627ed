//! The kernel's side of a run: what the connections cost the machine, and
//! how the connection storm went.
//!
//! A connection costs far more in the kernel than in either process (a
//! socket, a file, an epoll item, buffers: about 3 KiB per end here, half of
//! the [6,312](../../../docs/benchmarks/scale-1000000.md "reactor-echo serve, reactor-echo bench") bytes per
//! loopback connection, both ends, that the scale table measured against
//! the server's [32](../../../docs/benchmarks/scale-1000000.md "reactor-echo serve, reactor-echo bench")), so a
//! report that shows only the server's RSS hides most of the bill. Two
//! readings are taken, before the first connect and once every connection
//! is open, from files every Linux has:
//!
//! * `/proc/net/sockstat`: sockets in use, TCP sockets in use and in
//!   TIME-WAIT, and the pages of memory TCP buffers hold;
//! * `/proc/meminfo`: `MemAvailable`, whose fall is the whole machine's
//!   cost of holding the connections (both ends, on loopback);
//!
//! and, from `/proc/net/netstat`, the counters that say whether the storm of
//! connects overflowed the server: `TCPSynRetrans` (SYNs sent again after
//! the first was dropped: each costs 1, 3, 7, ... s), `ListenOverflows` and
//! `ListenDrops` (a full accept queue). The counters are machine-wide, so
//! other traffic on the machine shows in them too; on a benchmark machine
//! there is none.

use serde::{Deserialize, Serialize};

use crate::bench::procfs;

/// One reading of the kernel's figures. Missing files read as zeros. (The
/// report's `kernel_before` and `kernel_during` objects, with these names.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelReading {
    /// Sockets of every kind in use (`sockets: used`).
    pub sockets: u64,
    /// TCP sockets in use (`TCP: inuse`).
    pub tcp_inuse: u64,
    /// TCP sockets in TIME-WAIT (`TCP: tw`).
    pub tcp_tw: u64,
    /// Pages held by TCP buffers (`TCP: mem`).
    pub tcp_mem_pages: u64,
    /// `MemAvailable` in KiB.
    pub mem_available_kib: u64,
    /// `TcpExt: TCPSynRetrans`.
    pub syn_retrans: u64,
    /// `TcpExt: ListenOverflows`.
    pub listen_overflows: u64,
    /// `TcpExt: ListenDrops`.
    pub listen_drops: u64,
}

impl KernelReading {
    /// Reads the figures now (through [`procfs`]).
    pub fn now() -> KernelReading {
        let sockets = procfs::sockstat();
        let counters = procfs::tcp_ext_counters();
        let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
        KernelReading {
            sockets: sockets.sockets,
            tcp_inuse: sockets.tcp_inuse,
            tcp_tw: sockets.tcp_tw,
            tcp_mem_pages: sockets.tcp_mem_pages,
            mem_available_kib: procfs::meminfo_kib("MemAvailable:").unwrap_or(0),
            syn_retrans: counter("TCPSynRetrans"),
            listen_overflows: counter("ListenOverflows"),
            listen_drops: counter("ListenDrops"),
        }
    }
}

/// The kernel's side of a run: a reading before the first connect and one
/// with every connection open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSide {
    /// Before the first connect.
    pub before: KernelReading,
    /// Once every connection was open (before the measured window).
    pub during: KernelReading,
}

impl KernelSide {
    /// SYNs sent again while the connections opened.
    pub fn syn_retransmits(&self) -> u64 {
        self.during
            .syn_retrans
            .saturating_sub(self.before.syn_retrans)
    }

    /// Accept-queue overflows while the connections opened.
    pub fn listen_overflows(&self) -> u64 {
        self.during
            .listen_overflows
            .saturating_sub(self.before.listen_overflows)
    }

    /// How far `MemAvailable` fell, in KiB (0 if it rose).
    pub fn memory_fell_kib(&self) -> u64 {
        self.before
            .mem_available_kib
            .saturating_sub(self.during.mem_available_kib)
    }

    /// Adds another machine's figures (`bench merge`): the totals of
    /// several machines' kernels.
    pub fn add(&mut self, other: &KernelSide) {
        for (mine, theirs) in [
            (&mut self.before, &other.before),
            (&mut self.during, &other.during),
        ] {
            mine.sockets += theirs.sockets;
            mine.tcp_inuse += theirs.tcp_inuse;
            mine.tcp_tw += theirs.tcp_tw;
            mine.tcp_mem_pages += theirs.tcp_mem_pages;
            mine.mem_available_kib += theirs.mem_available_kib;
            mine.syn_retrans += theirs.syn_retrans;
            mine.listen_overflows += theirs.listen_overflows;
            mine.listen_drops += theirs.listen_drops;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_taken_over_the_run() {
        let side = KernelSide {
            before: KernelReading {
                sockets: 1,
                syn_retrans: 2,
                mem_available_kib: 1000,
                ..KernelReading::default()
            },
            during: KernelReading {
                sockets: 9,
                syn_retrans: 5,
                mem_available_kib: 400,
                ..KernelReading::default()
            },
        };
        assert_eq!(side.syn_retransmits(), 3);
        assert_eq!(side.memory_fell_kib(), 600);
    }
}
