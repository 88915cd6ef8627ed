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

#[path = "../tests/integration/support/hosts.rs"]
mod hosts;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hosts::{FRONT, Network, PORT};
use reactor_echo::bench::procfs;
use reactor_echo::bench::report::parse_json_numbers;
use rustix::process::Signal;

use common::{build_release, cannot_run, machine_line, publish};

/// Server hosts and client hosts.
const SERVERS: usize = 3;
const CLIENTS: usize = 2;
/// HAProxy processes sharing the port (each below 20,000 descriptors).
const HAPROXIES: usize = 4;

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

/// The balancer in front of the servers.
#[derive(Clone, Copy, PartialEq)]
enum Balancer {
    Direct,
    Haproxy,
    NftNumgen,
    NftJhash,
}

impl Balancer {
    fn name(self) -> &'static str {
        match self {
            Balancer::Direct => "direct to one server host",
            Balancer::Haproxy => "HAProxy (TCP mode, round robin)",
            Balancer::NftNumgen => "nftables DNAT, numgen inc",
            Balancer::NftJhash => "nftables DNAT, jhash ip saddr . tcp sport",
        }
    }
}

/// One experiment's world: the network, the server hosts' supervisors,
/// the balancer's processes.
struct Stage {
    net: Network,
    bin: String,
    servers: Vec<u32>,
    haproxies: Vec<u32>,
    stop: Arc<AtomicBool>,
}

impl Stage {
    fn new(bin: &str, stop: &Arc<AtomicBool>) -> Stage {
        let net = Network::build(SERVERS, CLIENTS)
            .unwrap_or_else(|e| cannot_run("hosts", &e.to_string()));
        // A second address per client host, so that no source address holds
        // more than about 12,000 connections to the balancer (connect()'s
        // even-port search slows past 14,000: docs/scaling.md).
        for c in 0..CLIENTS {
            let extra = format!("198.18.0.{}/24", 31 + c);
            net.exec(
                &format!("c{}", c + 1),
                &["ip", "addr", "add", &extra, "dev", "eth0"],
            )
            .expect("a second client address");
        }
        Stage {
            net,
            bin: bin.to_owned(),
            servers: Vec::new(),
            haproxies: Vec::new(),
            stop: Arc::clone(stop),
        }
    }

    /// A fresh world for one run: the hosts built, the servers started with
    /// `guards`, `balancer` in front of all three; `None` once Ctrl-C has
    /// asked to stop (the world is torn down as it drops).
    fn ready(
        bin: &str,
        stop: &Arc<AtomicBool>,
        guards: &[&str],
        balancer: Balancer,
    ) -> Option<Stage> {
        let mut stage = Stage::new(bin, stop);
        if stage.interrupted() {
            return None;
        }
        stage.start_servers(guards);
        stage.balance(balancer, &[0, 1, 2]);
        Some(stage)
    }

    /// Starts every server host's `serve --workers 2`.
    fn start_servers(&mut self, guards: &[&str]) {
        self.servers.clear();
        for i in 0..SERVERS {
            let addr = format!("{}:{PORT}", hosts::server(i));
            let mut args = vec!["serve", "--workers", "2", "--tcp", &addr, "--udp", "off"];
            args.extend_from_slice(guards);
            let server = self
                .net
                .spawn(&format!("s{}", i + 1), &self.bin.clone(), &args)
                .expect("a server");
            server.line_starting("listening").expect("a listening line");
            self.servers.push(server.pid());
        }
    }

    /// Stops the server hosts and returns each one's summed stats line.
    fn stop_servers(&mut self) -> Vec<BTreeMap<String, f64>> {
        let mut lines = Vec::new();
        for &pid in &self.servers {
            self.net.signal(pid, Signal::TERM);
        }
        for &pid in &self.servers {
            let line = self
                .net
                .processes()
                .iter_mut()
                .find(|p| p.pid() == pid)
                .and_then(|p| p.line_starting("stats"))
                .unwrap_or_default();
            lines.push(stats_fields(&line));
        }
        lines
    }

