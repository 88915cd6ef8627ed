//! The command line, declared with clap's derive API: the edge of the
//! program.
//!
//! Each subcommand is one way of running the project. Both servers share
//! [`ServerArgs`], so their flags cannot drift apart; flags that only `serve`
//! has live in [`ServeArgs`]. clap reports a bad flag or value on stderr as
//! `error: ...` and exits with status 2, which is the contract for bad
//! start-up input; values clap cannot check alone (addresses) are validated
//! by [`ServerArgs::to_config`], which builds the [`ServerConfig`] the
//! servers take. The domain's enums (`Mode`, `Model`, `Expect`) know nothing
//! of clap: their `ValueEnum` impls are at the end of this file, so the
//! dependencies point one way (command line, then configuration, then
//! servers).

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bench::payload::Expect;
use crate::blocking::Model;
use crate::config::{self, ConfigError, Endpoint, ServerConfig};
use crate::exposure::{Amplification, GuardFlags, Guards, Setting, SourceCheck};
use crate::service::{Mode, Service};

/// A TCP and UDP echo / uppercase / greeting server on one single-threaded mio reactor.
#[derive(Debug, Parser)]
#[command(name = "reactor-echo", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reactor server: TCP and UDP on one thread and one mio::Poll.
    Serve(ServeArgs),
    /// Run the blocking server (std::net): one client at a time, or a thread per connection.
    Blocking(BlockingArgs),
    /// Run the proactor server: the same contract on one io_uring (completion, not readiness).
    Proactor(ServeArgs),
    /// An interactive TCP or UDP client: lines from stdin, replies on stdout.
    Client(crate::client::ClientArgs),
    /// A verifying load generator: many connections, every reply byte checked.
    Bench(crate::bench::BenchArgs),
}

/// `reactor-echo blocking` flags: a model, then every flag of `serve`.
#[derive(Debug, Clone, Args)]
pub struct BlockingArgs {
    /// iterative: one TCP client at a time (the classic two loops); threads: a thread per connection.
    #[arg(long, value_enum, default_value_t = Model::Iterative)]
    pub model: Model,
    /// The server flags, the same as for `serve`.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `reactor-echo serve` flags: every server flag, and those only the
/// reactor has.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The server flags, the same as for `blocking`.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Worker processes, each a complete reactor with its own sockets on the
    /// same port (SO_REUSEPORT), under one supervising process; `auto`: one
    /// per CPU. 1: the one reactor, in this process.
    #[arg(long, value_name = "N|auto", default_value = "1", value_parser = parse_workers)]
    pub workers: usize,

    /// Internal: this process is a worker of the supervisor with this PID,
    /// and exits when that process dies.
    #[arg(long, value_name = "PID", hide = true)]
    pub worker_of: Option<u32>,

    /// Internal: this worker's slot under its supervisor, written on each
    /// of its log lines so that the lines of N workers can be told apart.
    #[arg(long, value_name = "SLOT", hide = true, requires = "worker_of")]
    pub worker_slot: Option<usize>,
}

/// `--workers`: a count from 1 to 1,024, or `auto` (the CPUs this process
/// may run on).
fn parse_workers(text: &str) -> Result<usize, String> {
    if text == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match text.parse::<usize>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err(format!(
            "'{text}' is not a worker count (1 to 1024, or auto)"
        )),
    }
}

