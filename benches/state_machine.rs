//! Micro-benchmarks of the connection's per-event work, isolated from the
//! kernel (`cargo bench --bench state_machine`): one `State::next`
//! transition, and the service's reply to a 64-byte chunk.

// criterion_group! generates a public function with no doc comment.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use reactor_echo::reactor::state::{Input, State};
use reactor_echo::service::{Mode, Service};
use std::hint::black_box;

fn per_event(c: &mut Criterion) {
    c.bench_function("state/next Open+Received", |b| {
        b.iter(|| black_box(State::Open).next(black_box(Input::Received { owed: 0 }), 65_536));
    });
    c.bench_function("state/next walk of a connection's life", |b| {
        let inputs = [
            Input::Received { owed: 0 },
            Input::Received { owed: 70_000 },
            Input::Written { owed: 0 },
            Input::Eof { owed: 10 },
            Input::Written { owed: 0 },
        ];
        b.iter(|| {
            inputs
                .iter()
                .fold(State::Open, |s, &i| s.next(black_box(i), 65_536))
        });
    });
    for mode in [Mode::Echo, Mode::Upper] {
        let service = Service::new(mode, "Hello, Client!");
        c.bench_function(&format!("service/on_bytes {mode} 64 B"), |b| {
            let mut stream = service.new_stream();
            let mut chunk = *b"the quick brown fox jumps over the lazy dog 0123456789 abcdefgh\n";
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                black_box(
                    service
                        .on_bytes(&mut stream, black_box(&mut chunk), &mut out)
                        .bytes
                        .len(),
                )
            });
        });
    }
}

criterion_group!(benches, per_event);
criterion_main!(benches);
