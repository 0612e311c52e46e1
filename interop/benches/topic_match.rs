//! Criterion benchmarks of topic matching: the trie router uncached and cached, the naive
//! linear matcher, and the hash-lookup floor, over the runner's workload.
//!
//! Run with `cargo bench -p warren-interop --bench topic_match`; `warren-bench topic` prints the same
//! comparison as one table.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use warrenmq::routing::{topic_matches, Binding, DestinationId, Router, RoutingInput, TopicRouter};
use warrenmq::FieldTable;

#[path = "../../src/bin/warren-bench/workload.rs"]
#[allow(dead_code)]
mod workload;

use workload::{KeyDistribution, Spec, Workload};

/// The runner's default workload with `bindings` bindings.
fn workload(bindings: usize) -> Workload {
    Workload::generate(&Spec {
        bindings,
        wildcard_pct: 30,
        key_pool: 4096,
        stream: 1 << 14,
        distribution: KeyDistribution::Uniform,
        vocabulary: 256,
        seed: 42,
    })
}

fn router(w: &Workload, cache: bool) -> TopicRouter {
    let router = TopicRouter::with_cache(cache);
    let arguments = FieldTable::default();
    for (i, key) in w.patterns.iter().enumerate() {
        let destination = DestinationId::new(i as u64);
        let binding = Binding {
            destination,
            key,
            arguments: &arguments,
        };
        router.bind(binding).expect("topic bindings are valid");
    }
    router
}

/// Benchmarks `op` on the workload's keys, one key per iteration.
fn bench_keys(
    c: &mut Criterion,
    name: &str,
    n: usize,
    keys: &[String],
    mut op: impl FnMut(&str, &mut Vec<DestinationId>),
) {
    let mut out = Vec::new();
    let mut at = 0;
    c.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
        b.iter(|| {
            out.clear();
            op(&keys[at], &mut out);
            at = (at + 1) % keys.len();
            black_box(out.len())
        })
    });
}

fn topic_match(c: &mut Criterion) {
    for n in [10_000, 100_000] {
        let w = workload(n);
        for (name, cache) in [("trie_uncached", false), ("trie_cached", true)] {
            let r = router(&w, cache);
            bench_keys(c, name, n, &w.keys, |key, out| {
                let input = RoutingInput {
                    routing_key: key,
                    headers: None,
                };
                r.route(input, out)
            });
        }
        let mut floor: HashMap<&str, Vec<DestinationId>> = HashMap::new();
        for (i, p) in w.patterns.iter().enumerate() {
            floor
                .entry(p)
                .or_default()
                .push(DestinationId::new(i as u64));
        }
        bench_keys(c, "hash_floor", n, &w.keys, |key, out| {
            if let Some(d) = floor.get(key) {
                out.extend_from_slice(d);
            }
        });
        bench_keys(c, "naive", n, &w.keys, |key, out| {
            for (i, p) in w.patterns.iter().enumerate() {
                if topic_matches(p, key) {
                    out.push(DestinationId::new(i as u64));
                }
            }
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = topic_match
}
criterion_main!(benches);
