//! The report as one JSON object: one schema, [`ReportJson`], derived with
//! `serde`, that `bench --json` writes and `bench merge`, the parent of
//! `bench --processes N` and the benches read back.
//!
//! The field names are the ones the report has always had, so that a
//! script that parsed an earlier report parses this one: `"mode"` is the
//! [`Workload`], the percentiles are `latency_us` and `connect_us`, the
//! histograms `latency_hdr` and `connect_hdr` (HdrHistogram's interchange
//! encoding, `interchange.rs`), each hostile kind's counts are under
//! `chaos_KIND` (`Kind::json_key`). Which keys are present did not change
//! either: `lost`, `idle_ok`, `opened_s` and the two CPU objects are always
//! there, `null` when not measured; `chaos`, its kinds and `server_rss_kib`
//! only in a `--chaos` run, the kernel's two readings and
//! `server_rss_open_kib` only when they were taken.
//!
//! A key that may be `null` may be missing too (an `Option` field reads a
//! missing key as `None`): reports written before a key was added still
//! read. The percentiles of an empty histogram are `null` (a run without
//! replies has no latency, not a latency of 0), and so is the CPU per
//! message of a run without messages.
//!
//! Keys added with the series: `series` (one object an interval, the
//! points of `measure/series/point.rs`), `failures` (counts by cause and
//! the first), `run_id`, `host`, `started_ms`, `command` and `version`
//! (which run this is: `bench merge` refuses one run twice and warns on
//! windows that do not overlap), `rate_requested` and `schedule_lag_ms`
//! (the open loop's asked rate beside the achieved `messages_per_sec`, and
//! how far the generator fell behind), `interrupted` (Ctrl-C), and
//! `bench_run_cpu` and `server_run_cpu` (the whole run's CPU time).
//!
//! Rates are written to one decimal and seconds to three, as they always
//! were: the figures are rounded when the report becomes its JSON
//! ([`ReportJson::of`]), so that what is read back writes the same text
//! again.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::interchange;
use super::{
    ChaosSection, CpuSection, CpuSpent, Environment, HonestSection, Latency, Origin, Report,
    RunSection, Timeline, Workload,
};
use crate::bench::chaos::kind::Kind;
use crate::bench::chaos::tally::Tally;
use crate::bench::measure::failures::Failures;
use crate::bench::measure::kernel::{KernelReading, KernelSide};
use crate::bench::measure::series::Point;
use crate::bench::measure::server_memory::{OpenCost, RssSpan};

/// One report, as `bench --json` prints it (see the module's doc for the
/// names and which keys are present when).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportJson {
    /// The kind of load (`closed-loop`, `open-loop`, `churn`, `idle`, `udp`).
    #[serde(rename = "mode")]
    pub workload: Workload,
    /// Connections asked for (UDP: sockets).
    pub connections: usize,
    /// Load-generator processes that took part.
    #[serde(default = "one")]
    pub processes: usize,
    /// Connections that completed their handshake.
    pub established: u64,
    /// Connects that failed or timed out.
    pub failed: u64,
    /// Messages answered in the measured window.
    pub messages: u64,
    /// Messages per second, to one decimal.
    pub messages_per_sec: f64,
    /// Reply bytes per second, to one decimal.
    pub bytes_per_sec: f64,
    /// Message latency percentiles (written from `latency_hdr`; not read;
    /// `null` without replies).
    pub latency_us: Option<Latency>,
    /// Connect time percentiles (written from `connect_hdr`; not read;
    /// `null` without connects).
    pub connect_us: Option<ConnectPercentiles>,
    /// Connections lost mid-run.
    pub errors: u64,
    /// Reply bytes that were not what the server owed.
    pub mismatches: u64,
    /// UDP: datagrams without a reply in time.
    pub lost: Option<u64>,
    /// Idle: round trips after the hold that succeeded.
    pub idle_ok: Option<u64>,
    /// Seconds until every connection was open, to three decimals.
    pub opened_s: Option<f64>,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// Seconds measured, to three decimals.
    pub duration_s: f64,
    /// The server's CPU time over the window (`--server-pid`).
    pub server_cpu: Option<CpuJson>,
    /// The load generator's own CPU time over the window.
    pub bench_cpu: Option<CpuJson>,
    /// `--chaos`: the hostile peers' totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosTotals>,
    /// `--chaos`: each kind's counts, under `chaos_KIND`.
    #[serde(flatten)]
    pub chaos_kinds: KindTallies,
    /// `--chaos`: the server's memory over the run; present (maybe `null`)
    /// exactly when `chaos` is.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub server_rss_kib: Option<Option<RssSpan>>,
    /// The kernel's figures before the first connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_before: Option<KernelReading>,
    /// The kernel's figures with every connection open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_during: Option<KernelReading>,
    /// The server's memory before the first connect and with all open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_open_kib: Option<OpenCost>,
    /// The message latency histogram, interchange-encoded.
    pub latency_hdr: String,
    /// The connect time histogram, interchange-encoded.
    pub connect_hdr: String,
    /// What makes the figures comparable.
    pub environment: Environment,
    /// Which run this is.
    #[serde(flatten)]
    pub origin: Origin,
    /// `--rate`: the rate asked for, messages per second.
    pub rate_requested: Option<f64>,
    /// Open loop: the most the generator fell behind its schedule, ms.
    pub schedule_lag_ms: Option<f64>,
    /// Cut short by Ctrl-C: the figures are of the part that ran.
    #[serde(default)]
    pub interrupted: bool,
    /// Why connects failed and connections ended, by kind.
    #[serde(default)]
    pub failures: Failures,
    /// The load generator's CPU time over the whole run.
    pub bench_run_cpu: Option<CpuJson>,
    /// The server's CPU time over the whole run (`--server-pid`).
    pub server_run_cpu: Option<CpuJson>,
    /// The run, one point an interval.
    #[serde(default)]
    pub series: Vec<Point>,
}

