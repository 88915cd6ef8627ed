//! Trace lines on the per-message path, at no cost when tracing is off.
//!
//! `RUST_LOG=trace` shows every read, event and transition, and the release
//! binary keeps that: the trace is part of what the project teaches. A
//! disabled `log::trace!` is cheap to test (an atomic load and a compare),
//! but its format arguments are built in line, and on a path run for every
//! message that code takes registers and stack from the work around it.
//! Measured with the cost bench: 17 user-space instructions per echoed
//! message for the two per-message lines while tracing was off, against a
//! build with trace compiled out.
//!
//! So on that path a line is tested against a plain flag that the reactor
//! reads once per wake-up (`Ctx::tracing`), and formatted in a cold
//! function out of line: the common path keeps one test and one branch.

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
