//! Past one machine, on this one (the quick form of `cargo bench --bench
//! hosts`): two server hosts and a client host in network namespaces,
//! behind a balancer host, through each balancer kind (HAProxy in TCP mode,
//! nftables' DNAT round robin and by source hash), every byte verified; a
//! server host killed and the traffic going on; nothing left behind after,
//! even when the test fails midway (the network's `Drop`).
//!
//! Needs root, iproute2, nftables and HAProxy (`.ci/run` installs the last
//! two); skipped with the reason where they are missing.

use std::time::Duration;

use reactor_echo::bench::report::parse_json_numbers;
use rustix::process::Signal;

use crate::support::hosts::{self, FRONT, Network, PORT};
use crate::support::*;

/// The servers as a user would run them for a benchmark from known load
/// hosts: exposed (their addresses are not loopback), with the per-source
/// limit raised, since every connection through HAProxy comes from the
/// balancer's one address.
fn start_servers(net: &mut Network, count: usize) -> Vec<u32> {
    (0..count)
        .map(|i| {
            let host = format!("s{}", i + 1);
            let addr = format!("{}:{PORT}", hosts::server(i));
            let server = net
                .spawn(
                    &host,
                    BIN,
                    &[
                        "serve",
                        "--workers",
                        "2",
                        "--tcp",
                        &addr,
                        "--udp",
                        "off",
                        "--max-per-source",
                        "off",
                    ],
                )
                .expect("start a server host");
            server.line_starting("listening").expect("a listening line");
            server.pid()
        })
        .collect()
}

/// A verified run of `reactor-echo bench` from client host 1 through the
/// balancer: its JSON report's numbers.
fn load(
    net: &mut Network,
    connections: u32,
    seconds: u32,
) -> std::collections::BTreeMap<String, f64> {
    let target = format!("{FRONT}:{PORT}");
    let bench = net
        .spawn(
            "c1",
            BIN,
            &[
                "bench",
                "--addr",
                &target,
                "--connections",
                &connections.to_string(),
                "--duration",
                &seconds.to_string(),
                "--warmup",
                "0",
                "--json",
            ],
        )
        .expect("start the load generator");
    let line = bench.line_starting("{").expect("a JSON report");
    parse_json_numbers(&line)
}

fn assert_clean(report: &std::collections::BTreeMap<String, f64>, what: &str) {
    let get = |k: &str| report.get(k).copied().unwrap_or(-1.0);
    assert!(get("messages") >= 200.0, "{what}: {report:?}");
    assert_eq!(
        (get("errors"), get("mismatches"), get("failed")),
        (0.0, 0.0, 0.0),
        "{what}: {report:?}"
    );
}

#[test]
fn through_each_balancer_every_byte_is_verified_and_a_dead_host_is_routed_around() {
    if let Some(why) = hosts::cannot_run_because() {
        eprintln!("skipped: {why}");
        return;
    }
    let prefix;
    {
        let mut net = Network::build(2, 1).expect("build the hosts");
        prefix = net.namespace("");
        let servers = start_servers(&mut net, 2);

        // nftables, round robin, then by source hash.
        for spread in ["numgen", "jhash"] {
            let rules = hosts::nft_rules(&[0, 1], spread);
            let path = net.dir.join("rules.nft");
            std::fs::write(&path, rules).expect("write the rules");
            net.exec("lb", &["nft", "-f", path.to_str().expect("a path")])
                .expect("load the rules");
            assert_clean(&load(&mut net, 20, 1), spread);
            net.exec("lb", &["nft", "delete", "table", "ip", "lb"])
                .expect("remove the rules");
        }

        // HAProxy, with health checks every 200 ms.
        let socket = net.dir.join("haproxy.sock");
        let config = hosts::haproxy_config(2, 2000, 200, 2, socket.to_str().expect("a path"));
        let path = net.dir.join("haproxy.cfg");
        std::fs::write(&path, config).expect("write the configuration");
        let haproxy = net
            .spawn(
                "lb",
                "haproxy",
                &["-f", path.to_str().expect("a path"), "-db"],
            )
            .expect("start HAProxy")
            .pid();
        std::thread::sleep(Duration::from_millis(500));
        assert_clean(&load(&mut net, 20, 1), "haproxy");

        // A server host dies: HAProxy's checks take it out (two failures
        // 200 ms apart), and the traffic goes on on the other.
        net.signal(servers[0], Signal::KILL);
        std::thread::sleep(Duration::from_millis(1200));
        assert_clean(&load(&mut net, 20, 1), "haproxy, one host dead");
        net.signal(haproxy, Signal::TERM);
        // Dropping the network tears everything down.
    }
    let left: Vec<String> = hosts::namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let strays = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains("198.18."))
        .count();
    assert_eq!(strays, 0, "processes left that name a 198.18 address");
}

/// The files users copy (`docs/hosts/`) are the configuration the bench
/// runs, byte for byte after their comment lines: one source for both.
#[test]
fn the_balancer_files_in_the_docs_are_what_the_bench_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/hosts");
    let without_comments = |name: &str| -> String {
        std::fs::read_to_string(root.join(name))
            .unwrap_or_else(|e| panic!("docs/hosts/{name}: {e}"))
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let socket = "/run/haproxy/admin.sock";
    assert_eq!(
        without_comments("haproxy.cfg"),
        hosts::haproxy_config(3, 9_000, 500, 2, socket)
    );
    assert_eq!(
        without_comments("round-robin.nft"),
        hosts::nft_rules(&[0, 1, 2], "numgen")
    );
    assert_eq!(
        without_comments("by-source.nft"),
        hosts::nft_rules(&[0, 1, 2], "jhash")
    );
}
