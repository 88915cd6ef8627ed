//! Hosts on one machine: network namespaces joined by two bridges, for the
//! tests and the bench that put servers behind a real balancer
//! (`tests/integration/hosts.rs`, `benches/hosts.rs`; `docs/scaling.md`).
//!
//! A network namespace is a host as far as TCP is concerned: its own
//! interfaces, addresses, routes, port space and connection tracking. This
//! module builds, under a name prefix of its own (`re<PID>-`, so that runs
//! never collide and a leftover can be told to be one):
//!
//! ```text
//!  clients c1..cN  198.18.0.21..      servers s1..sN  198.18.1.11..
//!        |                                  |
//!   [ bridge "front" ]                 [ bridge "back" ]      (in namespace "br")
//!        |                                  |
//!        +---- 198.18.0.2  balancer lb  198.18.1.1 ----+      (it routes between them)
//! ```
//!
//! Every address is from 198.18.0.0/15, the range RFC 2544 sets aside for
//! benchmarks, and exists only inside namespaces this module created: the
//! host's own namespace gets no link, no address and no route. Clients
//! reach the servers through the balancer host, which forwards (direct
//! runs), proxies (HAProxy) or translates (nftables' DNAT); the servers'
//! default route is the balancer, so a translated connection's replies pass
//! back through it.
//!
//! [`Network`] tears everything down when dropped: on a normal end, on a
//! panic (unwinding runs `Drop`), and on Ctrl-C if the caller turns the
//! signal into an ordinary return. Processes are ended by their PID, then
//! the namespaces are deleted (which deletes their links). A run killed
//! with SIGKILL cannot clean up after itself; the next run removes the
//! namespaces of any earlier run whose process is gone ([`clean_stale`]).

#![allow(dead_code)] // the tests and the bench each use their own subset

use std::io::{self, BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The balancer's address on the clients' side.
pub const FRONT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The balancer's address on the servers' side (their default route).
pub const BACK: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The port every server and the balancer listen on.
pub const PORT: u16 = 8080;

/// Server `i`'s address (from 0).
pub fn server(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 11 + i as u8)
}

/// Client `i`'s address (from 0).
pub fn client(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 21 + i as u8)
}

/// What the tools this module runs need, or why they are missing.
pub fn cannot_run_because() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("network namespaces need root".into());
    }
    for (tool, arg, package) in [
        ("ip", "-V", "iproute2"),
        ("nft", "--version", "nftables"),
        ("haproxy", "-v", "haproxy"),
    ] {
        let found = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is missing (apt-get install {package})"));
        }
    }
    None
}

/// A process running in one of the network's hosts.
pub struct Process {
    /// Which host.
    pub host: String,
    /// The process (`ip netns exec` executes the program in place, so this
    /// is the program itself).
    pub child: Child,
    /// Its stdout, if the caller did not take it.
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl Process {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of its stdout, waiting at most `patience`.
    pub fn line_starting(&mut self, prefix: &str) -> Option<String> {
        let stdout = self.stdout.as_mut()?;
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.starts_with(prefix) {
                return Some(line.trim_end().to_owned());
            }
        }
    }
}

/// The namespaces, their links, and every process started in them.
pub struct Network {
    prefix: String,
    hosts: Vec<String>,
    processes: Vec<Process>,
    /// Where configuration files go (HAProxy's, its admin socket).
    pub dir: PathBuf,
    torn_down: bool,
}

impl Network {
    /// Builds `servers` server hosts, `clients` client hosts and the
    /// balancer host, joined as the module doc draws them.
    ///
    /// # Errors
    /// If a namespace, link or address cannot be made; what was made is
    /// torn down.
    pub fn build(servers: usize, clients: usize) -> io::Result<Network> {
        clean_stale();
        let prefix = format!("re{}-", std::process::id());
        let dir = std::env::temp_dir().join(format!("{prefix}hosts"));
        std::fs::create_dir_all(&dir)?;
        let mut net = Network {
            prefix,
            hosts: Vec::new(),
            processes: Vec::new(),
            dir,
            torn_down: false,
        };
        net.make(servers, clients)?;
        Ok(net)
    }

    fn make(&mut self, servers: usize, clients: usize) -> io::Result<()> {
        self.add_host("br")?;
        for bridge in ["front", "back"] {
            self.ip("br", &["link", "add", bridge, "type", "bridge"])?;
            self.ip("br", &["link", "set", bridge, "up"])?;
        }
        self.add_host("lb")?;
        self.wire("lb", "eth0", "front", FRONT)?;
        self.wire("lb", "eth1", "back", BACK)?;
        self.exec("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for i in 0..servers {
            let host = format!("s{}", i + 1);
            self.add_host(&host)?;
            self.wire(&host, "eth0", "back", server(i))?;
            self.ip(
                &host,
                &["route", "add", "default", "via", &BACK.to_string()],
            )?;
        }
        for i in 0..clients {
            let host = format!("c{}", i + 1);
            self.add_host(&host)?;
            self.wire(&host, "eth0", "front", client(i))?;
            self.ip(
                &host,
                &["route", "add", "198.18.1.0/24", "via", &FRONT.to_string()],
            )?;
        }
        Ok(())
    }

