//! Running the load generator from a test: `reactor-echo bench` with its
//! JSON report, and the report's numbers.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use super::kinds::BIN;

/// `reactor-echo bench --json --addr ADDR ARGS` (with `--warmup 0` unless
/// ARGS sets it).
pub fn bench_at(addr: impl ToString, args: &[&str]) -> Output {
    let addr = addr.to_string();
    let mut all = vec!["--json", "--addr", &addr];
    all.extend_from_slice(args);
    if !args.contains(&"--warmup") {
        all.extend_from_slice(&["--warmup", "0"]);
    }
    bench(&all)
}

/// `reactor-echo bench ARGS`, to its end.
pub fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run bench")
}

/// The numbers of a `--json` report, flattened (`latency_us.p99`).
pub fn report(out: &Output) -> BTreeMap<String, f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    reactor_echo::bench::report::parse_json_numbers(line)
}
