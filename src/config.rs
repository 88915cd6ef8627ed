//! A validated server configuration, built from the command-line flags.
//!
//! Everything that can be wrong with the user's input is found here, before a
//! socket is opened, and reported as one [`ConfigError`] whose message names
//! the flag and the value. After this point the servers deal only with
//! resolved addresses and limits that make sense.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::cli::ServerArgs;
use crate::service::Service;

/// The address used for UDP when `--tcp` is off and `--udp` is not given.
const DEFAULT_UDP: &str = "127.0.0.1:8080";

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

impl ServerConfig {
    /// Validates the flags and resolves the addresses.
    ///
    /// # Errors
    /// [`ConfigError`] for an address that does not resolve, or when both
    /// protocols are off.
    pub fn from_args(args: &ServerArgs) -> Result<ServerConfig, ConfigError> {
        let tcp = parse_endpoint("--tcp", &args.tcp)?;
        let udp = match (&args.udp, tcp) {
            (Some(text), _) => parse_endpoint("--udp", text)?,
            (None, Endpoint::At(addr)) => Endpoint::At(addr),
            (None, Endpoint::Off) => parse_endpoint("--udp", DEFAULT_UDP)?,
        };
        if tcp == Endpoint::Off && udp == Endpoint::Off {
            return Err(ConfigError::NothingToServe);
        }
        let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        Ok(ServerConfig {
            tcp,
            udp,
            service: Service::new(args.mode, &args.greeting),
            max_connections: args.max_connections.map(|n| n as usize),
            idle_timeout: seconds(args.idle_timeout),
            max_pending: args.max_pending as usize,
            stats_interval: seconds(args.stats_interval),
        })
    }
}

/// `off`, or anything std resolves (`127.0.0.1:8080`, `[::1]:0`,
/// `localhost:8080`); the first resolved address is used.
fn parse_endpoint(flag: &'static str, text: &str) -> Result<Endpoint, ConfigError> {
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
    use clap::Parser;

    fn config(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let mut argv = vec!["reactor-echo", "serve"];
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv).expect("flags parse");
        match cli.command {
            crate::cli::Command::Serve(server) => ServerConfig::from_args(&server),
            _ => unreachable!("the test parses `serve`"),
        }
    }

    #[test]
    fn udp_defaults_to_the_tcp_address() {
        let c = config(&["--tcp", "127.0.0.1:9000"]).unwrap();
        assert_eq!(c.udp, c.tcp);
        let c = config(&["--tcp", "off"]).unwrap();
        assert_eq!(c.udp.addr().unwrap().to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn bad_address_names_flag_and_input() {
        let err = config(&["--udp", "not-an-address"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid --udp address 'not-an-address'")
        );
    }

    #[test]
    fn both_off_is_refused() {
        assert_eq!(
            config(&["--tcp", "off", "--udp", "off"]).unwrap_err(),
            ConfigError::NothingToServe
        );
    }
}