/// The flags every server accepts.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TCP address to listen on, or `off`. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8080")]
    pub tcp: String,

    /// UDP address to bind, or `off` [default: the --tcp address; 127.0.0.1:8080 when --tcp is off].
    #[arg(long, value_name = "ADDR|off")]
    pub udp: Option<String>,

    /// What the server does with the bytes it receives.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,

    /// The greeting sent by `--mode greet` (its UTF-8 bytes, no newline added).
    #[arg(long, value_name = "TEXT", default_value = "Hello, Client!")]
    pub greeting: String,

    /// Most TCP connections served at once; more are accepted and closed
    /// [default: the open-file limit less a small reserve].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

    /// Close a TCP connection that has neither received nor sent for this many seconds (0: never) [default: 60 when exposed, else never].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub idle_timeout: Option<u64>,

    /// Bytes owed to one connection before the server stops reading from it.
    #[arg(long, value_name = "BYTES", default_value_t = 65536, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub max_pending: u64,

    /// Print the stats line every this many seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub stats_interval: u64,

    /// Bind with SO_REUSEPORT: several servers (or `serve --workers`) share
    /// the address, and the kernel spreads connections (and UDP flows) over
    /// them by a hash of the addresses.
    #[arg(long)]
    pub reuse_port: bool,

    /// Turn the exposure guards on as if an address were not loopback (they are on by default on any other address; docs/security.md).
    #[arg(long)]
    pub exposed: bool,

    /// Which UDP sources are never answered [default: strict when exposed, else basic].
    #[arg(long, value_enum, value_name = "CHECK")]
    pub udp_source_check: Option<SourceCheck>,

    /// Whether a UDP reply may be larger than the datagram it answers [default: refuse when exposed, else allow].
    #[arg(long, value_enum, value_name = "RULE")]
    pub udp_amplification: Option<Amplification>,

    /// UDP replies per second per source /24 (IPv4) or /56 (IPv6), or off [default: 100 when exposed, else off].
    #[arg(long, value_name = "N|off", value_parser = parse_setting)]
    pub udp_rate: Option<Setting<u32>>,

    /// With --udp-rate: the most replies one source prefix may get at once [default: the rate].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub udp_burst: Option<u32>,

    /// TCP connections per source address; past it a connection is accepted and closed at once, or off [default: 100 when exposed, else off].
    #[arg(long, value_name = "N|off", value_parser = parse_setting)]
    pub max_per_source: Option<Setting<u32>>,
}

/// A guard's value: a positive number, or `off`.
fn parse_setting(text: &str) -> Result<Setting<u32>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Setting::Off);
    }
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Setting::On(n)),
        _ => Err(format!("'{text}' is not a positive number or off")),
    }
}

impl ServerArgs {
    /// The flags a worker of `serve --workers` is given from these, in
    /// `--flag=value` form (so a value that looks like a flag, a greeting
    /// of `--tcp`, stays a value): every flag but those the supervisor
    /// decides for each worker (`--tcp`, `--udp`, `--stats-interval`,
    /// `--reuse-port`). The one place, beside their declarations above,
    /// that knows these flags' names.
    pub fn worker_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--mode={}", self.mode),
            format!("--greeting={}", self.greeting),
            format!("--max-pending={}", self.max_pending),
        ];
        let setting = |s: &Setting<u32>| match s {
            Setting::On(n) => n.to_string(),
            Setting::Off | Setting::Default => "off".to_owned(),
        };
        let optional = [
            (
                "--max-connections",
                self.max_connections.map(|n| n.to_string()),
            ),
            ("--idle-timeout", self.idle_timeout.map(|n| n.to_string())),
            (
                "--udp-source-check",
                self.udp_source_check.map(|c| value_name(&c)),
            ),
            (
                "--udp-amplification",
                self.udp_amplification.map(|a| value_name(&a)),
            ),
            ("--udp-rate", self.udp_rate.as_ref().map(setting)),
            ("--udp-burst", self.udp_burst.map(|n| n.to_string())),
            (
                "--max-per-source",
                self.max_per_source.as_ref().map(setting),
            ),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                flags.push(format!("{flag}={value}"));
            }
        }
        if self.exposed {
            flags.push("--exposed".to_owned());
        }
        flags
    }

    /// Validates the flags and resolves the addresses.
    ///
    /// # Errors
    /// [`ConfigError`] for an address that does not resolve, or when both
    /// protocols are off.
    pub fn to_config(&self) -> Result<ServerConfig, ConfigError> {
        let tcp = config::parse_endpoint("--tcp", &self.tcp)?;
        let udp = match (&self.udp, tcp) {
            (Some(text), _) => config::parse_endpoint("--udp", text)?,
            (None, Endpoint::At(addr)) => Endpoint::At(addr),
            (None, Endpoint::Off) => config::parse_endpoint("--udp", config::DEFAULT_UDP)?,
        };
        if tcp == Endpoint::Off && udp == Endpoint::Off {
            return Err(ConfigError::NothingToServe);
        }
        let seconds = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        let guards = Guards::resolve(
            &GuardFlags {
                exposed: self.exposed,
                source_check: self.udp_source_check,
                amplification: self.udp_amplification,
                udp_rate: self.udp_rate.unwrap_or_default(),
                udp_burst: self.udp_burst,
                max_per_source: self.max_per_source.unwrap_or_default(),
            },
            &[tcp.addr(), udp.addr()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        );
        Ok(ServerConfig {
            tcp,
            udp,
            service: Service::new(self.mode, &self.greeting),
            max_connections: self.max_connections.map(|n| n as usize),
            idle_timeout: guards.idle_timeout(self.idle_timeout),
            guards,
            max_pending: self.max_pending as usize,
            stats_interval: seconds(self.stats_interval),
            reuse_port: self.reuse_port,
        })
    }
}

