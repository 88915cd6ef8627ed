//! The series: its counted intervals add up to the run's totals, its
//! memory is bounded however long the run, and points of several
//! processes add up exactly.

use std::time::{Duration, Instant};

use super::*;
use crate::bench::engine::plan::Outcome;

/// Replies of latencies `1..=n` microseconds.
fn replies(series: &mut Series, n: u64) {
    for micros in 1..=n {
        series.reply(micros * 7);
        series.bytes(64);
    }
}

#[test]
fn counted_intervals_add_up_to_the_totals() {
    let mut series = Series::new(None).expect("a series");
    let mut outcome = Outcome::new().expect("an outcome");
    let t = Instant::now();
    let s = Duration::from_secs(1);
    // Warm-up replies are not counted; three measured seconds are; the
    // replies after the window are not.
    series.close(t, Stage::Warmup, &mut outcome, 5);
    replies(&mut series, 100);
    series.close(t + s, Stage::Measuring, &mut outcome, 5);
    for (second, n) in [(2, 300u64), (3, 0), (4, 50)] {
        replies(&mut series, n);
        series.close(t + s * second, Stage::Measuring, &mut outcome, 5);
    }
    replies(&mut series, 20);
    outcome.errors = 2;
    series.close(t + s * 5, Stage::After, &mut outcome, 3);
    replies(&mut series, 7);
    let last = series.finish(t + s * 6, &mut outcome, 0);
    assert_eq!(last.stage, Stage::After);
    assert_eq!(outcome.messages, 370);
    assert_eq!(outcome.bytes, 370 * 64);
    let counted: Vec<&Point> = outcome.series.iter().filter(|p| p.stage.counts()).collect();
    assert_eq!(counted.len(), 4);
    assert_eq!(
        counted.iter().map(|p| p.messages).sum::<u64>(),
        outcome.messages
    );
    let mut sum = crate::bench::engine::plan::microseconds().expect("bounds");
    for point in &counted {
        if let Some(h) = point.histogram() {
            sum.add(h).expect("same bounds");
        }
    }
    assert_eq!(
        sum, outcome.latency,
        "the intervals are the run's histogram"
    );
    // An interval with no replies has no latency: null, not 0.
    let empty = counted.iter().find(|p| p.messages == 0).expect("second 3");
    assert_eq!((empty.latency_us, empty.latency_hdr.as_str()), (None, ""));
    // The errors are in the interval they happened in, once.
    let errors: Vec<u64> = outcome.series.iter().map(|p| p.errors).collect();
    assert_eq!(errors.iter().sum::<u64>(), 2);
    assert_eq!(outcome.series.last().map(|p| p.messages), Some(7));
}

#[test]
fn a_long_run_keeps_a_bounded_number_of_points() {
    let mut series = Series::new(None).expect("a series");
    let mut outcome = Outcome::new().expect("an outcome");
    let t = Instant::now();
    series.close(t, Stage::Measuring, &mut outcome, 1);
    let intervals = MAX_POINTS as u32 * 3 + 17;
    for second in 1..=intervals {
        series.reply(u64::from(second));
        series.close(
            t + Duration::from_secs(u64::from(second)),
            Stage::Measuring,
            &mut outcome,
            1,
        );
    }
    series.finish(
        t + Duration::from_secs(u64::from(intervals) + 1),
        &mut outcome,
        1,
    );
    assert!(
        outcome.series.len() <= MAX_POINTS,
        "{}",
        outcome.series.len()
    );
    assert!(
        outcome.series.len() > MAX_POINTS / 4,
        "{}",
        outcome.series.len()
    );
    let counted: u64 = outcome
        .series
        .iter()
        .filter(|p| p.stage.counts())
        .map(|p| p.messages)
        .sum();
    assert_eq!(counted, u64::from(intervals));
    assert_eq!(outcome.messages, u64::from(intervals));
    let covered: f64 = outcome.series.iter().map(|p| p.length_s).sum();
    assert!(
        (covered - f64::from(intervals) - 1.0).abs() < 1.0,
        "{covered}"
    );
}

#[test]
fn points_of_two_processes_add_up_exactly() {
    let mut outcomes = Vec::new();
    for offset in [0u64, 1_000] {
        let mut series = Series::new(None).expect("a series");
        let mut outcome = Outcome::new().expect("an outcome");
        let t = Instant::now();
        series.close(t, Stage::Measuring, &mut outcome, 2);
        for micros in 1..=500 {
            series.reply(micros + offset);
        }
        series.finish(t + Duration::from_secs(1), &mut outcome, 2);
        outcomes.push(outcome);
    }
    let mut merged = outcomes[0].series.clone();
    point::add_series(&mut merged, &outcomes[1].series);
    let measured = merged
        .iter()
        .find(|p| p.stage == Stage::Measuring)
        .expect("the window");
    assert_eq!(measured.messages, 1_000);
    assert_eq!(measured.connections, 4);
    let mut both = outcomes[0].latency.clone();
    both.add(&outcomes[1].latency).expect("same bounds");
    assert_eq!(measured.histogram(), Some(both.clone()));
    assert_eq!(measured.latency_us, Some(Latency::of(&both)));
}
