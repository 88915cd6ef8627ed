//! The long soak: `cargo bench --bench soak -- --minutes 30` (any number
//! of minutes; only a run of 30 or more writes `docs/benchmarks/soak.md` and
//! `soak.svg`, shorter ones write under `target/bench-partial/`).
//!
//! Against one reactor (`serve`, pinned to CPU 0), for the whole time:
//! churn (`bench --churn`, 50 slots: connect, one message, close, again)
//! and, window after window of 10 s, 500 verified clients in a closed loop
//! with 500 hostile peers of every TCP kind beside them (`bench --chaos`).
//! Each window reconnects everything, which is churn of its own. In the
//! middle of each window the soak samples the server's resident memory
//! and open descriptors (`/proc/PID/fd`); each window's report gives the
//! verified clients' throughput, p99, errors and wrong bytes.
//!
//! The verdict: 0 honest errors or wrong bytes over every window; memory
//! flat after warm-up (the last three samples within 1 MiB of the first
//! three after the first tenth of the run); descriptors back to where they
//! were before any load once it stops; throughput without a downward trend
//! (a least-squares line over the windows falls by less than 5% of the mean
//! from first to last).

mod common;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Server, ServerSpec, bench_json, build_release, cannot_run, machine_line, median, publish,
    require_tools,
};
use plotters::prelude::*;

/// Seconds per window of verified clients and hostile peers.
const WINDOW: f64 = 10.0;
const HONEST: &str = "500";
const HOSTILE: &str = "500";
const CHURN_SLOTS: &str = "50";

/// One window's figures.
#[derive(Debug, Clone, Copy)]
struct Sample {
    minute: f64,
    rss_mib: f64,
    fds: f64,
    msgs_per_sec: f64,
    p99_us: f64,
    errors: f64,
    mismatches: f64,
    hostile_mismatches: f64,
    /// The server's CPU time in the window (for all its work: the verified
    /// clients, churn and the hostile peers) per verified message: a figure
    /// that moves little with the machine's noise, so it tells a server
    /// that slows down from a machine that does.
    server_us_per_msg: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse().ok())
        .unwrap_or(30.0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Err(why) = require_tools(&["taskset"]) {
        cannot_run("soak", &why);
    }
    let bin = build_release(&root);
    let spec = ServerSpec::new(
        "reactor (serve)",
        &bin,
        &["serve", "--tcp", "127.0.0.1:0", "--udp", "off"],
    );
    let server = Server::start_pinned(&spec, &[]);
    thread::sleep(Duration::from_millis(300));
    let pid = server.server_pid();
    let fds_at_start = open_fds(pid);
    let rss_at_start = rss_mib(pid);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let churn = Command::new("taskset")
        .args(["-c", "1", &bin, "bench", "--json", "--churn"])
        .args(["--addr", &format!("127.0.0.1:{}", server.port())])
        .args(["--connections", CHURN_SLOTS, "--warmup", "0"])
        // Past the last window, which may start just before `total`.
        .args([
            "--duration",
            &format!("{}", total.as_secs_f64() + 3.0 * WINDOW),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| cannot_run("soak", &format!("cannot start the churn load: {e}")));
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < total {
        let port = server.port();
        let bin_owned = bin.clone();
        let pid_text = pid.to_string();
        let window = thread::spawn(move || {
            bench_json(
                &bin_owned,
                port,
                &[
                    "--connections",
                    HONEST,
                    "--chaos",
                    HOSTILE,
                    "--server-pid",
                    &pid_text,
                ],
                WINDOW,
                0.5,
            )
        });
        // Mid-window: every connection of the window is open.
        thread::sleep(Duration::from_secs_f64(WINDOW / 2.0 + 0.5));
        let (rss, fds) = (rss_mib(pid), open_fds(pid));
        let r = window.join().unwrap_or_default();
        let get = |k: &str| r.get(k).copied().unwrap_or(f64::NAN);
        let sample = Sample {
            minute: started.elapsed().as_secs_f64() / 60.0,
            rss_mib: rss,
            fds,
            msgs_per_sec: get("messages_per_sec"),
            p99_us: get("latency_us.p99"),
            errors: get("errors"),
            mismatches: get("mismatches"),
            hostile_mismatches: get("chaos.mismatches"),
            server_us_per_msg: get("server_cpu.us_per_msg"),
        };
        eprintln!(
            "{:>6.1} min: rss {:.1} MiB, {} fds, {:.0} msg/s, server {:.2} us/msg, p99 {} us, errors {}, wrong {} (hostile {})",
            sample.minute,
            sample.rss_mib,
            sample.fds,
            sample.msgs_per_sec,
            sample.server_us_per_msg,
            sample.p99_us,
            sample.errors,
            sample.mismatches,
            sample.hostile_mismatches
        );
        samples.push(sample);
    }
    let churn_report = churn
        .wait_with_output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with('{'))
                .map(reactor_echo::bench::report::parse_json_numbers)
        })
        .unwrap_or_default();
    thread::sleep(Duration::from_secs(2));
    let fds_after = open_fds(pid);
    let rss_after = rss_mib(pid);
    server.end();

    let complete = minutes >= 30.0;
    let dir = if complete {
        root.join("docs/benchmarks")
    } else {
        root.join("target/bench-partial")
    };
    let _ = std::fs::create_dir_all(&dir);
    plot(&dir.join("soak.svg"), &samples);
    let verdict = Verdict::of(&samples, fds_at_start, fds_after);
    let table = render(
        minutes,
        &samples,
        &verdict,
        (rss_at_start, rss_after),
        (fds_at_start, fds_after),
        &churn_report,
    );
    print!("{table}");
    let path = publish(&root, "soak.md", &table, complete);
    eprintln!("wrote {}", path.display());
}

