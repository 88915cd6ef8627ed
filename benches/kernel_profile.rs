//! Where a server's CPU goes, per echoed message, function by function:
//! `cargo bench --bench kernel_profile`.
//!
//! Echoing 64 bytes on loopback, every server here spends nearly all of its
//! CPU in the kernel (the anchors and generators tables show the user/system
//! split). Which kernel work is it, and what does completion change in it?
//! This bench samples CPU 0, where the server runs, with `perf record -e
//! cpu-clock` (a software clock: this machine's virtual CPUs have no
//! hardware counters) while the C load generator drives it from CPU 1, for
//! the reactor, the proactor, and the C epoll and io_uring servers, in
//! interleaved order. Each sample is put in one bucket by its function's
//! name ([`bucket`]: the server's own code, syscall entry and exit, epoll,
//! io_uring, the socket layer and TCP/IP, copying bytes, memory, the
//! scheduler and wake-ups, the rest of the kernel, other programs), and the
//! buckets are turned into microseconds per message: samples times the
//! sampling period, divided by the messages answered meanwhile (the load
//! generator's rate times the sampled seconds). The table also lists each
//! server's heaviest kernel functions.
//!
//! Sampling says where time was spent, not why; the buckets are a reading
//! of function names (each rule is in [`bucket`]), and samples of work
//! done on CPU 0 for the other side (a softirq delivering the generator's
//! packet while the server runs) are counted where they land, as the
//! kernel's own accounting counts them.
//!
//! Options (after `--`): `--repeats N` (default 3), `--conns 1000,10000`,
//! `--seconds S` sampled per run (default 4), `--quick` (1 repeat, 1,000
//! connections, 2 s). Needs perf, gcc and taskset, the C sources
//! (`REACTOR_ECHO_ANCHORS`, default `../shared/anchors`) and liburing;
//! without one it says which in one line and exits 1. A complete run (the
//! defaults) writes `docs/benchmarks/kernel_profile.md`; any other run
//! writes under `target/bench-partial/`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{
    Args, Server, ServerSpec, bench_report, build_anchors, build_release, build_uring_anchor,
    cannot_run, closed_loop_args, loadgen_command, machine_line, proactor_spec, publish,
    reactor_spec, require_tools, scratch_file,
};

const DEFAULT_CONNS: [usize; 2] = [1000, 10_000];
const DEFAULT_REPEATS: usize = 3;
const DEFAULT_SECONDS: u64 = 4;
/// Samples a second: one every 500 microseconds of CPU time.
const FREQUENCY: u64 = 2000;
/// Sampling starts this long after the load generator does: its
/// connections are open and its one-second warm-up is over.
const SETTLE: Duration = Duration::from_secs(3);
/// How many of a server's heaviest kernel functions the table lists.
const TOP: usize = 12;

/// The buckets, in the order the table shows them.
const BUCKETS: [&str; 10] = [
    "the server's own code",
    "syscall entry and exit",
    "epoll",
    "io_uring",
    "sockets and TCP/IP",
    "copying bytes",
    "memory",
    "scheduler and wake-ups",
    "rest of the kernel",
    "other programs and idle",
];

/// The rules for a kernel function of the server's, tried in order: the
/// first bucket with a word that begins the function's name (or, for a
/// word written `*x`, that the name contains) takes the sample; a function
/// no rule names is "rest of the kernel".
const RULES: [(&str, &str); 7] = [
    ("epoll", "*epoll ep_ __ep_"),
    (
        "io_uring",
        "*io_uring io_ __io_ tctx_task_work task_work_run",
    ),
    (
        "syscall entry and exit",
        "entry_SYSCALL do_syscall syscall_ __x64_sys_ x64_sys_call exit_to_user_mode fpregs_ switch_fpu restore_fpregs __fdget fdget fput __fput",
    ),
    (
        "copying bytes",
        "copy_ _copy_ __copy_ memcpy memmove memset rep_movs __check_object_size check_heap_object simple_copy_to_iter skb_copy_datagram",
    ),
    (
        "sockets and TCP/IP",
        "tcp __tcp bbr_ minmax_ ip_ __ip_ ipv4_ inet __inet sk_ __sk_ skb __skb kfree_skb __kfree_skb consume_skb net_ __net netif __netif dev_ __dev_ loopback process_backlog napi __napi sock __sock lock_sock release_sock __release_sock security_sock __sys_ sys_ raw_v4 nf_ validate_xmit eth_ bpf_ __build_skb __alloc_skb alloc_skb do_softirq __do_softirq handle_softirqs __local_bh_enable",
    ),
    (
        "memory",
        "kmem_cache kfree __kmalloc kmalloc __slab slab_ ___slab mod_memcg __mod_memcg obj_cgroup refill_obj_stock page_ alloc_pages __alloc_pages free_unref __free_pages mem_cgroup __memcg memcg drain_obj_stock __refill_stock try_charge kvfree __kvmalloc",
    ),
    (
        "scheduler and wake-ups",
        "*wake *sched *task_switch *pick_next *enqueue *dequeue *ttwu update_ __update switch_ __switch psi_ finish_task set_next put_prev select_task check_preempt resched prepare_to_wait finish_wait raw_spin _raw_spin native_queued queued_spin reweight avg_vruntime place_entity hrtick cpuacct account_",
    ),
];

