//! The start-up line, `listening tcp=ADDR udp=ADDR`, with its one reader
//! beside its writer.
//!
//! It is the first line a server prints on stdout, and part of the contract:
//! tests, benches and scripts wait for it to learn the ports that port 0
//! picked. `off` stands for a disabled endpoint. Any program that prints this
//! line (a course step, the C reference server) can be driven like the real
//! servers.

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::str::FromStr;

/// The addresses a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// The TCP listener's address, or `None` for `tcp=off`.
    pub tcp: Option<SocketAddr>,
    /// The UDP socket's address, or `None` for `udp=off`.
    pub udp: Option<SocketAddr>,
}

impl Listening {
    /// Prints the line on stdout and flushes it, so that a reader at the
    /// other end of a pipe sees it at once.
    ///
    /// # Errors
    /// Only if stdout cannot be written.
    pub fn announce(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{self}")?;
        out.flush()
    }
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
        write!(f, "listening tcp={} udp={}", show(self.tcp), show(self.udp))
    }
}

/// A line that is not a listening line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseListeningError(String);

impl fmt::Display for ParseListeningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a listening line: {}", self.0)
    }
}

impl std::error::Error for ParseListeningError {}

impl FromStr for Listening {
    type Err = ParseListeningError;

    /// Reads `listening tcp=A udp=B` (each an address or `off`), nothing more.
    fn from_str(line: &str) -> Result<Listening, ParseListeningError> {
        let bad = |why: &str| ParseListeningError(format!("{why} in {line:?}"));
        let mut words = line.split_whitespace();
        if words.next() != Some("listening") {
            return Err(bad("no leading `listening`"));
        }
        let mut endpoint = |key: &str| -> Result<Option<SocketAddr>, ParseListeningError> {
            let value = words
                .next()
                .and_then(|w| w.strip_prefix(key))
                .ok_or_else(|| bad(&format!("`{key}` expected")))?;
            if value == "off" {
                return Ok(None);
            }
            value
                .parse()
                .map(Some)
                .map_err(|_| bad(&format!("`{value}` is not an address")))
        };
        let tcp = endpoint("tcp=")?;
        let udp = endpoint("udp=")?;
        match words.next() {
            Some(_) => Err(bad("extra words")),
            None => Ok(Listening { tcp, udp }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_reads_what_the_writer_writes_and_nothing_else() {
        for line in [
            "listening tcp=127.0.0.1:8080 udp=127.0.0.1:8080",
            "listening tcp=[::1]:9 udp=off",
            "listening tcp=off udp=127.0.0.1:1",
        ] {
            let parsed: Listening = line.parse().unwrap();
            assert_eq!(parsed.to_string(), line);
        }
        for bad in [
            "listen tcp=off udp=off",
            "listening udp=off tcp=off",
            "listening tcp=nowhere udp=off",
            "listening tcp=off",
            "listening tcp=off udp=off extra",
        ] {
            let error = bad.parse::<Listening>().expect_err(bad);
            let said = error.to_string();
            assert!(
                said.starts_with("not a listening line: ") && said.contains(&format!("{bad:?}")),
                "{said}"
            );
        }
    }
}
