//! `/proc`: every file of it the load generator reads, in one module.
//!
//! The load generator measures what no socket tells it: the CPU time and
//! the memory of the server's process tree, the kernel's sockets and
//! counters, the machine it runs on. Linux says all of it in text files
//! under `/proc` (proc(5)), and each file has its own small format; this
//! module reads them, and nothing else in `bench/` opens a `/proc` path.
//! It is public, so that the tests and benches read the same files the
//! same way.
//!
//! Two rules hold throughout. A process that exits while it is read is not
//! an error of the reader: a descendant that is gone is skipped, and a
//! figure of the whole machine that cannot be read is `None` (or zeros,
//! where the caller says so). And every parser is a function of the text
//! alone, so that it is tested on a sample without the file.
//!
//! (The `procfs` crate reads most of these, but not `/proc/net/sockstat`
//! nor the `TcpExt` counters; a dependency for half the files would still
//! leave the other half here.)

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// Clock ticks per second of the times in `/proc/PID/stat`: Linux's
/// `USER_HZ`, 100 on every architecture it exports to user space (see
/// proc(5), "times ... measured in clock ticks").
const TICKS_PER_SECOND: u64 = 100;

/// The running children of `pid`, from every one of its threads' lists
/// (`/proc/PID/task/TID/children`: a child is listed under the thread
/// that started it).
pub fn live_children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// The CPU time of `pid`, user and system, each with that of its children
/// that have exited and been waited for (`utime + cutime`, `stime +
/// cstime` of `/proc/PID/stat`).
///
/// # Errors
/// If `/proc/PID/stat` cannot be read or parsed (no such process).
pub fn cpu_time(pid: u32) -> io::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_time(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat")))
}

/// User and system time, children's included, from a `/proc/PID/stat` line.
fn parse_cpu_time(stat: &str) -> Option<(Duration, Duration)> {
    // The command name may hold spaces; the fields restart after ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11) // state .. majflt, then utime is field 14 of proc(5)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    let ticks = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Some((ticks(utime + cutime), ticks(stime + cstime)))
}

/// Whether `pid` is a live process: it exists and is not a zombie (state
/// `Z` in `/proc/PID/stat`, exited but not yet waited for).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The resident set of process `pid` and of its running descendants, in
/// KiB (`serve --workers N`: the workers hold the connections).
///
/// # Errors
/// If the process is gone or `/proc` cannot be read (a descendant that
/// exits meanwhile is skipped).
pub fn resident_kib(pid: u32) -> io::Result<u64> {
    let mut total = resident_kib_alone(pid)?;
    for child in live_children(pid) {
        total += resident_kib(child).unwrap_or(0);
    }
    Ok(total)
}

/// The resident set of process `pid` alone, in KiB: `Rss` of
/// `/proc/PID/smaps_rollup`, which walks the page tables. Not `VmRSS` of
/// `/proc/PID/status`: since Linux 6.2 that one is kept in per-CPU counters
/// that may lag by many pages per process, which over 60 workers is
/// megabytes, as much as a million idle connections cost.
///
/// # Errors
/// If the process is gone, or the file holds no `Rss` line.
pub fn resident_kib_alone(pid: u32) -> io::Result<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    field_kib(&rollup, "Rss:")
        .ok_or_else(|| io::Error::other(format!("no Rss in /proc/{pid}/smaps_rollup")))
}

/// The first number of the line `field` (`Threads:`, `VmHWM:`, ...) of
/// `/proc/PID/status`, if the process and the line exist.
pub fn status_number(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_kib(&status, field)
}

/// How many descriptors `pid` has open, and how many of them are sockets
/// (`/proc/PID/fd`, whose links to sockets read `socket:[INODE]`).
pub fn open_descriptors(pid: u32) -> Option<(usize, usize)> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let (mut all, mut sockets) = (0, 0);
    for entry in entries.flatten() {
        all += 1;
        if std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        {
            sockets += 1;
        }
    }
    Some((all, sockets))
}

/// The `Name: value [kB]` lines of `/proc/meminfo`, `status` and
/// `smaps_rollup`: the first number on the line that starts with `name`.
fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l[name.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The machine's socket figures from `/proc/net/sockstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sockstat {
    /// Sockets of every kind in use (`sockets: used`).
    pub sockets: u64,
    /// TCP sockets in use (`TCP: inuse`).
    pub tcp_inuse: u64,
    /// TCP sockets in TIME-WAIT (`TCP: tw`).
    pub tcp_tw: u64,
    /// Pages held by TCP buffers (`TCP: mem`).
    pub tcp_mem_pages: u64,
}