/// The connect time's percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectPercentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// CPU seconds over the window, to three decimals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuJson {
    /// In user space.
    pub user_s: f64,
    /// In the kernel.
    pub system_s: f64,
    /// Both, in microseconds per message answered (written; not read;
    /// `null` without messages).
    #[serde(default)]
    pub us_per_msg: Option<f64>,
}

/// The hostile peers' totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChaosTotals {
    /// Hostile peers, all kinds.
    pub peers: u64,
    /// Their wrong or undelivered reply bytes.
    pub mismatches: u64,
}

/// Each hostile kind's counts, as the top-level keys `chaos_KIND`, in
/// [`Kind::ALL`] order. Written by hand rather than derived: the keys come
/// from the kinds, so that a new kind needs no new field here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindTallies(pub Vec<(Kind, Tally)>);

impl Serialize for KindTallies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (kind, tally) in &self.0 {
            map.serialize_entry(&kind.json_key(), tally)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for KindTallies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Keeps the `chaos_KIND` keys of the report's other keys.
        struct Kinds;
        impl<'de> Visitor<'de> for Kinds {
            type Value = KindTallies;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a report's keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KindTallies, A::Error> {
                let mut kinds = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match Kind::ALL.into_iter().find(|k| k.json_key() == key) {
                        Some(kind) => kinds.push((kind, map.next_value()?)),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                kinds.sort_by_key(|(kind, _)| kind.index());
                Ok(KindTallies(kinds))
            }
        }
        deserializer.deserialize_map(Kinds)
    }
}

/// A key that may be `null` but counts as present when it is.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A report of one process, when `processes` is missing.
fn one() -> usize {
    1
}

/// `value` rounded to `decimals` places, as `{:.N}` prints it.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl CpuJson {
    fn of(spent: CpuSpent, messages: u64) -> CpuJson {
        CpuJson {
            user_s: rounded(spent.user, 3),
            system_s: rounded(spent.system, 3),
            us_per_msg: (messages > 0).then(|| rounded(spent.per_message(messages), 3)),
        }
    }
}

