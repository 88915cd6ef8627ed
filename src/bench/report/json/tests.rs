//! The report's JSON: the keys a user already parses, and any report read
//! back is the same report.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::bench::measure::failures::Cause;
use crate::bench::report::fixtures::{full, histogram, plain};

/// Every key path of a report with every section (a `--chaos` run of the
/// TCP kinds with the server's memory, the kernel's readings and the CPU
/// times), as `bench --json` wrote it before its JSON was derived.
const EVERY_KEY: &str = "bench_cpu.system_s bench_cpu.us_per_msg bench_cpu.user_s bytes_per_sec \
    chaos.mismatches chaos.peers connect_hdr connect_us.max connect_us.p50 connect_us.p99 \
    connections duration_s environment.cores environment.cpus environment.fd_hard \
    environment.fd_soft environment.kernel environment.sources errors established failed idle_ok \
    latency_hdr latency_us.max latency_us.p50 latency_us.p90 latency_us.p99 latency_us.p999 lost \
    messages messages_per_sec mismatches mode opened_s pipeline processes server_cpu.system_s \
    server_cpu.us_per_msg server_cpu.user_s server_rss_kib.after server_rss_kib.before \
    server_rss_kib.peak server_rss_open_kib.before server_rss_open_kib.open size \
    run_id host started_ms command version rate_requested schedule_lag_ms interrupted series \
    bench_run_cpu server_run_cpu failures.refused failures.timed_out failures.reset \
    failures.closed failures.unreachable failures.no_address failures.no_descriptors \
    failures.no_reply failures.other failures.first";

/// The keys of each reading of the kernel, and of each hostile kind.
const KERNEL_KEYS: &str = "listen_drops listen_overflows mem_available_kib sockets syn_retrans \
    tcp_inuse tcp_mem_pages tcp_tw";
const TALLY_KEYS: &str = "bytes_sent bytes_verified connect_failures connects cycles lost \
    mismatches peers server_closed server_reset";

/// The top-level keys of a report with no optional section (churn, UDP).
const PLAIN_KEYS: &str = "mode connections processes established failed messages \
    messages_per_sec bytes_per_sec latency_us connect_us errors mismatches lost idle_ok opened_s \
    size pipeline duration_s server_cpu bench_cpu latency_hdr connect_hdr environment \
    run_id host started_ms command version rate_requested schedule_lag_ms interrupted failures \
    bench_run_cpu server_run_cpu series";

/// Every key path of a JSON object, strings and nulls too.
fn paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(members) = value {
        for (key, member) in members {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if member.is_object() {
                paths(member, &path, out);
            } else {
                out.insert(path);
            }
        }
    }
}

