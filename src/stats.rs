//! The server's counters and the exact `stats ...` line printed on stdout.
//!
//! The line is part of the contract (scripts and the tests parse it), so its
//! format is defined here once, with its one reader beside its writer:
//! `stats accepted=N rejected=N active=N closed_eof=N closed_reset=N
//! closed_idle=N bytes_in=N bytes_out=N udp_in=N udp_out=N udp_dropped=N
//! wakeups=N events=N max_batch=N reads=N reads_wouldblock=N writes=N
//! udp_refused=N udp_oversize=N udp_limited=N rejected_source=N`
//! ([`Stats`]'s `Display`, and `FromStr` to read it back).
//!
//! The last six fields are the reactor counting its own work, appended after
//! the first eleven so that a reader of those is not disturbed: how often
//! `poll` returned, the events it handed over (and the most in one
//! wake-up), and the `recv` and `send` calls on TCP connections (with the
//! `recv`s that found nothing). With them the cost model of one message
//! (two syscalls plus a share of `epoll_wait`) can be checked on a running
//! server, without strace. The blocking servers have no loop and print 0
//! for all six.
//!
//! The last four count what the exposure guards turned away
//! (`docs/security.md`): datagrams not answered because of where they came
//! from, because the reply would have been larger than the datagram, or
//! because their source was over its rate, and connections closed at once
//! because their source already held its share. All four stay 0 on
//! loopback unless `--exposed` (or a guard's own flag) turns a guard on.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use crate::close::CloseReason;

/// Counters kept by a server while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted and served (rejected ones excluded).
    pub accepted: u64,
    /// TCP connections accepted past the limit and closed at once.
    pub rejected: u64,
    /// TCP connections open right now.
    pub active: u64,
    /// Connections that ended with the peer's EOF (or greet's linger).
    pub closed_eof: u64,
    /// Connections ended by a reset or another I/O error.
    pub closed_reset: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle: u64,
    /// TCP bytes received.
    pub bytes_in: u64,
    /// TCP bytes sent.
    pub bytes_out: u64,
    /// UDP datagrams received.
    pub udp_in: u64,
    /// UDP datagrams sent.
    pub udp_out: u64,
    /// UDP datagrams dropped (reflection guard, full queue, send failure).
    pub udp_dropped: u64,
    /// Reactor: times `poll` returned (a wake-up of the loop).
    pub wakeups: u64,
    /// Reactor: events handled, over all wake-ups.
    pub events: u64,
    /// Reactor: the most events one wake-up handled.
    pub max_batch: u64,
    /// Reactor: `recv` calls on TCP connections.
    pub reads: u64,
    /// Reactor: the `recv` calls among them that found nothing (`EAGAIN`).
    pub reads_wouldblock: u64,
    /// Reactor: `send` calls on TCP connections.
    pub writes: u64,
    /// UDP datagrams not answered because of their source (a privileged
    /// or well-known answering port, multicast, broadcast, unspecified).
    pub udp_refused: u64,
    /// UDP datagrams not answered because the reply would have been larger
    /// than the datagram (amplification).
    pub udp_oversize: u64,
    /// UDP datagrams not answered because their source prefix was over its
    /// rate.
    pub udp_limited: u64,
    /// TCP connections accepted and closed at once because their source
    /// address already held `--max-per-source`.
    pub rejected_source: u64,
}

impl Stats {
    /// Counts a newly accepted connection.
    pub fn opened(&mut self) {
        self.accepted += 1;
        self.active += 1;
    }

    /// Counts the end of a connection that [`Stats::opened`] counted.
    pub fn closed(&mut self, reason: CloseReason) {
        self.active = self.active.saturating_sub(1);
        match reason {
            CloseReason::Eof => self.closed_eof += 1,
            CloseReason::Reset => self.closed_reset += 1,
            CloseReason::Idle => self.closed_idle += 1,
        }
    }

    /// Counts a connection turned away at the limit (never counted as opened).
    pub fn rejected(&mut self) {
        self.rejected += 1;
    }

    /// Adds another set of counters: how the stats of several servers (the
    /// workers of one) are summed into one line.
    pub fn add(&mut self, other: &Stats) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.active += other.active;
        self.closed_eof += other.closed_eof;
        self.closed_reset += other.closed_reset;
        self.closed_idle += other.closed_idle;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.udp_in += other.udp_in;
        self.udp_out += other.udp_out;
        self.udp_dropped += other.udp_dropped;
        self.wakeups += other.wakeups;
        self.events += other.events;
        self.max_batch = self.max_batch.max(other.max_batch);
        self.reads += other.reads;
        self.reads_wouldblock += other.reads_wouldblock;
        self.writes += other.writes;
        self.udp_refused += other.udp_refused;
        self.udp_oversize += other.udp_oversize;
        self.udp_limited += other.udp_limited;
        self.rejected_source += other.rejected_source;
    }

    /// Counts one wake-up of the loop that handed over `batch` events.
    pub fn woke(&mut self, batch: u64) {
        self.wakeups += 1;
        self.events += batch;
        self.max_batch = self.max_batch.max(batch);
    }

    /// Prints the stats line on stdout and flushes it, so that a reader at the
    /// other end of a pipe sees it at once.
    pub fn print_line(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{self}")?;
        out.flush()
    }
}