/// The server's resident memory in MiB (`VmRSS`).
fn rss_mib(pid: u32) -> f64 {
    reactor_echo::bench::procfs::resident_kib(pid).map_or(f64::NAN, |k| k as f64 / 1024.0)
}

/// The server's open descriptors.
fn open_fds(pid: u32) -> f64 {
    reactor_echo::bench::procfs::open_descriptors(pid).map_or(f64::NAN, |(all, _)| all as f64)
}

/// Whether the run met each target, with the figures that say so.
struct Verdict {
    honest_clean: bool,
    hostile_clean: bool,
    rss_growth_mib: f64,
    fds_back: bool,
    trend_percent: f64,
    cpu_trend_percent: f64,
}

impl Verdict {
    fn of(samples: &[Sample], fds_before: f64, fds_after: f64) -> Verdict {
        let sum = |f: fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>();
        let warm = samples.len() / 10;
        let settled = &samples[warm.min(samples.len())..];
        let first: Vec<f64> = settled.iter().take(3).map(|s| s.rss_mib).collect();
        let last: Vec<f64> = settled.iter().rev().take(3).map(|s| s.rss_mib).collect();
        Verdict {
            honest_clean: !samples.is_empty()
                && sum(|s| s.errors) == 0.0
                && sum(|s| s.mismatches) == 0.0,
            hostile_clean: sum(|s| s.hostile_mismatches) == 0.0,
            rss_growth_mib: median(last) - median(first),
            fds_back: fds_after <= fds_before,
            trend_percent: trend_percent(samples, |s| s.msgs_per_sec),
            cpu_trend_percent: trend_percent(samples, |s| s.server_us_per_msg),
        }
    }
}

/// The change of the least-squares line of `figure` over the run, from the
/// first window to the last, in percent of the mean.
fn trend_percent(samples: &[Sample], figure: Figure) -> f64 {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.minute, figure(s)))
        .filter(|p| p.1.is_finite())
        .collect();
    let n = points.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let span = points[points.len() - 1].0 - points[0].0;
    100.0 * sxy / sxx * span / mean_y
}