/// Reads `/proc/net/sockstat` (zeros if it cannot be read).
pub fn sockstat() -> Sockstat {
    std::fs::read_to_string("/proc/net/sockstat")
        .map_or_else(|_| Sockstat::default(), |t| parse_sockstat(&t))
}

/// Each line of sockstat is a section and `name value` pairs.
fn parse_sockstat(text: &str) -> Sockstat {
    let mut s = Sockstat::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let section = words.next().unwrap_or("");
        let pairs: Vec<&str> = words.collect();
        let value = |name: &str| {
            pairs
                .chunks(2)
                .find(|p| p[0] == name)
                .and_then(|p| p.get(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        match section {
            "sockets:" => s.sockets = value("used"),
            "TCP:" => {
                s.tcp_inuse = value("inuse");
                s.tcp_tw = value("tw");
                s.tcp_mem_pages = value("mem");
            }
            _ => {}
        }
    }
    s
}

/// The whole machine's busy CPU time since boot, every CPU's added: the
/// first line of `/proc/stat` (`cpu  user nice system idle iowait irq
/// softirq steal ...`), all but idle and iowait. The time the kernel spends
/// in no process (a packet's softirq, a firewall rule) shows here and in no
/// process's own times.
pub fn machine_busy() -> Option<Duration> {
    parse_machine_busy(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_busy(stat: &str) -> Option<Duration> {
    parse_cpu_line(stat, "cpu").map(|all| all.busy())
}

/// One CPU's time since boot, from its line of `/proc/stat` (`cpuN user
/// nice system idle iowait irq softirq steal ...`), in four parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuSplit {
    /// User space (user and nice).
    pub user: Duration,
    /// The kernel on a process's behalf: its syscalls, and the network
    /// work it does in its own context.
    pub system: Duration,
    /// Interrupts and softirqs counted apart from any process (with
    /// `CONFIG_IRQ_TIME_ACCOUNTING`; otherwise they land in `system`).
    pub interrupts: Duration,
    /// Idle and waiting for I/O.
    pub idle: Duration,
}

impl CpuSplit {
    /// The time spent since `earlier`, part by part.
    pub fn since(self, earlier: CpuSplit) -> CpuSplit {
        CpuSplit {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            interrupts: self.interrupts.saturating_sub(earlier.interrupts),
            idle: self.idle.saturating_sub(earlier.idle),
        }
    }

    /// Everything but idle.
    pub fn busy(&self) -> Duration {
        self.user + self.system + self.interrupts
    }
}

/// CPU `cpu`'s time since boot, split ([`CpuSplit`]); `None` if there is
/// no such CPU or `/proc/stat` cannot be read. A bench that pins a program
/// to one CPU reads there what the program cost, the softirqs it caused
/// included, which no process's own times show.
pub fn cpu_split(cpu: usize) -> Option<CpuSplit> {
    parse_cpu_split(&std::fs::read_to_string("/proc/stat").ok()?, cpu)
}

fn parse_cpu_split(stat: &str, cpu: usize) -> Option<CpuSplit> {
    parse_cpu_line(stat, &format!("cpu{cpu}"))
}

/// The line of `/proc/stat` named `name` (`cpu` for the whole machine,
/// `cpuN` for one CPU), split ([`CpuSplit`]); `None` if there is none or it
/// has fewer than eight times.
fn parse_cpu_line(stat: &str, name: &str) -> Option<CpuSplit> {
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else {
        return None;
    };
    let time = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Some(CpuSplit {
        user: time(user + nice),
        system: time(system + steal),
        interrupts: time(irq + softirq),
        idle: time(idle + iowait),
    })
}

/// A line of `/proc/meminfo` in KiB (`MemAvailable:`, `MemTotal:`, ...).
pub fn meminfo_kib(name: &str) -> Option<u64> {
    field_kib(&std::fs::read_to_string("/proc/meminfo").ok()?, name)
}

/// The `TcpExt` counters of `/proc/net/netstat` (`TCPSynRetrans`,
/// `ListenOverflows`, ...) by name; empty if the file cannot be read.
pub fn tcp_ext_counters() -> BTreeMap<String, u64> {
    std::fs::read_to_string("/proc/net/netstat")
        .map(|text| parse_counters(&text, "TcpExt:"))
        .unwrap_or_default()
}

/// One section of `/proc/net/netstat` (or `/proc/net/snmp`): two lines
/// starting with `section`, the names and then the values, in the same order.
fn parse_counters(text: &str, section: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(section));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return BTreeMap::new();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
        .collect()
}

/// The kernel's SYN backlog (`net.ipv4.tcp_max_syn_backlog`): half-open
/// connections a listener holds before it drops SYNs.
pub fn syn_backlog() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_syn_backlog")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The machine's host name (`/proc/sys/kernel/hostname`), which a report
/// carries so that `bench merge` can tell machines apart.
pub fn host_name() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(text.trim().to_owned()).filter(|name| !name.is_empty())
}

/// The running kernel's release (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The CPUs this process may run on (`taskset` shows here):
/// `Cpus_allowed_list` of `/proc/self/status`.
pub fn allowed_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| l.trim().to_owned())
}

