//! The run in time and a run that tells the truth about itself (issue 24):
//! the per-second series in every mode, `--json-stream`, `--hdr-log` read
//! back through the `hdrhistogram` crate, a server stopped for a second and
//! a half, Ctrl-C, the open loop above capacity, the small truths, and the
//! report page opened in a real browser (`page.rs` beside this file).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use reactor_echo::bench::report::interchange;

use crate::support::*;

/// The last JSON object of a run's stdout (the report).
pub fn final_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line).expect("the report is JSON")
}

/// The counted points' messages, and the run's.
fn counted_messages(json: &serde_json::Value) -> (u64, u64) {
    let series = json["series"].as_array().expect("a series");
    assert!(!series.is_empty(), "{json}");
    let counted = series
        .iter()
        .filter(|p| matches!(p["stage"].as_str(), Some("measuring" | "wave")))
        .map(|p| p["messages"].as_u64().expect("a count"))
        .sum();
    (counted, json["messages"].as_u64().expect("messages"))
}

fn decode(text: &str) -> Histogram<u64> {
    interchange::decode(text).expect("a histogram")
}

/// Every mode keeps its series, over processes too, and the measured
/// intervals' messages add up to the report's.
#[test]
fn every_mode_keeps_a_series_that_adds_up() {
    let server = Server::start(Kind::Reactor, &[]);
    let (tcp, udp) = (server.tcp().to_string(), server.udp().to_string());
    let runs: [(&str, &[&str]); 7] = [
        (&tcp, &["--connections", "10", "--duration", "1.2"]),
        (
            &tcp,
            &["--connections", "10", "--duration", "1.2", "--rate", "2000"],
        ),
        (&tcp, &["--connections", "4", "--duration", "1", "--churn"]),
        (
            &tcp,
            &["--connections", "50", "--duration", "0.5", "--idle"],
        ),
        (&udp, &["--connections", "4", "--duration", "1", "--udp"]),
        (
            &tcp,
            &["--connections", "10", "--duration", "1", "--chaos", "8"],
        ),
        (
            &tcp,
            &[
                "--connections",
                "10",
                "--duration",
                "1.2",
                "--processes",
                "2",
            ],
        ),
    ];
    for (addr, args) in runs {
        let out = bench_at(addr, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = final_json(&out);
        let (counted, messages) = counted_messages(&json);
        assert!(messages > 0, "{args:?}: {json}");
        assert_eq!(counted, messages, "{args:?}");
    }
}

/// `--hdr-log`: HdrHistogram's interval log, read back with the crate's own
/// reader: the header's times, tags on the unmeasured intervals, and the
/// untagged intervals add up to the run's histogram exactly (over two
/// processes too).
#[test]
fn the_interval_log_reads_back_and_adds_up_to_the_run() {
    let server = Server::start(Kind::Reactor, &[]);
    let dir = std::env::temp_dir().join(format!("reactor-echo-hdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for processes in ["1", "2"] {
        let log = dir.join(format!("run-{processes}.hlog"));
        let out = bench_at(
            server.tcp(),
            &[
                "--connections",
                "10",
                "--duration",
                "1.5",
                "--warmup",
                "0.5",
                "--processes",
                processes,
                "--hdr-log",
                log.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = decode(final_json(&out)["latency_hdr"].as_str().unwrap());
        let text = std::fs::read(&log).unwrap();
        assert!(text.starts_with(b"#[Logged with reactor-echo bench"));
        let mut sum: Histogram<u64> = Histogram::new_with_bounds(1, 600_000_000, 3).unwrap();
        let (mut base, mut tags, mut untagged) = (None, Vec::new(), 0);
        for entry in IntervalLogIterator::new(&text) {
            match entry.expect("every line parses") {
                LogEntry::BaseTime(t) => base = Some(t),
                LogEntry::StartTime(_) => {}
                LogEntry::Interval(interval) => {
                    use base64::Engine;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(interval.encoded_histogram())
                        .unwrap();
                    let h: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut bytes.as_slice())
                        .unwrap();
                    match interval.tag() {
                        Some(tag) => tags.push(tag.as_str().to_owned()),
                        None => {
                            untagged += 1;
                            sum.add(h).unwrap();
                        }
                    }
                }
            }
        }
        assert!(base.is_some(), "no BaseTime");
        assert!(untagged >= 2, "{untagged} measured intervals");
        assert!(tags.iter().any(|t| t == "warmup"), "{tags:?}");
        assert_eq!(sum, run, "the untagged intervals are the run's histogram");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server stopped with SIGSTOP for a little over two seconds in the
/// middle of an open loop (so that one whole second of the series' grid,
/// wherever it falls, is inside the stop): that measured second has no
/// reply at all, and a later one's largest latency is the stall (the open
/// loop times each message from its scheduled moment).
#[test]
fn a_stopped_server_shows_as_a_silent_second_and_a_spike() {
    let server = Server::start(Kind::Reactor, &[]);
    let addr = server.tcp().to_string();
    let run = std::thread::spawn(move || {
        bench_at(
            &addr,
            &[
                "--connections",
                "10",
                "--rate",
                "1000",
                "--duration",
                "6",
                "--warmup",
                "0.5",
            ],
        )
    });
    std::thread::sleep(Duration::from_millis(1_800));
    server.signal("STOP");
    std::thread::sleep(Duration::from_millis(2_100));
    server.signal("CONT");
    let out = run.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = final_json(&out);
    let measured: Vec<&serde_json::Value> = json["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stage"] == "measuring")
        .collect();
    let silent = measured
        .iter()
        .position(|p| p["messages"] == 0 && p["length_s"].as_f64() > Some(0.9))
        .unwrap_or_else(|| panic!("no silent second: {measured:?}"));
    assert!(measured[silent]["latency_us"].is_null());
    let spike = measured[silent + 1..]
        .iter()
        .filter_map(|p| p["latency_us"]["max"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        spike >= 2_000_000,
        "largest latency after the stall: {spike} us"
    );
    // The messages sent during the stall were answered after it: none lost.
    assert_eq!(json["errors"], 0);
}

/// `--json-stream`: one object an interval as the run goes, numbered, then
/// the report, whose series they are; over processes, one line an
/// interval for all of them.
#[test]
fn the_json_stream_follows_the_run() {
    let server = Server::start(Kind::Reactor, &[]);
    for processes in ["1", "2"] {
        let out = bench_at(
            server.tcp(),
            &[
                "--json-stream",
                "--connections",
                "4",
                "--duration",
                "2",
                "--warmup",
                "0.5",
                "--processes",
                processes,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        let (report, stream) = lines.split_last().unwrap();
        assert!(report.get("interval").is_none() && report["messages"].as_u64() > Some(0));
        for (i, line) in stream.iter().enumerate() {
            assert_eq!(line["interval"], i, "{line}");
        }
        let streamed: u64 = stream
            .iter()
            .filter(|p| p["stage"] == "measuring")
            .map(|p| p["messages"].as_u64().unwrap())
            .sum();
        assert_eq!(
            streamed,
            report["messages"].as_u64().unwrap(),
            "{processes}"
        );
    }
}

/// Ctrl-C (SIGINT) ends the run with the report of what was measured,
/// marked as interrupted, and exit 1 with one `error:` line.
#[test]
fn ctrl_c_prints_what_was_measured() {
    let server = Server::start(Kind::Reactor, &[]);
    let child = Command::new(BIN)
        .args(["bench", "--json", "--addr", &server.tcp().to_string()])
        .args(["--connections", "5", "--duration", "30", "--warmup", "0.2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    let started = Instant::now();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let json = final_json(&out);
    assert_eq!(json["interrupted"], true);
    assert!(json["messages"].as_u64() > Some(0));
    assert!(
        json["duration_s"].as_f64() < Some(5.0),
        "{}",
        json["duration_s"]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: interrupted (Ctrl-C)"), "{stderr}");
}

/// An open loop asked for far more than the server and the generator can
/// do: the window is still `--duration`, the asked and achieved rates are
/// both reported, and so is how far the generator fell behind.
#[test]
fn an_open_loop_above_capacity_keeps_its_window() {
    let server = Server::start(Kind::Reactor, &[]);
    let started = Instant::now();
    let out = bench_at(
        server.tcp(),
        &[
            "--connections",
            "10",
            "--rate",
            "3000000",
            "--duration",
            "2",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let r = report(&out);
    assert_eq!(r["duration_s"], 2.0, "{r:?}");
    assert_eq!(r["rate_requested"], 3_000_000.0);
    assert!(r["messages_per_sec"] < 3_000_000.0);
    assert!(r["schedule_lag_ms"] > 0.0, "{r:?}");
    let human = bench(&[
        "--addr",
        &server.tcp().to_string(),
        "--connections",
        "10",
        "--rate",
        "3000000",
        "--duration",
        "1",
        "--warmup",
        "0",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("3000000 msg/s asked") && text.contains("fell behind"),
        "{text}"
    );
}

/// The smaller truths: what a flag that names nothing says, times with
/// units, `--pipeline` with `--rate`, connects timed one by one, TIME-WAIT,
/// churn in connections per second, and an idle run's wave and stages.
#[test]
fn the_smaller_truths() {
    let server = Server::start(Kind::Reactor, &[]);
    let addr = server.tcp().to_string();
    let refused = |args: &[&str], words: &str| {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    };
    refused(
        &["--addr", &addr, "--server-pid", "999999"],
        "no such process",
    );
    refused(&["--addr", "127.0.0.1"], "the port is missing");
    refused(
        &["--addr", &addr, "--rate", "100", "--pipeline", "4"],
        "--pipeline",
    );
    refused(
        &["--addr", &addr, "--duration", "10 parsecs"],
        "not a unit of time",
    );
    let out = bench_at(&addr, &["--connections", "400", "--duration", "500ms"]);
    assert!(out.status.success());
    let r = report(&out);
    assert_eq!(r["duration_s"], 0.5);
    // Each connect timed from its own start: not one figure for a batch.
    assert!(r["connect_us.p50"] < r["connect_us.max"], "{r:?}");
    let text = |args: &[&str]| {
        let mut all = vec!["--addr", addr.as_str(), "--warmup", "0"];
        all.extend_from_slice(args);
        let out = bench(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (closed, _) = text(&["--connections", "5", "--duration", "0.3"]);
    assert!(closed.contains("time-wait"), "{closed}");
    let (churn, _) = text(&["--connections", "2", "--duration", "0.5", "--churn"]);
    assert!(churn.contains("connections/s"), "{churn}");
    let (idle, progress) = text(&["--connections", "20", "--duration", "1.5", "--idle"]);
    assert!(
        idle.contains("round trips/s") && idle.contains("over the whole run"),
        "{idle}"
    );
    assert!(progress.contains(" hold "), "{progress}");
}

#[cfg(test)]
mod page;
