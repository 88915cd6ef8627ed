//! Trace lines on the per-message path, at little cost when tracing is off.
//!
//! `RUST_LOG=trace` shows every read, event and transition, and the release
//! binary keeps that: the trace is part of what the project teaches. A
//! disabled `log::trace!` is cheap to test (an atomic load and a compare),
//! but its format arguments are built in line, and on a path run for every
//! message that code takes registers and stack from the work around it.
//!
//! So on that path a line is tested against a plain flag that the reactor
//! reads once per wake-up (`Ctx::tracing`), and formatted in a cold
//! function out of line: the common path keeps one test and one branch.
//!
//! Not nothing: the cost bench measures the disabled trace lines, this
//! macro's included, at
//! [18](../../docs/benchmarks/cost.md "What the disabled trace lines cost") user-space instructions
//! per echoed message against a build with trace compiled out
//! ([216](../../docs/benchmarks/cost.md "trace lines compiled in") against
//! [198](../../docs/benchmarks/cost.md "trace compiled out"), each rounded: the 18 is the
//! difference of the unrounded counts). The cost table has no figure for
//! plain `trace!` on this path, so what the macro saves is not measured.
//!
//! **The rule, for every trace line of the reactor.** A line run for every
//! wake-up, event, read or datagram (`wake:`, a connection's event, a
//! read, a read after our FIN, a used read budget, a UDP datagram) is a
//! `hot_trace!`. Every other line, run once in a connection's life or on a
//! path that is already slow (an accept, a state change, EOF, a partial
//! write, a flush of owed bytes), is a plain `log::trace!`: `trace!` tests
//! the level itself before it builds anything, so it is never wrapped in
//! `if log_enabled!`; and off the hot path what its inline code costs does
//! not show, so it needs no flag passed down to it.

/// `trace!` on the per-message path: `hot_trace!(flag, "format", args...)`
/// logs only when `flag` (the per-wake-up `tracing` flag) is set, and builds
/// the line out of line.
macro_rules! hot_trace {
    ($tracing:expr, $($arg:tt)+) => {
        if $tracing {
            $crate::reactor::hot_trace::out_of_line(|| log::trace!($($arg)+));
        }
    };
}
pub(crate) use hot_trace;

/// Runs `line` in a function the compiler keeps apart from the hot path.
#[cold]
#[inline(never)]
pub fn out_of_line(line: impl FnOnce()) {
    line();
}

/// The readiness an event reports, for the trace log: `readable writable
/// read_closed error`, as far as set.
pub fn describe(event: &mio::event::Event) -> String {
    let flags = [
        (event.is_readable(), "readable"),
        (event.is_writable(), "writable"),
        (event.is_read_closed(), "read_closed"),
        (event.is_error(), "error"),
    ];
    let set: Vec<&str> = flags
        .iter()
        .filter(|(is_set, _)| *is_set)
        .map(|(_, name)| *name)
        .collect();
    set.join(" ")
}
