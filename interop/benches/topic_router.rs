//! A criterion bench of the public [`TopicRouter`] on *your* routing table: how long one
//! route takes, with and without the router's per-thread result cache.
//!
//! To use it in your own crate, copy this file to `benches/topic_router.rs`, add
//! `criterion` to `[dev-dependencies]` and
//! `[[bench]] name = "topic_router"  harness = false` to Cargo.toml, then replace
//! `BINDINGS` and `KEYS` with your own — or point the environment variables
//! `TOPIC_PATTERNS` and `TOPIC_KEYS` at files in the format of
//! `warren-bench topic --patterns FILE --keys FILE` (a binding key and an optional queue name
//! per line; a routing key per line).
//!
//! ```text
//! cargo bench -p warren-interop --bench topic_router
//! TOPIC_PATTERNS=patterns.txt TOPIC_KEYS=keys.txt cargo bench -p warren-interop --bench topic_router
//! ```

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use warrenmq::routing::{Binding, DestinationId, Router, RoutingInput, TopicRouter};
use warrenmq::FieldTable;

/// Binding key and queue of each binding (the queue is only a name: same name, same queue).
const BINDINGS: &[(&str, &str)] = &[
    ("stock.*.nyse", "nyse"),
    ("stock.#", "all_stock"),
    ("*.usd.*", "dollars"),
    ("stock.eur.nyse", "nyse"),
    ("logs.error.#", "errors"),
    ("logs.*.payments", "payments"),
    ("#", "audit"),
];

/// The routing keys published, routed in turn.
const KEYS: &[&str] = &[
    "stock.usd.nyse",
    "stock.eur.nyse",
    "logs.error.payments",
    "logs.info.payments",
    "weather.eu.paris",
];

/// The table and keys: from the files named by `TOPIC_PATTERNS` and `TOPIC_KEYS`, else the
/// constants above.
fn table() -> (Vec<(String, String)>, Vec<String>) {
    let read = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|path| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    };
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    };
    let bindings = match read("TOPIC_PATTERNS") {
        Some(text) => lines(&text)
            .iter()
            .enumerate()
            .map(
                |(i, line)| match line.trim().split_once(char::is_whitespace) {
                    Some((key, queue)) => (key.to_owned(), queue.trim().to_owned()),
                    None => (line.trim().to_owned(), format!("line {i}")),
                },
            )
            .collect(),
        None => BINDINGS
            .iter()
            .map(|(k, q)| (k.to_string(), q.to_string()))
            .collect(),
    };
    let keys = match read("TOPIC_KEYS") {
        Some(text) => lines(&text),
        None => KEYS.iter().map(|k| k.to_string()).collect(),
    };
    (bindings, keys)
}

/// A router holding every binding, each queue name standing for one destination.
fn router(bindings: &[(String, String)], cache: bool) -> TopicRouter {
    let router = TopicRouter::with_cache(cache);
    let mut queues: HashMap<&str, DestinationId> = HashMap::new();
    let arguments = FieldTable::new();
    for (key, queue) in bindings {
        let next = DestinationId::new(queues.len() as u64);
        let destination = *queues.entry(queue.as_str()).or_insert(next);
        router
            .bind(Binding {
                destination,
                key,
                arguments: &arguments,
            })
            .expect("a topic binding key is always valid");
    }
    router
}

fn topic_router(c: &mut Criterion) {
    let (bindings, keys) = table();
    assert!(!keys.is_empty(), "no routing keys to route");
    let mut group = c.benchmark_group("topic_router");
    for (name, cache) in [("uncached", false), ("cached", true)] {
        let router = router(&bindings, cache);
        let mut out = Vec::new();
        let mut next = keys.iter().cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let input = RoutingInput {
                    routing_key: next.next().expect("cycles forever"),
                    headers: None,
                };
                router.route(black_box(input), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, topic_router);
criterion_main!(benches);
