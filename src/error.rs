//! Why a server stopped with an error: exit status 1.
//!
//! Bad command-line input is found earlier, as a `ConfigError` (exit status
//! 2). A [`ServerError`] is what is left: a socket that cannot be bound (the
//! address is in use), signal handlers that cannot be installed, stdout that
//! cannot be written, or, while running, a failure of `poll` itself. A
//! failure on one connection is never one: it ends that connection only.

use std::fmt;
use std::io;

/// A failure that stops a server, with what was being attempted.
#[derive(Debug)]
pub struct ServerError {
    /// What was being attempted, e.g. `cannot bind TCP 127.0.0.1:8080`.
    pub context: String,
    /// The operating system's reason.
    pub source: io::Error,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// Wraps an I/O error with what was being attempted.
    pub fn new(context: impl Into<String>, source: io::Error) -> Self {
        ServerError {
            context: context.into(),
            source,
        }
    }
}
