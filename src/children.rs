//! Children: this program run again as a process of its own, for the
//! supervisor of `serve --workers N` and for `bench --processes N`.
//!
//! Both re-execute this binary rather than fork: after `fork` a Rust
//! process may safely do almost nothing but `exec`, and re-executing keeps
//! `unsafe` out. Both need the same three things, kept here once:
//!
//! * **spawn** ([`spawn_self`]): the child's command line is built by the
//!   caller from its *parsed* flags (never by editing the parent's own
//!   argv as strings, which mangles a value that looks like a flag, such
//!   as `--greeting --tcp`); its stdout is read on a thread of its own,
//!   which passes each line on as [`Heard::Line`] and says
//!   [`Heard::Gone`] when the pipe closes; a child may get a process group
//!   of its own (`serve --workers` does: see `workers.rs`);
//! * **one orphan rule** ([`watch_parent`]): a child asks the kernel for
//!   SIGTERM when its parent dies (`PR_SET_PDEATHSIG`), then checks that its
//!   parent is still the one that started it (it may have died before the
//!   request was made). The kernel ties the request to the *thread* that
//!   spawned the child, not to the process, so both parents spawn their
//!   children from their main thread, which lives as long as they do;
//! * **generations**: a slot's child may be replaced (a worker restarted),
//!   and a line or an exit report from the one before must not be taken for
//!   the new one's, so every report carries the generation it was spawned
//!   with.

use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Sender;

use rustix::process::Signal;

/// What a child's stdout reader reports.
#[derive(Debug)]
pub enum Heard {
    /// A line from child `slot`, spawned as `generation`.
    Line {
        /// The child's slot.
        slot: usize,
        /// Which spawn of that slot.
        generation: u64,
        /// The line, without its newline.
        line: String,
    },
    /// Its stdout closed: the child has exited, or is about to.
    Gone {
        /// The child's slot.
        slot: usize,
        /// Which spawn of that slot.
        generation: u64,
    },
}

/// How to start a child.
#[derive(Debug, Clone, Copy)]
pub struct Spawn {
    /// Its slot among its parent's children.
    pub slot: usize,
    /// Which spawn of that slot this is.
    pub generation: u64,
    /// Give it a pipe on stdin (else `/dev/null`).
    pub with_stdin: bool,
    /// Start it in a process group of its own.
    pub own_process_group: bool,
}

/// A running child, and the write end of its stdin if it has one.
#[derive(Debug)]
pub struct ChildProcess {
    /// The process.
    pub child: Child,
    /// Its stdin, if [`Spawn::with_stdin`].
    pub stdin: Option<ChildStdin>,
}

/// Starts this program with `args`, and a thread that passes its stdout
/// lines to `tell`; its stderr is this process's.
///
/// # Errors
/// If this program cannot be found or started, or the thread not spawned.
pub fn spawn_self(args: &[String], how: Spawn, tell: &Sender<Heard>) -> io::Result<ChildProcess> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(args)
        .stdin(if how.with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if how.own_process_group {
        command.process_group(0);
    }
    let mut child = command.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout pipe"))?;
    let stdin = child.stdin.take();
    let tell = tell.clone();
    let Spawn {
        slot, generation, ..
    } = how;
    std::thread::Builder::new()
        .name(format!("child-{slot}"))
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let heard = Heard::Line {
                    slot,
                    generation,
                    line,
                };
                if tell.send(heard).is_err() {
                    return;
                }
            }
            let _ = tell.send(Heard::Gone { slot, generation });
        })?;
    Ok(ChildProcess { child, stdin })
}

/// The orphan rule, called first thing in a child: SIGTERM when the parent
/// dies, and the parent must still be `parent` (the PID that started it).
///
/// # Errors
/// If the request fails, or the parent is already gone.
pub fn watch_parent(parent: u32) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
    let now = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    if now != parent {
        return Err(io::Error::other(format!(
            "the parent process (pid {parent}) is gone"
        )));
    }
    Ok(())
}