fn words(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_keys_are_the_ones_a_user_already_parses() {
    let value: serde_json::Value = serde_json::from_str(&full().json()).expect("valid JSON");
    let mut expected = words(EVERY_KEY);
    for reading in ["kernel_before", "kernel_during"] {
        expected.extend(
            KERNEL_KEYS
                .split_whitespace()
                .map(|k| format!("{reading}.{k}")),
        );
    }
    for kind in Kind::TCP {
        expected.extend(
            TALLY_KEYS
                .split_whitespace()
                .map(|k| format!("{}.{k}", kind.json_key())),
        );
    }
    let mut found = BTreeSet::new();
    paths(&value, "", &mut found);
    assert_eq!(found, expected);

    let value: serde_json::Value = serde_json::from_str(&plain().json()).expect("valid JSON");
    let found: BTreeSet<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(found, words(PLAIN_KEYS));
    // Not measured is null, not missing.
    for key in ["lost", "idle_ok", "opened_s", "server_cpu", "bench_cpu"] {
        assert!(value[key].is_null(), "{key}");
    }
    // A --chaos run without the server's memory still says so.
    let mut chaos = full();
    if let Some(c) = chaos.chaos.as_mut() {
        c.memory = None;
    }
    let value: serde_json::Value = serde_json::from_str(&chaos.json()).expect("valid JSON");
    assert!(value["server_rss_kib"].is_null());
    assert!(
        value
            .as_object()
            .is_some_and(|o| o.contains_key("server_rss_kib"))
    );
}

#[test]
fn figures_are_written_rounded_as_they_always_were() {
    let value: serde_json::Value = serde_json::from_str(&full().json()).expect("valid JSON");
    assert_eq!(value["mode"], "closed-loop");
    assert_eq!(value["messages_per_sec"].as_f64(), Some(75.9));
    assert_eq!(value["bytes_per_sec"].as_f64(), Some(4860.2));
    assert_eq!(value["duration_s"].as_f64(), Some(0.5));
    assert_eq!(value["opened_s"].as_f64(), Some(0.012));
    // (0.03 + 0.45) s over 38 messages.
    assert_eq!(value["server_cpu"]["us_per_msg"].as_f64(), Some(12631.579));
    assert_eq!(value["latency_us"]["max"].as_u64(), Some(900));
    assert_eq!(value["chaos"]["peers"].as_u64(), Some(0));
}

#[test]
fn reads_back_nested_numbers() {
    let line = r#"{"mode":"idle","messages":12,"latency_us":{"p50":3,"max":9},"lost":null,"errors":0,"environment":{"fd_soft":20000,"kernel":"6.1","sources":"127.0.0.2,127.0.0.3:x"}}"#;
    let r = parse_json_numbers(line);
    assert_eq!(r["messages"], 12.0);
    assert_eq!(r["latency_us.p50"], 3.0);
    assert_eq!(r["latency_us.max"], 9.0);
    assert_eq!(r["errors"], 0.0);
    assert_eq!(r["environment.fd_soft"], 20000.0);
    assert!(!r.contains_key("lost") && !r.contains_key("mode"));
    assert_eq!(r.len(), 5, "{r:?}");
    assert!(parse_json_numbers("not json").is_empty());
}

#[test]
fn a_report_of_another_workload_or_without_a_histogram_is_refused() {
    let json = plain().json();
    assert!(Report::from_json(&json.replace("\"churn\"", "\"sideways\"")).is_err());
    let older = json
        .replace("\"lost\":null,", "")
        .replace("\"server_cpu\":null,", "");
    assert_eq!(
        Report::from_json(&older).map(|r| r.json()),
        Ok(json.clone())
    );
    let err = Report::from_json(&json.replace("\"latency_hdr\"", "\"latency_hd\"")).unwrap_err();
    assert!(err.contains("latency_hdr"), "{err}");
}

/// A count: far beyond any run's, short of sums that overflow.
fn count() -> std::ops::Range<u64> {
    0..1 << 50
}

fn any_workload() -> impl Strategy<Value = Workload> {
    prop_oneof![
        Just(Workload::ClosedLoop),
        Just(Workload::OpenLoop),
        Just(Workload::Churn),
        Just(Workload::Idle),
        Just(Workload::Udp),
    ]
}

/// Any value of a struct of counts, built from its JSON keys (which
/// `the_keys_are_the_ones_a_user_already_parses` checks are its fields).
fn any_counts<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    keys: &'static str,
) -> impl Strategy<Value = T> {
    let names: Vec<&str> = keys.split_whitespace().collect();
    proptest::collection::vec(count(), names.len()).prop_map(move |values| {
        let object = names
            .iter()
            .map(|&name| name.to_owned())
            .zip(values.into_iter().map(serde_json::Value::from))
            .collect();
        serde_json::from_value(serde_json::Value::Object(object)).expect("the keys are the fields")
    })
}

fn any_spent() -> impl Strategy<Value = Option<CpuSpent>> {
    proptest::option::of((0.0..1e5, 0.0..1e5).prop_map(|(user, system)| CpuSpent { user, system }))
}

/// Any text, with the characters a hand-written reader trips on.
fn any_text() -> impl Strategy<Value = String> {
    "[a-z0-9.,:\"\\\\{} é\u{1F600}-]{0,24}"
}