/// A `ValueEnum` for a domain enum: its variants, each with its flag value
/// and help line.
macro_rules! value_enum {
    ($ty:ty { $($variant:path => $name:literal: $help:literal),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($variant => PossibleValue::new($name).help($help)),+
                })
            }
        }
    };
}

value_enum!(Mode {
    Mode::Echo => "echo": "Every byte back, unchanged, in order",
    Mode::Upper => "upper": "Unicode uppercase (full case mapping); invalid UTF-8 passes unchanged",
    Mode::Greet => "greet": "A fixed greeting in reply to the first bytes, then the write side closes",
});

value_enum!(Model {
    Model::Iterative => "iterative": "One client at a time: the classic two loops",
    Model::Threads => "threads": "One thread per connection",
});

value_enum!(SourceCheck {
    SourceCheck::Basic => "basic": "Only the five ports of services that answer anything (0, 7, 13, 17, 19)",
    SourceCheck::Strict => "strict": "Also ports below 1024 and well-known answering services, multicast, broadcast, unspecified and reserved sources",
});

value_enum!(Amplification {
    Amplification::Allow => "allow": "A reply may be larger than its datagram",
    Amplification::Refuse => "refuse": "A reply larger than its datagram is not sent",
});

/// A value enum's flag word.
fn value_name(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

value_enum!(Expect {
    Expect::Echo => "echo": "Replies are identical to the request",
    Expect::Upper => "upper": "Replies are the request in uppercase",
});

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let mut argv = vec!["reactor-echo", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        match cli.command {
            Command::Serve(serve) => serve.server.to_config(),
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

    /// A worker's flags, built from the parsed ones, parse back to the same
    /// configuration: every server flag is passed on, and a value that looks
    /// like a flag stays a value.
    #[test]
    fn worker_flags_parse_back_to_the_same_configuration() {
        let first = [
            "reactor-echo",
            "serve",
            "--mode",
            "greet",
            "--greeting=--tcp x",
            "--max-connections",
            "7",
            "--idle-timeout",
            "3",
            "--max-pending",
            "99",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "off",
        ];
        let Command::Serve(args) = Cli::try_parse_from(first).expect("parse").command else {
            panic!("not serve");
        };
        let mut again = vec!["reactor-echo".to_owned(), "serve".to_owned()];
        again.extend(args.server.worker_flags());
        again.extend(["--tcp=127.0.0.1:0".to_owned(), "--udp=off".to_owned()]);
        let Command::Serve(back) = Cli::try_parse_from(&again).expect("parse back").command else {
            panic!("not serve");
        };
        let config = |a: &ServeArgs| format!("{:?}", a.server.to_config().expect("valid"));
        assert_eq!(config(&back), config(&args));
        assert_eq!(back.server.greeting, "--tcp x");
    }

    #[test]
    fn enum_values_are_the_documented_words() {
        let names = |values: Vec<PossibleValue>| -> Vec<String> {
            values.iter().map(|v| v.get_name().to_owned()).collect()
        };
        assert_eq!(
            names(
                Mode::value_variants()
                    .iter()
                    .filter_map(Mode::to_possible_value)
                    .collect()
            ),
            ["echo", "upper", "greet"]
        );
        assert_eq!(
            names(
                Model::value_variants()
                    .iter()
                    .filter_map(Model::to_possible_value)
                    .collect()
            ),
            ["iterative", "threads"]
        );
    }
}
