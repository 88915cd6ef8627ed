//! The `reactor-echo` binary: parse the flags, start logging, run the
//! subcommand, and turn any start-up failure into one `error: ...` line.
//!
//! Exit status: 0 after a clean shutdown, 2 for bad command-line input
//! (clap's own errors use 2 as well), 1 for a failure such as a bind error.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use reactor_echo::cli::{Cli, Command, ServeArgs, ServerArgs};
use reactor_echo::config::ServerConfig;
use reactor_echo::error::ServerError;
use reactor_echo::stats::Stats;
use reactor_echo::{bench, blocking, client, proactor, reactor, workers};

fn main() -> ExitCode {
    let cli = Cli::parse();
    start_logging(&cli);
    match cli.command {
        Command::Serve(args) => {
            if let Some(supervisor) = args.worker_of {
                if let Err(e) = workers::become_worker(supervisor) {
                    return fail(&e, 1);
                }
            }
            match args.workers {
                1 => run_server(&args.server, reactor::serve),
                n => run_server(&args.server, |config| {
                    let command = worker_command("serve", &args);
                    workers::supervise(config, n, &command).map(|summed| summed.stats)
                }),
            }
        }
        Command::Proactor(args) => {
            if let Some(supervisor) = args.worker_of {
                if let Err(e) = workers::become_worker(supervisor) {
                    return fail(&e, 1);
                }
            }
            match args.workers {
                1 => run_server(&args.server, |config| {
                    proactor::serve(config).map(|counted| counted.stats)
                }),
                n => run_server(&args.server, |config| {
                    let command = worker_command("proactor", &args);
                    workers::supervise(config, n, &command).map(|summed| summed.stats)
                }),
            }
        }
        Command::Blocking(args) => {
            run_server(&args.server, |config| blocking::serve(config, args.model))
        }
        Command::Client(args) => match client::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e, e.exit_code()),
        },
        Command::Bench(args) => match bench::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            // The report was printed; it says how many bytes were wrong.
            Ok(false) => fail(&"replies did not match what was sent", 1),
            Err(e @ bench::BenchError::Usage(_)) => fail(&e, 2),
            Err(e) => fail(&e, 1),
        },
    }
}

/// How a worker of `serve --workers` (or `proactor --workers`) is started:
/// the subcommand and the flags built from the parsed command line.
fn worker_command(subcommand: &str, args: &ServeArgs) -> Vec<String> {
    let mut command = vec![subcommand.to_owned()];
    command.extend(args.server.worker_flags());
    command
}

/// Logs go to stderr; stdout carries only the `listening` and `stats` lines.
/// A worker of `serve --workers N` (which shares its supervisor's stderr)
/// writes its slot into each line, so that N workers' lines can be told
/// apart: `[... INFO  reactor_echo::reactor worker 2] conn=7 ...`.
fn start_logging(cli: &Cli) {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.target(env_logger::Target::Stderr);
    if let Command::Serve(ServeArgs {
        worker_slot: Some(slot),
        ..
    })
    | Command::Proactor(ServeArgs {
        worker_slot: Some(slot),
        ..
    }) = &cli.command
    {
        let slot = *slot;
        logger.format(move |buf, record| {
            let style = buf.default_level_style(record.level());
            writeln!(
                buf,
                "[{} {style}{:<5}{style:#} {} worker {slot}] {}",
                buf.timestamp(),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    logger.init();
}

/// Validates the flags (exit 2 on bad input) and runs a server (exit 1 if it
/// cannot start).
fn run_server(
    args: &ServerArgs,
    serve: impl FnOnce(&ServerConfig) -> Result<Stats, ServerError>,
) -> ExitCode {
    let config = match args.to_config() {
        Ok(config) => config,
        Err(e) => return fail(&e, 2),
    };
    match serve(&config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e, 1),
    }
}

/// Writes `error: ...` straight to stderr (not through the logger, so it shows
/// whatever RUST_LOG says) and returns the exit status.
fn fail(err: &dyn std::fmt::Display, code: u8) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {err}");
    ExitCode::from(code)
}
