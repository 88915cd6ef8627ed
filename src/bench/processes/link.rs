//! A load-generator process's end of the link to its parent
//! (`bench --coordinated PID`, started by `bench --processes N`).
//!
//! The protocol is three kinds of lines: the process prints `@progress UP
//! MESSAGES` once a second (`progress.rs`), prints [`READY`] once its
//! connections are open and then waits for [`GO`] on stdin before its clock
//! starts, and ends with its JSON report. A process whose parent dies is
//! stopped by the orphan rule every child of this program follows
//! (`children::watch_parent`: SIGTERM when the parent dies); while it waits
//! for its word, the closed stdin says the same (the read returns
//! end-of-file, and the process stops instead of running on alone).

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
