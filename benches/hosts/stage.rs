//! One experiment's world for `benches/hosts.rs`: the network of
//! namespaces, the server hosts' supervisors, the balancer in front of
//! them, the client hosts' load generators, and the readings taken of them
//! (stats lines, merged reports, memory, HAProxy's CPU and runtime API).
//!
//! Every experiment builds a fresh one ([`Stage::ready`]) and drops it at
//! the end: the network's `Drop` ends every process and namespace.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reactor_echo::bench::procfs;
use reactor_echo::bench::report::parse_json_numbers;
use reactor_echo::workers::SupervisedStats;
use rustix::process::Signal;

use crate::common::cannot_run;
use crate::common::support::hosts::{self, FRONT, Network, PORT};

/// Server hosts and client hosts.
pub const SERVERS: usize = 3;
pub const CLIENTS: usize = 2;
/// HAProxy processes sharing the port (each below 20,000 descriptors).
pub const HAPROXIES: usize = 4;

/// The balancer in front of the servers.
#[derive(Clone, Copy, PartialEq)]
pub enum Balancer {
    Direct,
    Haproxy,
    NftNumgen,
    NftJhash,
}

impl Balancer {
    pub fn name(self) -> &'static str {
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
pub struct Stage {
    /// The namespaces and every process started in them.
    pub net: Network,
    bin: String,
    /// The server hosts' supervisors.
    pub servers: Vec<u32>,
    haproxies: Vec<u32>,
    stop: Arc<AtomicBool>,
}

impl Stage {
    pub fn new(bin: &str, stop: &Arc<AtomicBool>) -> Stage {
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
    pub fn ready(
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
    pub fn start_servers(&mut self, guards: &[&str]) {
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

    /// Stops the server hosts and returns each one's summed stats line
    /// (`None` for one that printed none).
    pub fn stop_servers(&mut self) -> Vec<Option<SupervisedStats>> {
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
                .and_then(|p| p.line_starting("stats"));
            lines.push(line.and_then(|l| l.parse().ok()));
        }
        lines
    }

    /// Puts `balancer` in front of the servers (`among`: which of them).
    pub fn balance(&mut self, balancer: Balancer, among: &[usize]) {
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
    pub fn nft(&self, rules: &str) {
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
    pub fn target(balancer: Balancer) -> String {
        match balancer {
            Balancer::Direct => format!("{}:{PORT}", hosts::server(0)),
            _ => format!("{FRONT}:{PORT}"),
        }
    }

    /// Both client hosts start `bench ARGS`, their clocks set to start at
    /// the same moment with `--start-at` (as load machines with
    /// synchronised clocks would: `docs/scaling.md`), `opening` from now,
    /// time for their connections to open; their PIDs.
    pub fn start_load(&mut self, target: &str, opening: Duration, args: &[&str]) -> Vec<u32> {
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
    pub fn collect(&mut self, pids: &[u32]) -> BTreeMap<String, f64> {
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
    pub fn load(&mut self, target: &str, args: &[&str]) -> BTreeMap<String, f64> {
        let pids = self.start_load(target, Duration::from_secs(2), args);
        self.collect(&pids)
    }

    /// The server hosts' resident memory, their workers' included.
    pub fn servers_rss_kib(&self) -> u64 {
        self.servers
            .iter()
            .filter_map(|&p| procfs::resident_kib(p).ok())
            .sum()
    }

    pub fn haproxy_cpu(&self) -> f64 {
        self.haproxies
            .iter()
            .filter_map(|&p| procfs::cpu_time(p).ok())
            .map(|(u, s)| (u + s).as_secs_f64())
            .sum()
    }

    pub fn haproxy_rss_kib(&self) -> u64 {
        self.haproxies
            .iter()
            .filter_map(|&p| procfs::resident_kib_alone(p).ok())
            .sum()
    }

    /// Tells every HAProxy process `command` through its runtime API;
    /// their answers, one per process.
    pub fn haproxy_api(&self, command: &str) -> Vec<String> {
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

    pub fn interrupted(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
