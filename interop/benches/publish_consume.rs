//! Criterion benchmarks of the publish → consume hot path: a direct exchange, one producer
//! thread and one consumer thread, without acks and with manual acks, beside an unbounded
//! crossbeam channel moving the same messages.
//!
//! Run with `cargo bench -p warren-interop --bench publish_consume`; `warren-bench throughput` prints the same
//! comparison as one table. Both time the runner's `flow` module, so they measure the same
//! code.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../../src/bin/warren-bench/flow.rs"]
#[allow(dead_code)]
mod flow;

use flow::{crossbeam_round, warren_round, Ack, Flow, Route};

/// Messages per timed round (one criterion iteration).
const MESSAGES: u64 = 20_000;

/// A direct 1 → 1 flow of 100-byte messages with this ack mode.
fn direct(ack: Ack) -> Flow {
    Flow {
        route: Route::Direct,
        producers: 1,
        consumers: 1,
        ack,
        size: 100,
        messages: MESSAGES,
    }
}

/// Times `iters` rounds with `round`.
fn rounds(iters: u64, round: impl Fn() -> Duration) -> Duration {
    (0..iters).map(|_| round()).sum()
}

fn publish_consume(c: &mut Criterion) {
    let cases = [
        ("no_ack", Ack::None),
        ("ack_each", Ack::Each),
        ("ack_multiple_100", Ack::Multiple(100)),
    ];
    let mut group = c.benchmark_group("publish_consume_direct_1x1_100b");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    for (name, ack) in cases {
        let flow = direct(ack);
        group.bench_function(format!("warren_{name}"), |b| {
            b.iter_custom(|iters| rounds(iters, || warren_round(&flow).expect("a Warren round")))
        });
    }
    let flow = direct(Ack::None);
    group.bench_function("crossbeam_unbounded", |b| {
        b.iter_custom(|iters| rounds(iters, || crossbeam_round(&flow)))
    });
    group.finish();
}

criterion_group!(benches, publish_consume);
criterion_main!(benches);
