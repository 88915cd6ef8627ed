//! A server to run: a name, a program and its arguments. The one type for
//! "a server" that the tests and the benches share (the benches include this
//! file), so that the reactor, a blocking model, a Cargo example (a course
//! step), the C reference program or a worker setup are all driven alike:
//! start it, read its `listening` line, talk to it, signal it.

#![allow(dead_code)] // each user takes its own part

use std::path::PathBuf;

/// A server to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The name in test output and reports.
    pub name: String,
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments, before any a test or bench adds.
    pub args: Vec<String>,
}

impl ServerSpec {
    /// A server named `name`, run as `program args...`.
    pub fn new(name: &str, program: impl Into<PathBuf>, args: &[&str]) -> ServerSpec {
        ServerSpec {
            name: name.to_owned(),
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The whole command line, program first.
    pub fn command_line(&self) -> Vec<String> {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect()
    }
}
