//! The merge, field by field: two parts with a different value in every
//! field it combines, so that a field added to the wrong one, subtracted,
//! or left out shows; and the overlap warnings, on windows placed by hand.

use super::*;
use crate::bench::report::fixtures::{full, plain};

/// Two parts of one load, taken at the same time on two hosts, with every
/// summed field nonzero and different.
fn two_parts() -> (Report, Report) {
    let mut a = full();
    let mut b = full();
    for (r, k) in [(&mut a, 1.0), (&mut b, 10.0)] {
        let h = &mut r.honest;
        h.established = 4 * k as u64;
        h.failed = k as u64;
        h.messages = 100 * k as u64;
        h.messages_per_sec = 200.0 * k;
        h.bytes_per_sec = 300.0 * k;
        h.errors = 2 * k as u64;
        h.mismatches = 3 * k as u64;
        r.timeline.rate_requested = Some(500.0 * k);
        r.timeline.bench_run = Some(CpuSpent {
            user: 0.5 * k,
            system: 0.25 * k,
        });
        r.cpu.bench = Some(CpuSpent {
            user: 0.125 * k,
            system: 0.0625 * k,
        });
    }
    b.origin.run_id = "other-1-2".into();
    b.origin.host = "other".into();
    b.environment.sources = "127.0.0.2,kernel-chosen".into();
    b.timeline.interrupted = true;
    (a, b)
}

#[test]
fn counts_rates_and_cpu_are_summed_field_by_field() {
    let (a, b) = two_parts();
    let m = Report::merge(vec![a, b]).expect("one load");
    let h = &m.honest;
    assert_eq!(
        (h.established, h.failed, h.messages, h.errors, h.mismatches),
        (44, 11, 1100, 22, 33)
    );
    assert_eq!((h.messages_per_sec, h.bytes_per_sec), (2200.0, 3300.0));
    assert_eq!(m.timeline.rate_requested, Some(5500.0));
    let spent = |s: Option<CpuSpent>| s.map(|s| (s.user, s.system));
    assert_eq!(spent(m.timeline.bench_run), Some((5.5, 2.75)));
    assert_eq!(spent(m.cpu.bench), Some((1.375, 0.6875)));
}

#[test]
fn a_part_alone_keeps_its_optional_figures() {
    let (a, _) = two_parts();
    let mut bare = plain();
    bare.origin.run_id = "bare-1-2".into();
    bare.run.workload = a.run.workload;
    let m = Report::merge(vec![bare, a]).expect("one load");
    assert_eq!(m.timeline.rate_requested, Some(500.0));
    assert_eq!(
        m.timeline.bench_run.map(|s| (s.user, s.system)),
        Some((0.5, 0.25))
    );
}

#[test]
fn hosts_and_sources_are_listed_once_each_and_an_interruption_taints_the_whole() {
    let (a, b) = two_parts();
    let mut c = a.clone();
    c.origin.run_id = "third-1-2".into();
    let m = Report::merge(vec![a, b, c]).expect("one load");
    assert_eq!(m.origin.host, "host,other");
    assert_eq!(m.environment.sources, "kernel-chosen,127.0.0.2");
    assert!(m.timeline.interrupted, "one part was cut short");
}

#[test]
fn windows_apart_are_warned_of_with_their_gap_and_a_window_never_with_itself() {
    let (mut a, mut b) = two_parts();
    // 1 s windows, the second starting 3 s after the first: 2 s apart.
    a.run.duration = 1.0;
    b.run.duration = 1.0;
    a.origin.started_ms = Some(10_000);
    b.origin.started_ms = Some(13_000);
    let warnings = overlap_warnings(&[a.clone(), b.clone()]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("reports 1 and 2 ") && warnings[0].contains("(2.0 s apart)"),
        "{warnings:?}"
    );
    // Overlapping by half: nothing to say.
    b.origin.started_ms = Some(10_500);
    assert_eq!(overlap_warnings(&[a.clone(), b]), Vec::<String>::new());
    // A window of no length overlaps no other, but is not compared with
    // itself.
    a.run.duration = 0.0;
    assert_eq!(overlap_warnings(&[a]), Vec::<String>::new());
}
