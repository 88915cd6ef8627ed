//! Micro-benchmarks of the streaming uppercase (`cargo bench --bench upper`):
//! the ASCII fast path and mixed Unicode, in bytes/s, against the naive
//! `String::from_utf8_lossy(..).to_uppercase()` (which allocates, and turns
//! invalid bytes into U+FFFD instead of passing them through).

// criterion_group! generates a public function with no doc comment.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use reactor_echo::upper::UpperStream;
use std::hint::black_box;

const CHUNK: usize = 64 * 1024;

fn inputs() -> [(&'static str, Vec<u8>); 2] {
    let ascii = "the quick brown fox jumps over the lazy dog 0123456789\n".repeat(CHUNK / 55 + 1);
    let mixed = "straße ǰ ΐ 😀 abc Grüße, 世界 ".repeat(CHUNK / 20 + 1);
    [
        ("ascii", ascii.into_bytes()[..CHUNK].to_vec()),
        ("mixed", mixed.into_bytes()[..CHUNK].to_vec()),
    ]
}

fn uppercase(c: &mut Criterion) {
    for (name, input) in inputs() {
        let mut group = c.benchmark_group(format!("upper/{name}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("streaming", |b| {
            let mut out = Vec::with_capacity(3 * CHUNK);
            b.iter_batched_ref(
                || input.clone(),
                |chunk| {
                    out.clear();
                    let mut stream = UpperStream::new();
                    black_box(stream.feed(chunk, &mut out));
                    stream.finish(&mut out);
                },
                BatchSize::SmallInput,
            );
        });
        group.bench_function("naive_lossy_to_uppercase", |b| {
            b.iter(|| black_box(String::from_utf8_lossy(black_box(&input)).to_uppercase()));
        });
        group.finish();
    }
}

criterion_group!(benches, uppercase);
criterion_main!(benches);