impl ReportJson {
    /// The report in the schema, its figures rounded as printed.
    pub fn of(report: &Report) -> ReportJson {
        let (run, honest) = (&report.run, &report.honest);
        let connect = Latency::of_some(&honest.connect);
        let encoded = |h| interchange::encode(h).unwrap_or_default();
        let cpu = |spent: Option<CpuSpent>| spent.map(|s| CpuJson::of(s, honest.messages));
        ReportJson {
            workload: run.workload,
            connections: run.connections,
            processes: run.processes,
            established: honest.established,
            failed: honest.failed,
            messages: honest.messages,
            messages_per_sec: rounded(honest.messages_per_sec, 1),
            bytes_per_sec: rounded(honest.bytes_per_sec, 1),
            latency_us: Latency::of_some(&honest.latency),
            connect_us: connect.map(|c| ConnectPercentiles {
                p50: c.p50,
                p99: c.p99,
                max: c.max,
            }),
            errors: honest.errors,
            mismatches: honest.mismatches,
            lost: honest.lost,
            idle_ok: honest.idle_ok,
            opened_s: honest.opened_in.map(|t| rounded(t, 3)),
            size: run.size,
            pipeline: run.pipeline,
            duration_s: rounded(run.duration, 3),
            server_cpu: cpu(report.cpu.server),
            bench_cpu: cpu(report.cpu.bench),
            chaos: report.chaos.as_ref().map(|c| ChaosTotals {
                peers: c.peers(),
                mismatches: c.mismatches(),
            }),
            chaos_kinds: KindTallies(
                report
                    .chaos
                    .as_ref()
                    .map_or_else(Vec::new, |c| c.kinds.clone()),
            ),
            server_rss_kib: report.chaos.as_ref().map(|c| c.memory),
            kernel_before: report.kernel.map(|k| k.before),
            kernel_during: report.kernel.map(|k| k.during),
            server_rss_open_kib: report.server_rss,
            latency_hdr: encoded(&honest.latency),
            connect_hdr: encoded(&honest.connect),
            environment: report.environment.clone(),
            origin: report.origin.clone(),
            rate_requested: report.timeline.rate_requested,
            schedule_lag_ms: report.timeline.schedule_lag_ms.map(|ms| rounded(ms, 3)),
            interrupted: report.timeline.interrupted,
            failures: report.timeline.failures,
            bench_run_cpu: cpu(report.timeline.bench_run),
            server_run_cpu: cpu(report.timeline.server_run),
            series: report.timeline.series.clone(),
        }
    }

    /// The report it describes (the percentiles are worked out again from
    /// the histograms).
    ///
    /// # Errors
    /// A histogram that does not decode, named.
    pub fn into_report(self) -> Result<Report, String> {
        let histogram = |key: &str, text: &str| {
            interchange::decode(text).map_err(|e| format!("\"{key}\" holds {e}"))
        };
        let spent = |cpu: Option<CpuJson>| {
            cpu.map(|c| CpuSpent {
                user: c.user_s,
                system: c.system_s,
            })
        };
        Ok(Report {
            run: RunSection {
                workload: self.workload,
                connections: self.connections,
                processes: self.processes,
                size: self.size,
                pipeline: self.pipeline,
                duration: self.duration_s,
            },
            honest: HonestSection {
                established: self.established,
                failed: self.failed,
                messages: self.messages,
                messages_per_sec: self.messages_per_sec,
                bytes_per_sec: self.bytes_per_sec,
                latency: histogram("latency_hdr", &self.latency_hdr)?,
                connect: histogram("connect_hdr", &self.connect_hdr)?,
                errors: self.errors,
                mismatches: self.mismatches,
                lost: self.lost,
                idle_ok: self.idle_ok,
                opened_in: self.opened_s,
            },
            cpu: CpuSection {
                server: spent(self.server_cpu),
                bench: spent(self.bench_cpu),
            },
            chaos: self.chaos.map(|_| ChaosSection {
                kinds: self.chaos_kinds.0,
                memory: self.server_rss_kib.flatten(),
            }),
            kernel: self
                .kernel_before
                .zip(self.kernel_during)
                .map(|(before, during)| KernelSide { before, during }),
            server_rss: self.server_rss_open_kib,
            environment: self.environment,
            origin: self.origin,
            timeline: Timeline {
                series: self.series,
                failures: self.failures,
                rate_requested: self.rate_requested,
                schedule_lag_ms: self.schedule_lag_ms,
                interrupted: self.interrupted,
                bench_run: spent(self.bench_run_cpu),
                server_run: spent(self.server_run_cpu),
            },
        })
    }
}

impl Report {
    /// The report as one JSON object on one line.
    pub fn json(&self) -> String {
        // Serializing plain numbers, strings and maps with string keys
        // cannot fail; an empty object would say so if it ever did.
        serde_json::to_string(&ReportJson::of(self)).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads back a report written by [`Report::json`].
    ///
    /// # Errors
    /// A sentence saying what is missing or wrong.
    pub fn from_json(line: &str) -> Result<Report, String> {
        serde_json::from_str::<ReportJson>(line)
            .map_err(|e| e.to_string())?
            .into_report()
    }
}

/// Reads back the numbers of a JSON object (a [`Report::json`] line, or any
/// other report a bench reads), flattening the nested objects into dotted
/// keys (`latency_us.p99`); strings, booleans, arrays and nulls are left
/// out, and a line that is not a JSON object gives an empty map. Scripts,
/// the tests and the benches read reports with it.
pub fn parse_json_numbers(line: &str) -> BTreeMap<String, f64> {
    fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(v) = n.as_f64() {
                    out.insert(prefix.to_owned(), v);
                }
            }
            serde_json::Value::Object(members) => {
                for (key, member) in members {
                    let key = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&key, member, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str(line.trim()) {
        flatten("", &value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;