/// The bucket of one sample: `comm` (the command running), `kernel`
/// (whether the function is the kernel's) and the function's name.
fn bucket(comm: &str, server_comm: &str, kernel: bool, symbol: &str) -> &'static str {
    if !comm.starts_with(server_comm) {
        return "other programs and idle";
    }
    if !kernel {
        return "the server's own code";
    }
    let named = |word: &str| match word.strip_prefix('*') {
        Some(part) => symbol.contains(part),
        None => symbol.starts_with(word),
    };
    RULES
        .iter()
        .find(|(_, words)| words.split_whitespace().any(named))
        .map_or("rest of the kernel", |&(name, _)| name)
}

struct Options {
    repeats: usize,
    conns: Vec<usize>,
    seconds: u64,
    quick: bool,
}

impl Options {
    fn is_complete(&self) -> bool {
        !self.quick
            && self.repeats == DEFAULT_REPEATS
            && self.conns == DEFAULT_CONNS
            && self.seconds == DEFAULT_SECONDS
    }
}

fn options() -> Options {
    let args = Args::from_env();
    // `--quick` sets its own defaults; an option given beside it still wins.
    let quick = args.flag("--quick");
    Options {
        repeats: args
            .value("--repeats")
            .unwrap_or(if quick { 1 } else { DEFAULT_REPEATS }),
        conns: args.list("--conns").unwrap_or_else(|| {
            if quick {
                vec![1000]
            } else {
                DEFAULT_CONNS.to_vec()
            }
        }),
        seconds: args
            .value("--seconds")
            .unwrap_or(if quick { 2 } else { DEFAULT_SECONDS }),
        quick,
    }
}

/// What the samples of one server at one count added up to.
#[derive(Default)]
struct Profile {
    /// Samples per bucket.
    buckets: BTreeMap<&'static str, u64>,
    /// Samples per kernel function, in the server's own context.
    functions: BTreeMap<String, u64>,
    samples: u64,
    /// Messages answered while the samples were taken.
    messages: f64,
}

impl Profile {
    /// Microseconds of CPU 0 per message for `samples` samples.
    fn us_per_message(&self, samples: u64) -> f64 {
        samples as f64 * 1e6 / FREQUENCY as f64 / self.messages
    }
}

/// One run: `spec` on CPU 0, the C load generator on CPU 1 with `conns`
/// connections, CPU 0 sampled for `seconds` once it has settled; adds the
/// samples to `profile`.
fn profile_once(
    spec: &ServerSpec,
    server_comm: &str,
    lg: &Path,
    conns: usize,
    seconds: u64,
    profile: &mut Profile,
) {
    let server = Server::start_pinned(spec, &[]);
    let duration = SETTLE.as_secs() + seconds + 1;
    let generator = loadgen_command(lg, server.port())
        .args(closed_loop_args(conns, duration as f64))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the load generator");
    thread::sleep(SETTLE);
    let data = scratch_file("perf.data");
    let recorded = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            &FREQUENCY.to_string(),
            "-C",
            "0",
            "-o",
        ])
        .arg(&data)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let out = generator
        .wait_with_output()
        .expect("wait for the load generator");
    server.end();
    let rate = bench_report(&out.stdout)
        .get("msgs_per_s")
        .copied()
        .unwrap_or(f64::NAN);
    if !recorded {
        cannot_run(
            "kernel_profile",
            "`perf record` failed (is perf allowed here?)",
        );
    }
    let report = Command::new("perf")
        .args([
            "report",
            "-q",
            "--stdio",
            "-n",
            "--no-children",
            "--sort",
            "comm,dso,sym",
            "-i",
        ])
        .arg(&data)
        .output()
        .expect("run perf report");
    let _ = std::fs::remove_file(&data);
    // "  2.70%  1234  reactor-echo  [kernel.kallsyms]  [k] tcp_sendmsg"
    for line in String::from_utf8_lossy(&report.stdout).lines() {
        let Some((head, symbol)) = line
            .split_once(" [k] ")
            .map(|(h, s)| (h, (s, true)))
            .or_else(|| line.split_once(" [.] ").map(|(h, s)| (h, (s, false))))
        else {
            continue;
        };
        let (symbol, kernel) = (symbol.0.trim(), symbol.1);
        let mut words = head.split_whitespace();
        let (Some(_share), Some(samples), Some(comm)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(samples) = samples.parse::<u64>() else {
            continue;
        };
        let b = bucket(comm, server_comm, kernel, symbol);
        *profile.buckets.entry(b).or_default() += samples;
        if kernel && comm.starts_with(server_comm) {
            *profile.functions.entry(symbol.to_owned()).or_default() += samples;
        }
        profile.samples += samples;
    }
    profile.messages += rate * seconds as f64;
}

