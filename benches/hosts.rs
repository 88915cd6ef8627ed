//! Past one machine, proven on this one: `cargo bench --bench hosts`.
//!
//! Three server hosts (`reactor-echo serve --workers 2` each), one balancer
//! host and two client hosts (`reactor-echo bench` each, their reports
//! merged with `bench merge`), in network namespaces joined by two bridges
//! (`tests/integration/support/hosts.rs` builds and tears them down;
//! `docs/scaling.md` reads the tables). The experiments:
//!
//! 1. **Balancers**: direct to one server host, through HAProxy in TCP mode,
//!    through nftables' DNAT (`numgen inc`, and `jhash ip saddr . tcp
//!    sport`): messages/s, p50/p99, every byte verified, the connections'
//!    spread over the server hosts, and the CPU of the balancer (HAProxy's
//!    process) and of the whole machine per message (nftables works in the
//!    kernel, in no process of its own).
//! 2. **Idle connections held through each balancer**, then each verified:
//!    the servers' memory per connection and HAProxy's (it holds two sockets
//!    per connection; four HAProxy processes share the port, as one process
//!    may hold only 20,000 descriptors here).
//! 3. **A server host dies** mid-run (its supervisor and its workers
//!    killed at once with SIGKILL): what the clients see, how long until new connections stop
//!    going there (HAProxy's health checks: every 500 ms, out after 2
//!    failures; nftables has no health check), and whether any verified
//!    byte was ever wrong.
//! 4. **A server host is drained** for maintenance (HAProxy's runtime API
//!    `disable server`, or the nftables map rewritten without it), then
//!    its `serve` gets SIGTERM: failed connects and errors for the clients,
//!    and how its connections ended.
//!
//! The servers run as a user would run them for a benchmark from known load
//! hosts: exposed (their addresses are not loopback), with the per-source
//! limit off (through HAProxy every connection comes from the balancer's one
//! address); experiment 1 also measures the cost of leaving the guards at
//! their defaults.
//!
//! Needs root, iproute2, nftables and HAProxy; without them it says so in
//! one line and exits 1. `-- --quick` (short runs, 2,000 idle connections)
//! writes under `target/bench-partial/`; a complete run writes
//! `docs/benchmarks/hosts.md`. Every namespace and process is gone after
//! any run, Ctrl-C and a panic included (the network's `Drop`; Ctrl-C is
//! turned into an ordinary end).

mod common;

#[path = "hosts/stage.rs"]
mod stage;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reactor_echo::bench::procfs;
use rustix::process::Signal;

use common::support::hosts;
use common::{build_release, cannot_run, machine_line, publish};
use stage::{Balancer, CLIENTS, SERVERS, Stage};

struct Options {
    quick: bool,
    seconds: u64,
    connections: usize,
    idle: usize,
}

fn options() -> Options {
    let quick = std::env::args().any(|a| a == "--quick");
    Options {
        quick,
        seconds: if quick { 2 } else { 8 },
        connections: if quick { 50 } else { 200 },
        idle: if quick { 2_000 } else { 30_000 },
    }
}

/// The machine's busy CPU time so far, in seconds.
fn machine_busy() -> f64 {
    procfs::machine_busy().map_or(f64::NAN, |t| t.as_secs_f64())
}

fn get(report: &BTreeMap<String, f64>, key: &str) -> f64 {
    report.get(key).copied().unwrap_or(f64::NAN)
}

