//! Driving a server: the C load generator (`loadgen`, one of the C
//! reference programs) and `reactor-echo bench`, each pinned to CPU 1,
//! with the argument lists the benches share, and their JSON reports read
//! back with the project's own reader
//! ([`reactor_echo::bench::report::parse_json_numbers`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use reactor_echo::bench::measure::cpu_window::CpuTime;
use reactor_echo::bench::report::parse_json_numbers;
use reactor_echo::stats::Stats;

use super::{Server, ServerSpec, strings};

/// The C load generator pinned to CPU 1 (the server has CPU 0), aimed at
/// `127.0.0.1:port`: add its arguments, then run or spawn it.
pub fn loadgen_command(lg: &Path, port: u16) -> Command {
    loadgen_command_under(&[], lg, port)
}

/// [`loadgen_command`] started under `wrapper` (`ip netns exec NAME`: the
/// generator in the network namespace where the server listens).
pub fn loadgen_command_under(wrapper: &[String], lg: &Path, port: u16) -> Command {
    let mut words: Vec<OsString> = wrapper.iter().map(OsString::from).collect();
    words.extend(["taskset", "-c", "1"].map(OsString::from));
    words.push(lg.as_os_str().to_owned());
    let mut command = Command::new(&words[0]);
    command
        .args(&words[1..])
        .args(["--addr", &format!("127.0.0.1:{port}")]);
    command
}

/// Runs the C load generator against `127.0.0.1:port` with `args`; the
/// numbers of its JSON report (empty if it printed none).
pub fn loadgen(loadgen: &Path, port: u16, args: &[String]) -> BTreeMap<String, f64> {
    loadgen_under(&[], loadgen, port, args)
}

/// [`loadgen`] under `wrapper` (see [`loadgen_command_under`]).
pub fn loadgen_under(
    wrapper: &[String],
    loadgen: &Path,
    port: u16,
    args: &[String],
) -> BTreeMap<String, f64> {
    let out = loadgen_command_under(wrapper, loadgen, port)
        .args(args)
        .output()
        .expect("run loadgen");
    bench_report(&out.stdout)
}

/// The standard closed-loop run of the C load generator against `port`:
/// `conns` connections, 64-byte messages, 1 s warm-up, `duration` seconds.
pub fn closed_loop(lg: &Path, port: u16, conns: usize, duration: f64) -> BTreeMap<String, f64> {
    loadgen(lg, port, &closed_loop_args(conns, duration))
}

/// The C load generator's arguments for [`closed_loop`].
pub fn closed_loop_args(conns: usize, duration: f64) -> Vec<String> {
    strings(&[
        "--conns",
        &conns.to_string(),
        "--size",
        "64",
        "--duration",
        &duration.to_string(),
        "--warmup",
        "1",
    ])
}

/// Starts `kind` under `wrapper`, has the C load generator complete
/// `messages` 64-byte messages on `conns` connections (120 s at most), and
/// stops it; its final stats line, if it printed one.
pub fn serve_messages(
    kind: &ServerSpec,
    wrapper: &[String],
    lg: &Path,
    conns: usize,
    messages: u64,
) -> Option<Stats> {
    let server = Server::start_pinned(kind, wrapper);
    loadgen(lg, server.port(), &messages_args(conns, messages));
    server.stop_for_stats()
}

/// The C load generator's arguments for `messages` 64-byte messages on
/// `conns` connections, 120 s at most.
pub fn messages_args(conns: usize, messages: u64) -> Vec<String> {
    strings(&[
        "--conns",
        &conns.to_string(),
        "--size",
        "64",
        "--messages",
        &messages.to_string(),
        "--duration",
        "120",
    ])
}

/// The keys [`run_with_cpu_split`] adds to the load generator's report: the
/// server's user and system microseconds per message.
pub const USER_US: &str = "server_user_us_per_msg";
pub const SYSTEM_US: &str = "server_system_us_per_msg";

/// The standard closed loop ([`closed_loop`]) against `server`, with
/// the server's CPU per message over the measured window split into user
/// and system time: the load generator's report, plus [`USER_US`] and
/// [`SYSTEM_US`] (NaN when `/proc` could not be read).
///
/// The load generator reads the server's user + system time at the start
/// and the end of its measured window (`--server-pid`), the exact window of
/// its message count; the split between the two comes from `/proc/PID/stat`
/// read here before and after the whole run (connects and warm-up
/// included: the same work, a few percent more of it), since the generator
/// reports only the sum.
pub fn run_with_cpu_split(
    lg: &Path,
    server: &Server,
    conns: usize,
    duration: f64,
) -> BTreeMap<String, f64> {
    run_args_with_cpu_split(lg, server, closed_loop_args(conns, duration))
}

/// [`run_with_cpu_split`] with the load generator's arguments given (a
/// message size or a pipeline of the caller's).
pub fn run_args_with_cpu_split(
    lg: &Path,
    server: &Server,
    args: Vec<String>,
) -> BTreeMap<String, f64> {
    run_under_with_cpu_split(&[], lg, server, args)
}

/// [`run_args_with_cpu_split`] with the load generator under `wrapper`
/// (see [`loadgen_command_under`]).
pub fn run_under_with_cpu_split(
    wrapper: &[String],
    lg: &Path,
    server: &Server,
    mut args: Vec<String>,
) -> BTreeMap<String, f64> {
    let pid = server.server_pid();
    args.extend(["--server-pid".to_owned(), pid.to_string()]);
    let start = CpuTime::of(pid);
    let mut r = loadgen_under(wrapper, lg, server.port(), &args);
    let spent = start.and_then(|a| Ok(CpuTime::of(pid)?.since(a)));
    let get = |key: &str| r.get(key).copied().unwrap_or(f64::NAN);
    let window_us = get("server_cpu_pct") / 100.0 * get("duration_s") * 1e6 / get("msgs");
    let user_share = spent.map_or(f64::NAN, |t| {
        t.user.as_secs_f64() / (t.user + t.system).as_secs_f64()
    });
    r.insert(USER_US.to_owned(), window_us * user_share);
    r.insert(SYSTEM_US.to_owned(), window_us * (1.0 - user_share));
    r
}

/// Runs `reactor-echo bench --json` pinned to CPU 1 against `port` for
/// `duration` seconds after `warmup`, with `args`; the report's numbers
/// (empty if it printed none).
pub fn bench_json(
    bin: &str,
    port: u16,
    args: &[&str],
    duration: f64,
    warmup: f64,
) -> BTreeMap<String, f64> {
    let out = bench_command(bin, port, args, duration, warmup).output();
    let Ok(out) = out else {
        return BTreeMap::new();
    };
    bench_report(&out.stdout)
}

/// The command [`bench_json`] runs: `reactor-echo bench --json` pinned to
/// CPU 1, aimed at `127.0.0.1:port`, with `args`.
pub fn bench_command(bin: &str, port: u16, args: &[&str], duration: f64, warmup: f64) -> Command {
    let mut command = Command::new("taskset");
    command
        .args(["-c", "1", bin, "bench", "--json"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--duration", &duration.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(args)
        .env("RUST_LOG", "warn");
    command
}

/// The numbers of the JSON report in a generator's standard output (the
/// last line that starts with `{`; empty if there is none).
pub fn bench_report(stdout: &[u8]) -> BTreeMap<String, f64> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(parse_json_numbers)
        .unwrap_or_default()
}
