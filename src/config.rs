//! A validated server configuration: what every server needs to start.
//!
//! The command line (`crate::cli`) builds it, and everything that can be
//! wrong with the user's input is found there or here, before a socket is
//! opened, and reported as one [`ConfigError`] whose message names the flag
//! and the value. After this point the servers deal only with resolved
//! addresses and limits that make sense. Dependencies point one way: the
//! command line knows this module, this module knows no command line.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::exposure::Guards;
use crate::service::Service;

/// The address used for UDP when `--tcp` is off and `--udp` is not given.
pub const DEFAULT_UDP: &str = "127.0.0.1:8080";

/// Where one protocol listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Disabled with `off`.
    Off,
    /// Bound to this address.
    At(SocketAddr),
}

impl Endpoint {
    /// The address, if the endpoint is enabled.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Endpoint::Off => None,
            Endpoint::At(addr) => Some(addr),
        }
    }
}

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The TCP listener's address.
    pub tcp: Endpoint,
    /// The UDP socket's address.
    pub udp: Endpoint,
    /// What to do with received bytes.
    pub service: Service,
    /// The connection limit; `None` means "derive it from the fd limit".
    pub max_connections: Option<usize>,
    /// Close connections idle for this long.
    pub idle_timeout: Option<Duration>,
    /// Bytes owed to a connection before reading from it pauses.
    pub max_pending: usize,
    /// How often to print the stats line while running.
    pub stats_interval: Option<Duration>,
    /// Bind with SO_REUSEPORT, to share the address with other servers.
    pub reuse_port: bool,
    /// The exposure guards (`crate::exposure`), resolved from the flags
    /// and the addresses.
    pub guards: Guards,
}

impl ServerConfig {
    /// Logs, at start-up, what the server does: its mode, and which
    /// exposure guards are on (with the idle timeout, the one guard kept
    /// outside [`Guards`]).
    pub fn log_service(&self) {
        log::info!("mode {}", self.service.mode());
        match self.idle_timeout {
            Some(idle) => log::info!("{}; idle timeout {idle:?}", self.guards),
            None => log::info!("{}; no idle timeout", self.guards),
        }
    }
}

/// A problem with the command-line input, reported before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// An address that does not parse or resolve.
    BadAddress {
        /// The flag it was given to (`--tcp`, `--udp`).
        flag: &'static str,
        /// What the user wrote.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Both protocols turned off.
    NothingToServe,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadAddress {
                flag,
                input,
                reason,
            } => write!(f, "invalid {flag} address '{input}': {reason}"),
            ConfigError::NothingToServe => {
                f.write_str("--tcp off and --udp off leave nothing to serve")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// `off`, or anything std resolves (`127.0.0.1:8080`, `[::1]:0`,
/// `localhost:8080`); the first resolved address is used.
///
/// # Errors
/// [`ConfigError::BadAddress`] naming `flag` and the input.
pub fn parse_endpoint(flag: &'static str, text: &str) -> Result<Endpoint, ConfigError> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Endpoint::Off);
    }
    let bad = |reason: String| ConfigError::BadAddress {
        flag,
        input: text.to_owned(),
        reason,
    };
    let mut addrs = text.to_socket_addrs().map_err(|e| bad(e.to_string()))?;
    addrs
        .next()
        .map(Endpoint::At)
        .ok_or_else(|| bad("it resolves to no address".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_and_addresses_parse_and_bad_input_names_flag_and_input() {
        assert_eq!(parse_endpoint("--tcp", "OFF"), Ok(Endpoint::Off));
        assert_eq!(
            parse_endpoint("--tcp", "127.0.0.1:9")
                .unwrap()
                .addr()
                .unwrap()
                .port(),
            9
        );
        let err = parse_endpoint("--udp", "not-an-address").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid --udp address 'not-an-address'")
        );
    }
}