/// Experiment 1: throughput and latency through each balancer.
fn balancers(bin: &str, o: &Options, stop: &Arc<AtomicBool>) -> String {
    let mut out = format!(
        "### 1. Through each balancer\n\n{} connections from each of {CLIENTS} client hosts, closed loop, 64 B, {} s after 1 s of warm-up; servers exposed with `--max-per-source off`:\n\n\
         | balancer | msg/s | p50 us | p99 us | errors | wrong bytes | failed connects | connections per server host | balancer CPU us/msg | machine CPU us/msg |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n",
        o.connections, o.seconds
    );
    let seconds = o.seconds.to_string();
    let conns = o.connections.to_string();
    let mut runs: Vec<(Balancer, &[&str], &str)> = vec![
        (Balancer::Direct, &["--max-per-source", "off"], ""),
        (Balancer::Haproxy, &["--max-per-source", "off"], ""),
        (Balancer::NftNumgen, &["--max-per-source", "off"], ""),
        (Balancer::NftJhash, &["--max-per-source", "off"], ""),
    ];
    runs.push((
        Balancer::Haproxy,
        &[],
        " (the servers' guards at their defaults)",
    ));
    for (balancer, guards, note) in runs {
        let Some(mut stage) = Stage::ready(bin, stop, guards, balancer) else {
            break;
        };
        let (cpu0, busy0) = (stage.haproxy_cpu(), machine_busy());
        let report = stage.load(
            &Stage::target(balancer),
            &[
                "--connections",
                &conns,
                "--duration",
                &seconds,
                "--warmup",
                "1",
            ],
        );
        let (cpu1, busy1) = (stage.haproxy_cpu(), machine_busy());
        let spread: Vec<String> = stage
            .stop_servers()
            .iter()
            .map(|s| s.map_or("?".into(), |s| s.stats.accepted.to_string()))
            .collect();
        let messages = get(&report, "messages");
        // The CPU deltas include the warm-up second: per message over all
        // the messages of warm-up and window, the warm-up's at the rate.
        let all = messages * (o.seconds + 1) as f64 / o.seconds as f64;
        let per = |secs: f64| secs * 1e6 / all;
        let balancer_cpu = if balancer == Balancer::Haproxy {
            format!("{:.2}", per(cpu1 - cpu0))
        } else {
            "(no process)".into()
        };
        out += &format!(
            "| {}{note} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {balancer_cpu} | {:.2} |\n",
            balancer.name(),
            get(&report, "messages_per_sec"),
            get(&report, "latency_us.p50"),
            get(&report, "latency_us.p99"),
            get(&report, "errors"),
            get(&report, "mismatches"),
            get(&report, "failed"),
            spread.join(" / "),
            per(busy1 - busy0),
        );
    }
    out
}

/// Experiment 2: idle connections held through each balancer, then each
/// verified.
fn idle(bin: &str, o: &Options, stop: &Arc<AtomicBool>) -> String {
    let per_client = (o.idle / CLIENTS).to_string();
    let hold = if o.quick { 6 } else { 30 };
    let mut out = format!(
        "\n### 2. {} idle connections held through each balancer, then each verified\n\n\
         Each client host opens half and holds them {hold} s, then one verified round trip on each; memory read {} s into the hold:\n\n\
         | balancer | round trips verified | failed connects | closed by the servers' per-source limit | all open after s | server hosts' RSS per connection | HAProxy RSS per connection |\n|---|---:|---:|---:|---:|---:|---:|\n",
        o.idle,
        hold * 2 / 3
    );
    let limit_off: &[&str] = &["--max-per-source", "off"];
    let runs: [(Balancer, &[&str], &str); 4] = [
        (Balancer::Direct, limit_off, ""),
        (Balancer::Haproxy, limit_off, ""),
        (Balancer::NftNumgen, limit_off, ""),
        (
            Balancer::Haproxy,
            &[],
            " (the servers' guards at their defaults)",
        ),
    ];
    for (balancer, guards, note) in runs {
        let Some(mut stage) = Stage::ready(bin, stop, guards, balancer) else {
            break;
        };
        let (servers0, haproxy0) = (stage.servers_rss_kib(), stage.haproxy_rss_kib());
        let hold_s = hold.to_string();
        let pids = stage.start_load(
            &Stage::target(balancer),
            Duration::from_secs(if o.quick { 3 } else { 10 }),
            &[
                "--idle",
                "--connections",
                &per_client,
                "--duration",
                &hold_s,
                "--warmup",
                "0",
                "--connect-timeout",
                "60",
                "--reply-timeout",
                "60",
            ],
        );
        // The clocks start once the opening time is over; the hold then runs.
        std::thread::sleep(Duration::from_secs(
            if o.quick { 3 } else { 10 } + hold * 2 / 3,
        ));
        let (servers1, haproxy1) = (stage.servers_rss_kib(), stage.haproxy_rss_kib());
        let report = stage.collect(&pids);
        let rejected: f64 = stage
            .stop_servers()
            .iter()
            .map(|s| s.map_or(f64::NAN, |s| s.stats.rejected_source as f64))
            .sum();
        let per_conn = |a: u64, b: u64| (b.saturating_sub(a) * 1024) as f64 / o.idle as f64;
        let haproxy = if balancer == Balancer::Haproxy {
            format!("{:.0} B", per_conn(haproxy0, haproxy1))
        } else {
            "-".into()
        };
        out += &format!(
            "| {}{note} | {:.0} of {} | {:.0} | {rejected:.0} | {:.1} | {:.0} B | {haproxy} |\n",
            balancer.name(),
            get(&report, "idle_ok"),
            o.idle,
            get(&report, "failed"),
            get(&report, "opened_s"),
            per_conn(servers0, servers1),
        );
    }
    out
}

