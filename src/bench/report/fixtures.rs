//! Reports for the tests of the report's modules (its JSON, its merge): one
//! with nothing optional, and one with every section.

use hdrhistogram::Histogram;

use super::*;
use crate::bench::chaos::kind::Kind;
use crate::bench::measure::kernel::{KernelReading, KernelSide};

/// A histogram with a report's bounds, holding `values`.
pub(crate) fn histogram(values: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    for &v in values {
        h.record(v).expect("in bounds");
    }
    h
}

/// A report with nothing optional: what churn writes.
pub(crate) fn plain() -> Report {
    Report {
        run: RunSection {
            workload: Workload::Churn,
            connections: 4,
            processes: 1,
            size: 64,
            pipeline: 1,
            duration: 0.5004,
        },
        honest: HonestSection {
            established: 40,
            failed: 0,
            messages: 38,
            messages_per_sec: 75.94,
            bytes_per_sec: 4860.16,
            latency: histogram(&[120, 130, 900]),
            connect: histogram(&[50, 60]),
            errors: 0,
            mismatches: 0,
            lost: None,
            idle_ok: None,
            opened_in: None,
        },
        cpu: CpuSection {
            server: None,
            bench: None,
        },
        chaos: None,
        kernel: None,
        server_rss: None,
        environment: Environment {
            fd_soft: 20_000,
            fd_hard: 20_000,
            sources: "kernel-chosen".into(),
            cpus: "0-1".into(),
            kernel: "6.1.0".into(),
            cores: 2,
        },
        origin: Origin {
            run_id: "host-1-2".into(),
            host: "host".into(),
            started_ms: Some(1_700_000_000_000),
            command: "reactor-echo bench".into(),
            version: "0.1.0".into(),
        },
        timeline: Timeline::default(),
    }
}

/// A report with every section.
pub(crate) fn full() -> Report {
    let mut r = plain();
    r.run.workload = Workload::ClosedLoop;
    r.honest.opened_in = Some(0.0123);
    let spent = CpuSpent {
        user: 0.03,
        system: 0.45,
    };
    r.cpu = CpuSection {
        server: Some(spent),
        bench: Some(spent),
    };
    r.chaos = Some(ChaosSection {
        kinds: Kind::TCP.iter().map(|&k| (k, Tally::default())).collect(),
        memory: Some(RssSpan::default()),
    });
    r.kernel = Some(KernelSide {
        before: KernelReading::default(),
        during: KernelReading::default(),
    });
    r.server_rss = Some(OpenCost::default());
    r
}