prop_compose! {
    fn any_report()(
        workload in any_workload(),
        counts in proptest::array::uniform8(count()),
        shape in (0usize..2_000_000, 1usize..1_000, 1usize..1_000, 1usize..17_000_000),
        rates in (0.0..1e9, 0.0..1e12, 0.0..1e6),
        latencies in proptest::collection::vec(1u64..600_000_000, 0..40),
        connects in proptest::collection::vec(1u64..600_000_000, 0..10),
        optional in (proptest::option::of(count()), proptest::option::of(count()), proptest::option::of(0.0..1e4)),
        cpu in (any_spent(), any_spent()),
        chaos in proptest::option::of((proptest::collection::vec(any_counts::<Tally>(TALLY_KEYS), 9), proptest::collection::vec(any::<bool>(), 9), proptest::option::of(proptest::array::uniform3(count())))),
        kernel in proptest::option::of((any_counts::<KernelReading>(KERNEL_KEYS), any_counts::<KernelReading>(KERNEL_KEYS))),
        server_rss in proptest::option::of((count(), count())),
        environment in (count(), count(), any_text(), any_text(), any_text(), 0usize..100_000),
        origin in (any_text(), any_text(), proptest::option::of(count())),
    ) -> Report {
        let (connections, processes, pipeline, size) = shape;
        Report {
            run: RunSection { workload, connections, processes, size, pipeline, duration: rates.2 },
            honest: HonestSection {
                established: counts[0],
                failed: counts[1],
                messages: counts[2],
                messages_per_sec: rates.0,
                bytes_per_sec: rates.1,
                latency: histogram(&latencies),
                connect: histogram(&connects),
                errors: counts[3],
                mismatches: counts[4],
                lost: optional.0,
                idle_ok: optional.1,
                opened_in: optional.2,
            },
            cpu: CpuSection { server: cpu.0, bench: cpu.1 },
            chaos: chaos.map(|(tallies, played, memory)| ChaosSection {
                kinds: Kind::ALL
                    .into_iter()
                    .zip(tallies)
                    .zip(played)
                    .filter(|(_, played)| *played)
                    .map(|(kind_tally, _)| kind_tally)
                    .collect(),
                memory: memory.map(|[before, peak, after]| RssSpan { before, peak, after }),
            }),
            kernel: kernel.map(|(before, during)| KernelSide { before, during }),
            server_rss: server_rss.map(|(before, open)| OpenCost { before, open }),
            environment: Environment {
                fd_soft: environment.0,
                fd_hard: environment.1,
                sources: environment.2,
                cpus: environment.3,
                kernel: environment.4,
                cores: environment.5,
            },
            origin: Origin {
                run_id: origin.0,
                host: origin.1,
                started_ms: origin.2,
                command: String::new(),
                version: String::new(),
            },
            timeline: Timeline {
                failures: Failures {
                    refused: counts[5],
                    reset: counts[6],
                    first: (counts[5] > 0).then_some(Cause::Refused),
                    ..Failures::default()
                },
                rate_requested: optional.2,
                interrupted: counts[7] % 2 == 1,
                ..Timeline::default()
            },
        }
    }
}

proptest! {
    /// Any report, written and read back, is the same report: its counts,
    /// histograms, sections and strings exactly, its rates and seconds as
    /// rounded when written (so it writes the same line again), and the
    /// schema itself reads back equal.
    #[test]
    fn any_report_reads_back_as_itself(report in any_report()) {
        let line = report.json();
        prop_assert!(!line.contains('\n'));
        let schema: ReportJson = serde_json::from_str(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&schema, &ReportJson::of(&report));
        let back = Report::from_json(&line).map_err(TestCaseError::fail)?;
        prop_assert_eq!(back.json(), line.clone());
        prop_assert_eq!(&back.honest.latency, &report.honest.latency);
        prop_assert_eq!(&back.honest.connect, &report.honest.connect);
        prop_assert_eq!(back.chaos.as_ref().map(|c| &c.kinds), report.chaos.as_ref().map(|c| &c.kinds));
        prop_assert_eq!(&back.run.workload, &report.run.workload);
        prop_assert_eq!(back.kernel, report.kernel);
        prop_assert_eq!(&back.environment, &report.environment);
        let numbers = parse_json_numbers(&line);
        prop_assert_eq!(numbers["messages"], report.honest.messages as f64);
    }
}