fn render(
    minutes: f64,
    samples: &[Sample],
    v: &Verdict,
    rss: (f64, f64),
    fds: (f64, f64),
    churn: &std::collections::BTreeMap<String, f64>,
) -> String {
    let mark = |met: bool| if met { "met" } else { "NOT met" };
    let column = |f: fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Soak: {minutes} minutes of load, churn and chaos against one reactor\n\n\
         `cargo bench --bench soak -- --minutes {minutes}`: `serve` pinned to CPU 0; pinned to CPU 1, churn \
         (`bench --churn --connections {CHURN_SLOTS}`) all the time and, window after window of {WINDOW} s, \
         {HONEST} verified clients in a closed loop beside {HOSTILE} hostile peers of every TCP kind \
         (`bench --connections {HONEST} --chaos {HOSTILE}`). Memory and descriptors sampled in the middle \
         of each window; the plot is `soak.svg`. {}.\n",
        machine_line()
    );
    let _ = writeln!(t, "| figure | value |\n|---|---:|");
    let _ = writeln!(t, "| windows | {} |", samples.len());
    let _ = writeln!(
        t,
        "| verified messages/s per window, median (min – max) | {:.0} ({:.0} – {:.0}) |",
        median(column(|s| s.msgs_per_sec)),
        column(|s| s.msgs_per_sec)
            .into_iter()
            .fold(f64::INFINITY, f64::min),
        column(|s| s.msgs_per_sec).into_iter().fold(0.0, f64::max)
    );
    let _ = writeln!(
        t,
        "| verified p99 per window, median (max), us | {:.0} ({:.0}) |",
        median(column(|s| s.p99_us)),
        column(|s| s.p99_us).into_iter().fold(0.0, f64::max)
    );
    let _ = writeln!(
        t,
        "| verified errors / wrong bytes, all windows | {} / {} |",
        column(|s| s.errors).iter().sum::<f64>(),
        column(|s| s.mismatches).iter().sum::<f64>()
    );
    let _ = writeln!(
        t,
        "| hostile peers' wrong bytes, all windows | {} |",
        column(|s| s.hostile_mismatches).iter().sum::<f64>()
    );
    let _ = writeln!(
        t,
        "| churn cycles (connect, message, close), errors, wrong bytes | {} , {}, {} |",
        churn.get("messages").copied().unwrap_or(f64::NAN),
        churn.get("errors").copied().unwrap_or(f64::NAN),
        churn.get("mismatches").copied().unwrap_or(f64::NAN)
    );
    let _ = writeln!(
        t,
        "| server RSS: at start, mid-window median, after the load (MiB) | {:.1}, {:.1}, {:.1} |",
        rss.0,
        median(column(|s| s.rss_mib)),
        rss.1
    );
    let _ = writeln!(
        t,
        "| server descriptors: at start, mid-window median, after the load | {}, {}, {} |",
        fds.0,
        median(column(|s| s.fds)),
        fds.1
    );
    let _ = writeln!(t, "\n## Verdict\n");
    let _ = writeln!(
        t,
        "- 0 verified errors or wrong bytes: **{}**",
        mark(v.honest_clean)
    );
    let _ = writeln!(
        t,
        "- 0 wrong bytes for the hostile peers that check: **{}**",
        mark(v.hostile_clean)
    );
    let _ = writeln!(
        t,
        "- memory flat after warm-up (growth {:.2} MiB, at most 1): **{}**",
        v.rss_growth_mib,
        mark(v.rss_growth_mib <= 1.0)
    );
    let _ = writeln!(
        t,
        "- descriptors back to the start when the load stops: **{}**",
        mark(v.fds_back)
    );
    let _ = writeln!(
        t,
        "- throughput without a downward trend (fitted change {:+.1}% over the run, no worse than -5%): **{}**",
        v.trend_percent,
        mark(v.trend_percent >= -5.0)
    );
    let _ = writeln!(
        t,
        "\nBeside the verdict, a figure that moves less with the machine's noise than throughput does: the \
         server's CPU time (for all its work: verified clients, churn, hostile peers) per verified message, \
         median {:.2} us per window, fitted change {:+.1}% over the run (a server that slowed down would spend \
         steadily more per message; a busy neighbour moves it too, but less, and not for good).",
        median(column(|s| s.server_us_per_msg)),
        v.cpu_trend_percent
    );
    t
}

/// Reads one figure of a sample.
type Figure = fn(&Sample) -> f64;

/// Five panels over time: memory, descriptors, throughput, p99, server CPU
/// per message.
fn plot(path: &Path, samples: &[Sample]) {
    if let Err(e) = draw(path, samples) {
        eprintln!("cannot draw {}: {e}", path.display());
    }
}

fn draw(path: &Path, samples: &[Sample]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (760, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((5, 1));
    let x_max = samples.iter().map(|s| s.minute).fold(1.0, f64::max);
    let series: [(&str, Figure); 5] = [
        ("server RSS (MiB)", |s| s.rss_mib),
        ("server open descriptors", |s| s.fds),
        ("verified msgs/s", |s| s.msgs_per_sec),
        ("verified p99 (us)", |s| s.p99_us),
        ("server CPU per verified message (us)", |s| {
            s.server_us_per_msg
        }),
    ];
    for (panel, (name, value)) in panels.iter().zip(series) {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (s.minute, value(s)))
            .filter(|p| p.1.is_finite())
            .collect();
        let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart.configure_mesh().x_desc("minutes").draw()?;
        chart.draw_series(LineSeries::new(
            points,
            RGBColor(0x1f, 0x77, 0xb4).stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}