fn main() {
    assert!(
        RULES.iter().all(|(name, _)| BUCKETS.contains(name)),
        "every rule's bucket has a row"
    );
    let o = options();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&root);
    if let Err(why) = require_tools(&["perf", "gcc", "taskset"]) {
        cannot_run("kernel_profile", &why);
    }
    let anchors = build_anchors(&root).unwrap_or_else(|why| cannot_run("kernel_profile", &why));
    let uring = build_uring_anchor(&root).unwrap_or_else(|why| cannot_run("kernel_profile", &why));
    let c_epoll = anchors.server.display().to_string();
    let c_uring = uring.display().to_string();
    // Each server with the command name perf records for it (at most 15
    // bytes of the program's file name).
    let servers = [
        (reactor_spec(&bin), "reactor-echo"),
        (proactor_spec(&bin), "reactor-echo"),
        (
            ServerSpec::new(
                "C epoll_echo --short-read",
                &c_epoll,
                &["0", "--short-read"],
            ),
            "epoll_echo",
        ),
        (
            ServerSpec::new("C uring_echo", &c_uring, &["0"]),
            "uring_echo",
        ),
    ];
    let mut profiles: BTreeMap<(usize, usize), Profile> = BTreeMap::new();
    for repeat in 0..o.repeats {
        for &conns in &o.conns {
            for turn in 0..servers.len() {
                let s = (turn + repeat) % servers.len();
                let (spec, comm) = &servers[s];
                let p = profiles.entry((conns, s)).or_default();
                let before = (p.samples, p.messages);
                profile_once(spec, comm, &anchors.loadgen, conns, o.seconds, p);
                eprintln!(
                    "repeat {repeat} {conns:>6} conns {:<26}: {} samples, {:.0} messages",
                    spec.name,
                    p.samples - before.0,
                    p.messages - before.1
                );
            }
        }
    }

    let mut out = format!(
        "CPU 0 (the server's) sampled with `perf record -e cpu-clock -F {FREQUENCY}` for {} s a run, {} runs per server and count in interleaved order, the C load generator on CPU 1 (64-byte messages, one in flight per connection); {}.\n\n",
        o.seconds,
        o.repeats,
        machine_line()
    );
    for &conns in &o.conns {
        out += &format!("### {conns} connections: microseconds of CPU 0 per message\n\n| bucket |");
        for (spec, _) in &servers {
            out += &format!(" {} |", spec.name);
        }
        out += "\n|---|";
        out += &"---:|".repeat(servers.len());
        out += "\n";
        for b in BUCKETS {
            out += &format!("| {b} |");
            for s in 0..servers.len() {
                let p = &profiles[&(conns, s)];
                let n = p.buckets.get(b).copied().unwrap_or(0);
                out += &format!(" {:.2} |", p.us_per_message(n));
            }
            out += "\n";
        }
        out += "| all of CPU 0 |";
        for s in 0..servers.len() {
            let p = &profiles[&(conns, s)];
            out += &format!(" {:.2} |", p.us_per_message(p.samples));
        }
        out += "\n| messages/s (the load generator's) |";
        for s in 0..servers.len() {
            let p = &profiles[&(conns, s)];
            out += &format!(
                " {:.0} |",
                p.messages / (o.seconds * o.repeats as u64) as f64
            );
        }
        out += "\n\n";
        for (s, (spec, _)) in servers.iter().enumerate() {
            let p = &profiles[&(conns, s)];
            let mut heaviest: Vec<(&String, &u64)> = p.functions.iter().collect();
            heaviest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let list: Vec<String> = heaviest
                .iter()
                .take(TOP)
                .map(|&(f, &n)| format!("`{f}` {:.2}", p.us_per_message(n)))
                .collect();
            out += &format!(
                "* {}, its {TOP} heaviest kernel functions (microseconds per message): {}\n",
                spec.name,
                list.join(", ")
            );
        }
        out += "\n";
    }
    out += "(A bucket is a reading of function names: the rules are `bucket` in `benches/kernel_profile.rs`. \"Other programs and idle\" is every sample of CPU 0 taken while another command ran, or none. Samples are CPU time, counted where the work ran: a softirq that carries the load generator's packet into the server's socket is counted on CPU 0 when it runs there.)\n";
    let path = publish(&root, "kernel_profile.md", &out, o.is_complete());
    print!("{out}");
    eprintln!("wrote {}", path.display());
}