    /// A namespace's full name.
    pub fn namespace(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn add_host(&mut self, host: &str) -> io::Result<()> {
        run("ip", &["netns", "add", &self.namespace(host)])?;
        self.hosts.push(host.to_owned());
        self.ip(host, &["link", "set", "lo", "up"])
    }

    /// A veth pair: `ifname` with `addr`/24 in `host`, its peer on `bridge`.
    fn wire(&self, host: &str, ifname: &str, bridge: &str, addr: Ipv4Addr) -> io::Result<()> {
        let peer = format!("{host}-{ifname}");
        let (ns, br) = (self.namespace(host), self.namespace("br"));
        run(
            "ip",
            &[
                "link", "add", ifname, "netns", &ns, "type", "veth", "peer", "name", &peer,
                "netns", &br,
            ],
        )?;
        self.ip("br", &["link", "set", &peer, "master", bridge, "up"])?;
        self.ip(host, &["addr", "add", &format!("{addr}/24"), "dev", ifname])?;
        self.ip(host, &["link", "set", ifname, "up"])
    }

    /// `ip ARGS` inside `host`.
    fn ip(&self, host: &str, args: &[&str]) -> io::Result<()> {
        let ns = self.namespace(host);
        let mut words = vec!["-n", ns.as_str()];
        words.extend_from_slice(args);
        run("ip", &words)
    }

    /// Runs a command to completion inside `host`.
    ///
    /// # Errors
    /// If it cannot run or fails.
    pub fn exec(&self, host: &str, command: &[&str]) -> io::Result<()> {
        let ns = self.namespace(host);
        let mut words = vec!["netns", "exec", ns.as_str()];
        words.extend_from_slice(command);
        run("ip", &words)
    }

    /// Starts `program ARGS` inside `host`, its stdout piped; it is ended by
    /// its PID on teardown.
    ///
    /// # Errors
    /// If it cannot start.
    pub fn spawn(&mut self, host: &str, program: &str, args: &[&str]) -> io::Result<&mut Process> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.namespace(host), program])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().map(BufReader::new);
        self.processes.push(Process {
            host: host.to_owned(),
            child,
            stdout,
        });
        Ok(self.processes.last_mut().expect("just pushed"))
    }

    /// The processes started so far.
    pub fn processes(&mut self) -> &mut [Process] {
        &mut self.processes
    }

    /// Signals the process `pid` (one this network started).
    pub fn signal(&self, pid: u32, signal: rustix::process::Signal) {
        if self.processes.iter().any(|p| p.pid() == pid) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    }

    /// Ends every process (SIGTERM, then SIGKILL after 3 s), then deletes
    /// the namespaces. Idempotent.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for p in &self.processes {
            if let Some(pid) = rustix::process::Pid::from_raw(p.pid() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for p in &mut self.processes {
            while Instant::now() < deadline && matches!(p.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for host in self.hosts.iter().rev() {
            let _ = run("ip", &["netns", "del", &self.namespace(host)]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The namespaces of this network that still exist.
    pub fn remaining(&self) -> Vec<String> {
        namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&self.prefix))
            .collect()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Every network namespace on the machine, by name.
pub fn namespaces() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes the namespaces of earlier runs whose process is gone (a run
/// killed with SIGKILL could not tear down its own).
pub fn clean_stale() {
    for name in namespaces() {
        let Some(rest) = name.strip_prefix("re") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", &name]);
        }
    }
}

/// Runs `program args`; its stderr, with the command, if it fails.
pub fn run(program: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(program).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// HAProxy's configuration: TCP mode, round robin over `servers`, health
/// checks every `inter_ms` (a server is out after `fall` failures, back
/// after one success), an admin socket for the runtime API.
pub fn haproxy_config(
    servers: usize,
    maxconn: usize,
    inter_ms: u64,
    fall: u32,
    socket: &str,
) -> String {
    let mut text = format!(
        "global\n    maxconn {maxconn}\n    stats socket {socket} mode 600 level admin\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 120s\n    timeout server 120s\n\
         frontend echo\n    bind {FRONT}:{PORT}\n    default_backend servers\n\
         backend servers\n    balance roundrobin\n"
    );
    for i in 0..servers {
        text += &format!(
            "    server s{} {}:{PORT} check inter {inter_ms}ms fall {fall} rise 1\n",
            i + 1,
            server(i)
        );
    }
    text
}

/// The nftables rules that make the balancer host translate connections to
/// `FRONT:PORT` to one of `servers`: `numgen inc` (round robin) or `jhash
/// ip saddr . tcp sport` (the same source port always to the same server).
pub fn nft_rules(servers: &[usize], spread: &str) -> String {
    let map: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(k, &i)| format!("{k} : {}", server(i)))
        .collect();
    let pick = match spread {
        "jhash" => format!("jhash ip saddr . tcp sport mod {}", servers.len()),
        _ => format!("numgen inc mod {}", servers.len()),
    };
    format!(
        "table ip lb {{\n  chain prerouting {{\n    type nat hook prerouting priority -100;\n    \
         ip daddr {FRONT} tcp dport {PORT} dnat to {pick} map {{ {} }}\n  }}\n}}\n",
        map.join(", ")
    )
}
