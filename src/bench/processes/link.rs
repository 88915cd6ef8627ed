//! A load-generator process's end of the link to its parent
//! (`bench --coordinated`, started by `bench --processes N`).
//!
//! The protocol is three kinds of lines: the process prints `@progress UP
//! MESSAGES` once a second (`progress.rs`), prints [`READY`] once its
//! connections are open and then waits for [`GO`] on stdin before its clock
//! starts, and ends with its JSON report. Waiting on stdin is also how a
//! process learns that its parent has gone: the read returns end-of-file,
//! and the process stops instead of running on alone.

use std::io::{self, BufRead, Write};

/// Sent to the parent: every connection of this process is open.
pub const READY: &str = "@ready";
/// Sent by the parent: start the clock.
pub const GO: &str = "go";

/// Tells the parent this process is ready, and waits for the word to start.
///
/// # Errors
/// If the parent has gone (its end of stdin closed) or said something else.
pub fn ready_and_wait() -> io::Result<()> {
    {
        let mut out = io::stdout().lock();
        writeln!(out, "{READY}")?;
        out.flush()?;
    }
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    match line.trim() {
        GO => Ok(()),
        "" => Err(io::Error::other("the parent process is gone")),
        other => Err(io::Error::other(format!(
            "the parent process said '{other}', not '{GO}'"
        ))),
    }
}