impl Stats {
    /// The fields in the order of the line, with their names: the one list
    /// that both the writer and the reader follow.
    fn fields(&self) -> [(&'static str, u64); 21] {
        [
            ("accepted", self.accepted),
            ("rejected", self.rejected),
            ("active", self.active),
            ("closed_eof", self.closed_eof),
            ("closed_reset", self.closed_reset),
            ("closed_idle", self.closed_idle),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
            ("udp_in", self.udp_in),
            ("udp_out", self.udp_out),
            ("udp_dropped", self.udp_dropped),
            ("wakeups", self.wakeups),
            ("events", self.events),
            ("max_batch", self.max_batch),
            ("reads", self.reads),
            ("reads_wouldblock", self.reads_wouldblock),
            ("writes", self.writes),
            ("udp_refused", self.udp_refused),
            ("udp_oversize", self.udp_oversize),
            ("udp_limited", self.udp_limited),
            ("rejected_source", self.rejected_source),
        ]
    }

    fn field_mut(&mut self, index: usize) -> Option<&mut u64> {
        Some(match index {
            0 => &mut self.accepted,
            1 => &mut self.rejected,
            2 => &mut self.active,
            3 => &mut self.closed_eof,
            4 => &mut self.closed_reset,
            5 => &mut self.closed_idle,
            6 => &mut self.bytes_in,
            7 => &mut self.bytes_out,
            8 => &mut self.udp_in,
            9 => &mut self.udp_out,
            10 => &mut self.udp_dropped,
            11 => &mut self.wakeups,
            12 => &mut self.events,
            13 => &mut self.max_batch,
            14 => &mut self.reads,
            15 => &mut self.reads_wouldblock,
            16 => &mut self.writes,
            17 => &mut self.udp_refused,
            18 => &mut self.udp_oversize,
            19 => &mut self.udp_limited,
            20 => &mut self.rejected_source,
            _ => return None,
        })
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stats")?;
        for (name, value) in self.fields() {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// A line that is not a stats line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStatsError(String);

impl fmt::Display for ParseStatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a stats line: {}", self.0)
    }
}

impl std::error::Error for ParseStatsError {}

impl FromStr for Stats {
    type Err = ParseStatsError;

    /// Reads a line written by `Display`: `stats`, then every field as
    /// `name=N`, in order, and nothing else.
    fn from_str(line: &str) -> Result<Stats, ParseStatsError> {
        let mut words = line.split_whitespace();
        let stats = Stats::read_fields(line, &mut words)?;
        match words.next() {
            Some(extra) => Err(ParseStatsError(format!("unexpected `{extra}` in {line:?}"))),
            None => Ok(stats),
        }
    }
}

impl Stats {
    /// Reads `stats` and every field, in order, from `words` (the words of
    /// `line`), and leaves whatever follows them: the one reader of the
    /// fields, for this line and for the supervisor's line that extends it
    /// (`crate::workers::SupervisedStats`).
    ///
    /// # Errors
    /// A [`ParseStatsError`] naming the first word that is not as expected.
    pub fn read_fields<'a>(
        line: &str,
        words: &mut impl Iterator<Item = &'a str>,
    ) -> Result<Stats, ParseStatsError> {
        let bad = |why: String| ParseStatsError(format!("{why} in {line:?}"));
        if words.next() != Some("stats") {
            return Err(bad("no leading `stats`".into()));
        }
        let mut stats = Stats::default();
        let names = Stats::default().fields().map(|(name, _)| name);
        for (index, name) in names.iter().enumerate() {
            let word = words
                .next()
                .ok_or_else(|| bad(format!("`{name}` missing")))?;
            let slot = stats
                .field_mut(index)
                .ok_or_else(|| bad("too many fields".into()))?;
            *slot = read_number(word, name).map_err(bad)?;
        }
        Ok(stats)
    }
}

impl Stats {
    /// Reads a line that extends this one: `stats`, every field, then the
    /// `N` fields `names`, in order, and nothing else (the supervisor's line,
    /// the proactor's). Returns the stats and the extra fields' values.
    ///
    /// # Errors
    /// A [`ParseStatsError`] naming the first word that is not as expected.
    pub fn read_extended<const N: usize>(
        line: &str,
        names: [&str; N],
    ) -> Result<(Stats, [u64; N]), ParseStatsError> {
        let mut words = line.split_whitespace();
        let stats = Stats::read_fields(line, &mut words)?;
        let mut values = [0; N];
        for (value, name) in values.iter_mut().zip(names) {
            *value = words
                .next()
                .ok_or_else(|| format!("`{name}` missing"))
                .and_then(|word| read_number(word, name))
                .map_err(|why| ParseStatsError(format!("{why} in {line:?}")))?;
        }
        match words.next() {
            Some(extra) => Err(ParseStatsError(format!("unexpected `{extra}` in {line:?}"))),
            None => Ok((stats, values)),
        }
    }
}

/// The value of `name=N`, or why the word is not that.
///
/// # Errors
/// A sentence naming the field and the word.
pub fn read_number(word: &str, name: &str) -> Result<u64, String> {
    let value = word
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(|| format!("`{name}=` expected, got `{word}`"))?;
    value
        .parse()
        .map_err(|_| format!("`{name}` is not a number"))
}

impl ParseStatsError {
    /// An error with this explanation.
    pub fn new(why: String) -> ParseStatsError {
        ParseStatsError(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_contract_format() {
        let mut stats = Stats::default();
        stats.opened();
        stats.opened();
        stats.closed(CloseReason::Reset);
        stats.rejected();
        stats.bytes_in = 5;
        assert_eq!(
            stats.to_string(),
            "stats accepted=2 rejected=1 active=1 closed_eof=0 closed_reset=1 closed_idle=0 \
             bytes_in=5 bytes_out=0 udp_in=0 udp_out=0 udp_dropped=0 \
             wakeups=0 events=0 max_batch=0 reads=0 reads_wouldblock=0 writes=0 \
             udp_refused=0 udp_oversize=0 udp_limited=0 rejected_source=0"
        );
    }

    #[test]
    fn wake_ups_count_events_and_keep_the_largest_batch() {
        let mut stats = Stats::default();
        stats.woke(3);
        stats.woke(0);
        stats.woke(2);
        assert_eq!((stats.wakeups, stats.events, stats.max_batch), (3, 5, 3));
        let mut sum = Stats::default();
        sum.woke(7);
        sum.add(&stats);
        assert_eq!((sum.wakeups, sum.events, sum.max_batch), (4, 12, 7));
    }

    /// Every counter of its own: each close reason moves its own count and
    /// `active`, a rejection moves only `rejected`; and summing two sets
    /// (the workers' one line) adds every counter and keeps the larger
    /// `max_batch`. Each field gets a different value, so a counter added
    /// to the wrong field, subtracted or left out changes the line.
    #[test]
    fn every_counter_is_counted_and_summed_on_its_own() {
        let mut stats = Stats::default();
        for _ in 0..6 {
            stats.opened();
        }
        stats.closed(CloseReason::Eof);
        for _ in 0..2 {
            stats.closed(CloseReason::Reset);
        }
        for _ in 0..3 {
            stats.closed(CloseReason::Idle);
        }
        stats.rejected();
        assert_eq!((stats.accepted, stats.active, stats.rejected), (6, 0, 1));
        assert_eq!(
            (stats.closed_eof, stats.closed_reset, stats.closed_idle),
            (1, 2, 3)
        );

        let names: Vec<String> = Stats::default()
            .to_string()
            .split_whitespace()
            .skip(1)
            .map(|field| field.trim_end_matches("=0").to_owned())
            .collect();
        let with = |value: &dyn Fn(u64) -> u64| -> Stats {
            let fields: Vec<String> = (1..)
                .zip(&names)
                .map(|(i, name)| format!("{name}={}", value(i)))
                .collect();
            format!("stats {}", fields.join(" "))
                .parse()
                .expect("a stats line")
        };
        let mut sum = with(&|i| i);
        sum.add(&with(&|i| 1000 * i));
        let expected = with(&|i| 1001 * i);
        let max_batch = names
            .iter()
            .position(|n| n == "max_batch")
            .expect("max_batch") as u64
            + 1;
        assert_eq!(
            sum.max_batch,
            1000 * max_batch,
            "the larger batch, not a sum"
        );
        sum.max_batch = expected.max_batch;
        assert_eq!(sum.to_string(), expected.to_string());
    }

    #[test]
    fn the_reader_reads_what_the_writer_writes_and_nothing_else() {
        let stats = Stats {
            accepted: 1,
            rejected: 2,
            active: 3,
            closed_eof: 4,
            closed_reset: 5,
            closed_idle: 6,
            bytes_in: 7,
            bytes_out: 8,
            udp_in: 9,
            udp_out: 10,
            udp_dropped: 11,
            wakeups: 12,
            events: 13,
            max_batch: 14,
            reads: 15,
            reads_wouldblock: 16,
            writes: 17,
            udp_refused: 18,
            udp_oversize: 19,
            udp_limited: 20,
            rejected_source: 21,
        };
        assert_eq!(stats.to_string().parse(), Ok(stats));
        let line = stats.to_string();
        for bad in [
            line.replace("stats ", "stat "),
            line.replace("active=3 ", ""),
            line.replace("active=3", "active=x"),
            line.replace("rejected=2 active=3", "active=3 rejected=2"),
            line.replace(" writes=17", ""),
            line.replace(" rejected_source=21", ""),
            format!("{line} extra=1"),
        ] {
            let said = bad.parse::<Stats>().expect_err(&bad).to_string();
            assert!(
                said.starts_with("not a stats line: ") && said.contains(&format!("{bad:?}")),
                "{said}"
            );
        }
    }
}
