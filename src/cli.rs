//! The command line, declared with clap's derive API.
//!
//! Each subcommand is one way of running the project. Both servers (`serve`,
//! and the blocking one that will stand beside it) share [`ServerArgs`], so
//! their flags cannot drift apart. clap reports a bad flag or value on stderr
//! as `error: ...` and exits with status 2, which is the contract for bad
//! start-up input; values clap cannot check alone (addresses) are validated in
//! [`crate::config`].

use clap::{Args, Parser, Subcommand};

use crate::service::Mode;

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
    Serve(ServerArgs),
    /// Run the blocking server (std::net): one client at a time, or a thread per connection.
    Blocking(BlockingArgs),
    /// An interactive TCP or UDP client: lines from stdin, replies on stdout.
    Client(crate::client::ClientArgs),
    /// A verifying load generator: many connections, every reply byte checked.
    Bench(crate::bench::BenchArgs),
}

/// `reactor-echo blocking` flags: a model, then every flag of `serve`.
#[derive(Debug, Clone, Args)]
pub struct BlockingArgs {
    /// iterative: one TCP client at a time (the classic two loops); threads: a thread per connection.
    #[arg(long, value_enum, default_value_t = crate::blocking::Model::Iterative)]
    pub model: crate::blocking::Model,
    /// The server flags, the same as for `serve`.
    #[command(flatten)]
    pub server: ServerArgs,
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

    /// Close a TCP connection that has neither received nor sent for this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub idle_timeout: u64,

    /// Bytes owed to one connection before the server stops reading from it.
    #[arg(long, value_name = "BYTES", default_value_t = 65536, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub max_pending: u64,

    /// Print the stats line every this many seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub stats_interval: u64,
}