/// Experiments 3 and 4: a host dies, a host is drained.
fn failures(bin: &str, o: &Options, stop: &Arc<AtomicBool>) -> String {
    let seconds = (o.seconds * 3 / 2).max(3);
    let mut out = format!(
        "\n### 3 and 4. A server host dies, a server host is drained\n\n\
         Churn from both client hosts ({} connections each at a time: connect, one verified round trip, close), {seconds} s; the event at {} s:\n\n\
         | balancer | event | cycles | failed connects | errors | wrong bytes | new connections still sent to the host for |\n|---|---|---:|---:|---:|---:|---|\n",
        o.connections,
        seconds / 3
    );
    let conns = o.connections.to_string();
    let secs = seconds.to_string();
    for balancer in [Balancer::Haproxy, Balancer::NftNumgen] {
        for drain in [false, true] {
            let Some(mut stage) = Stage::ready(bin, stop, &["--max-per-source", "off"], balancer)
            else {
                break;
            };
            let host = stage.servers[0];
            let pids = stage.start_load(
                &Stage::target(balancer),
                Duration::from_secs(1),
                &[
                    "--churn",
                    "--connections",
                    &conns,
                    "--duration",
                    &secs,
                    "--warmup",
                    "0",
                    "--connect-timeout",
                    "5",
                ],
            );
            // The clocks start after a second; the event a third into the run.
            std::thread::sleep(Duration::from_secs(1 + seconds / 3));
            let event = Instant::now();
            let routed = if drain {
                match balancer {
                    Balancer::Haproxy => {
                        stage.haproxy_api("disable server servers/s1");
                    }
                    _ => stage.nft(&hosts::nft_rules(&[1, 2], "numgen")),
                }
                // New connections go elsewhere now; the ones in flight
                // finish, then the host's serve gets SIGTERM and its grace
                // period.
                std::thread::sleep(Duration::from_millis(500));
                stage.net.signal(host, Signal::TERM);
                "0 s (taken out before the SIGTERM)".to_owned()
            } else {
                // The whole host at once: its supervisor and its workers
                // (killed alone, the supervisor's workers would get SIGTERM
                // from the kernel and finish their connections gracefully).
                let workers = procfs::live_children(host);
                for pid in std::iter::once(host).chain(workers) {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                        let _ = rustix::process::kill_process(pid, Signal::KILL);
                    }
                }
                match balancer {
                    Balancer::Haproxy => {
                        // Until HAProxy's checks mark it down.
                        let mut down = None;
                        while event.elapsed() < Duration::from_secs(10) {
                            // Down only once every process says so.
                            let states = stage.haproxy_api("show servers state servers");
                            let all_down = states.iter().all(|state| {
                                state
                                    .lines()
                                    .find(|l| l.split_whitespace().nth(3) == Some("s1"))
                                    .and_then(|l| l.split_whitespace().nth(5))
                                    == Some("0")
                            });
                            if all_down {
                                down = Some(event.elapsed());
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        down.map_or("more than 10 s".to_owned(), |d| {
                            format!("{:.2} s (health checks)", d.as_secs_f64())
                        })
                    }
                    _ => "the rest of the run (no health check)".to_owned(),
                }
            };
            let report = stage.collect(&pids);
            out += &format!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {routed} |\n",
                balancer.name(),
                if drain {
                    "drained, then SIGTERM"
                } else {
                    "dies (every process killed)"
                },
                get(&report, "messages"),
                get(&report, "failed"),
                get(&report, "errors"),
                get(&report, "mismatches"),
            );
        }
    }
    out
}

fn main() {
    let o = options();
    if let Some(why) = hosts::cannot_run_because() {
        cannot_run("hosts", &why);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).expect("a signal handler");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&root);
    let mut out = format!(
        "# Past one machine: hosts in network namespaces\n\n`cargo bench --bench hosts`: {SERVERS} server hosts (`serve --workers 2` each), a balancer host, {CLIENTS} client hosts (`bench`, reports merged with `bench merge`), joined by two bridges in network namespaces, 1500-byte MTU; {}.\n\n",
        machine_line()
    );
    out += &balancers(&bin, &o, &stop);
    out += &idle(&bin, &o, &stop);
    out += &failures(&bin, &o, &stop);
    if stop.load(Ordering::Relaxed) {
        eprintln!("interrupted: everything torn down, nothing written");
        std::process::exit(130);
    }
    print!("{out}");
    let path = publish(&root, "hosts.md", &out, !o.quick);
    eprintln!("wrote {}", path.display());
}