/// Cores online on the machine (not only those this process may use): the
/// `processor` lines of `/proc/cpuinfo`.
pub fn online_cores() -> Option<usize> {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sockstat_meminfo_and_netstat() {
        let s = parse_sockstat(
            "sockets: used 8\nTCP: inuse 3 orphan 0 tw 2 alloc 4 mem 195\nUDP: inuse 0 mem 0\n",
        );
        assert_eq!(
            (s.sockets, s.tcp_inuse, s.tcp_tw, s.tcp_mem_pages),
            (8, 3, 2, 195)
        );
        assert_eq!(
            field_kib(
                "MemTotal: 10 kB\nMemAvailable:   1234 kB\n",
                "MemAvailable:"
            ),
            Some(1234)
        );
        let netstat = "TcpExt: SyncookiesSent ListenOverflows TCPSynRetrans\n\
                       TcpExt: 0 5 17\nIpExt: InNoRoutes\nIpExt: 0\n";
        let counters = parse_counters(netstat, "TcpExt:");
        assert_eq!(counters.get("TCPSynRetrans"), Some(&17));
        assert_eq!(counters.get("ListenOverflows"), Some(&5));
        assert_eq!(counters.get("Nope"), None);
        assert!(parse_counters("", "TcpExt:").is_empty());
    }

    #[test]
    fn reads_the_times_after_the_command_name() {
        // Field 2, the command, may hold spaces and parentheses.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 30 7 3 20 0 1 0";
        assert_eq!(
            parse_cpu_time(stat),
            Some((Duration::from_millis(2570), Duration::from_millis(330)))
        );
        assert_eq!(parse_cpu_time("42 (x) S 1"), None);
    }

    #[test]
    fn the_machine_is_busy_in_all_but_idle_and_iowait() {
        let stat = "cpu  100 2 30 9000 400 5 6 7 0 0\ncpu0 50 1 15 4500 200 2 3 3 0 0\n";
        assert_eq!(parse_machine_busy(stat), Some(Duration::from_millis(1500)));
        assert_eq!(parse_machine_busy("cpu  1 2 3\n"), None);
        assert_eq!(parse_machine_busy("intr 1 2 3 4 5 6 7 8\n"), None);
    }

    #[test]
    fn one_cpus_line_is_split_in_four() {
        let stat = "cpu  100 2 30 9000 400 5 6 7 0 0\ncpu0 50 1 15 4500 200 2 3 3 0 0\ncpu1 9 0 8 7 6 5 4 0 0 0\n";
        let ms = Duration::from_millis;
        let cpu0 = CpuSplit {
            user: ms(510),
            system: ms(180),
            interrupts: ms(50),
            idle: ms(47_000),
        };
        assert_eq!(parse_cpu_split(stat, 0), Some(cpu0));
        assert_eq!(parse_cpu_split(stat, 1).map(|c| c.busy()), Some(ms(260)));
        assert_eq!(parse_cpu_split(stat, 2), None);
        assert_eq!(cpu0.since(CpuSplit::default()), cpu0);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_ok() && cpu_time(u32::MAX).is_err());
        assert!(is_alive(pid) && !is_alive(u32::MAX));
        let kib = resident_kib(pid).expect("own /proc entry");
        assert!(kib > 100, "{kib} KiB");
        assert!(status_number(pid, "Threads:").is_some_and(|n| n >= 1));
        assert!(open_descriptors(pid).is_some_and(|(all, _)| all >= 3));
    }
}