    /// Puts `balancer` in front of the servers (`among`: which of them).
    fn balance(&mut self, balancer: Balancer, among: &[usize]) {
        match balancer {
            Balancer::Direct => {}
            Balancer::Haproxy => {
                for k in 0..HAPROXIES {
                    // Each process its own admin socket: the runtime API
                    // speaks to one process, and a server is out of rotation
                    // only once every process has been told.
                    let socket = self.net.dir.join(format!("haproxy{k}.sock"));
                    let config =
                        hosts::haproxy_config(SERVERS, 9_000, 500, 2, &socket.to_string_lossy());
                    let path = self.net.dir.join(format!("haproxy{k}.cfg"));
                    std::fs::write(&path, config).expect("write HAProxy's configuration");
                    let p = self
                        .net
                        .spawn("lb", "haproxy", &["-f", &path.to_string_lossy(), "-db"])
                        .expect("start HAProxy");
                    self.haproxies.push(p.pid());
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Balancer::NftNumgen | Balancer::NftJhash => {
                let spread = if balancer == Balancer::NftJhash {
                    "jhash"
                } else {
                    "numgen"
                };
                self.nft(&hosts::nft_rules(among, spread));
            }
        }
    }

    /// Loads `rules` in place of the balancer's table, in one transaction
    /// (`nft -f` applies a file atomically): deleting the table and loading
    /// the new one apart would leave a moment with no rule, in which new
    /// connections reach the balancer host itself and are refused.
    fn nft(&self, rules: &str) {
        let path = self.net.dir.join("rules.nft");
        // `table ip lb` alone creates it if it is not there yet, so that
        // the delete cannot fail.
        let rules = format!("table ip lb\ndelete table ip lb\n{rules}");
        std::fs::write(&path, rules).expect("write the rules");
        self.net
            .exec("lb", &["nft", "-f", &path.to_string_lossy()])
            .expect("load the rules");
    }

    /// The address the clients aim at.
    fn target(balancer: Balancer) -> String {
        match balancer {
            Balancer::Direct => format!("{}:{PORT}", hosts::server(0)),
            _ => format!("{FRONT}:{PORT}"),
        }
    }

    /// Both client hosts start `bench ARGS`, their clocks set to start at
    /// the same moment with `--start-at` (as load machines with
    /// synchronised clocks would: `docs/scaling.md`), `opening` from now,
    /// time for their connections to open; their PIDs.
    fn start_load(&mut self, target: &str, opening: Duration, args: &[&str]) -> Vec<u32> {
        let start_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| (now + opening).as_millis().to_string())
            .unwrap_or_default();
        let mut pids = Vec::new();
        for c in 0..CLIENTS {
            let sources = format!("{},198.18.0.{}", hosts::client(c), 31 + c);
            let mut all = vec![
                "bench",
                "--addr",
                target,
                "--json",
                "--source-addrs",
                &sources,
                "--start-at",
                &start_at,
            ];
            all.extend_from_slice(args);
            let bin = self.bin.clone();
            let p = self
                .net
                .spawn(&format!("c{}", c + 1), &bin, &all)
                .expect("a load generator");
            pids.push(p.pid());
        }
        pids
    }

    /// The load generators' reports, merged with `bench merge`.
    fn collect(&mut self, pids: &[u32]) -> BTreeMap<String, f64> {
        let mut reports = Vec::new();
        for &pid in pids {
            let line = self
                .net
                .processes()
                .iter_mut()
                .find(|p| p.pid() == pid)
                .and_then(|p| p.line_starting("{"))
                .unwrap_or_default();
            let path = self.net.dir.join(format!("report-{pid}.json"));
            std::fs::write(&path, line).expect("write a report");
            reports.push(path);
        }
        let merged = std::process::Command::new(&self.bin)
            .args(["bench", "merge", "--json"])
            .args(&reports)
            .output()
            .expect("bench merge");
        parse_json_numbers(&String::from_utf8_lossy(&merged.stdout))
    }

    /// Both client hosts run `bench ARGS` at once; their reports merged.
    fn load(&mut self, target: &str, args: &[&str]) -> BTreeMap<String, f64> {
        let pids = self.start_load(target, Duration::from_secs(2), args);
        self.collect(&pids)
    }

    /// The server hosts' resident memory, their workers' included.
    fn servers_rss_kib(&self) -> u64 {
        self.servers
            .iter()
            .filter_map(|&p| procfs::resident_kib(p).ok())
            .sum()
    }

    fn haproxy_cpu(&self) -> f64 {
        self.haproxies
            .iter()
            .filter_map(|&p| procfs::cpu_time(p).ok())
            .map(|(u, s)| (u + s).as_secs_f64())
            .sum()
    }

    fn haproxy_rss_kib(&self) -> u64 {
        self.haproxies
            .iter()
            .filter_map(|&p| procfs::resident_kib_alone(p).ok())
            .sum()
    }

    /// Tells every HAProxy process `command` through its runtime API;
    /// their answers, one per process.
    fn haproxy_api(&self, command: &str) -> Vec<String> {
        (0..self.haproxies.len())
            .map(|k| {
                let socket = self.net.dir.join(format!("haproxy{k}.sock"));
                let Ok(mut stream) = UnixStream::connect(socket) else {
                    return String::new();
                };
                let _ = writeln!(stream, "{command}");
                let mut answer = String::new();
                let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
                answer
            })
            .collect()
    }

    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The fields of a `stats ...` line, by name.
fn stats_fields(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// The machine's busy CPU time so far, in seconds (`/proc/stat`, all CPUs).
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle, iowait.
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| ![3, 4].contains(i) && *i < 8)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
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
            .map(|s| format!("{:.0}", get(s, "accepted")))
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
            .map(|s| get(s, "rejected_source"))
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
