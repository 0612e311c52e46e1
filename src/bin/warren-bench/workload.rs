//! Random topic workloads: binding keys and routing keys over a fixed vocabulary.
//!
//! Shared by the runner and by the criterion benches (`interop/benches/topic_match.rs` includes this
//! file), so both measure the same bindings and keys.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The first words of every vocabulary (log-style facilities, severities, regions, and the
/// tutorial's animals); larger vocabularies go on with `w24`, `w25`, ...
const NAMED_WORDS: [&str; 24] = [
    "kern", "cron", "auth", "mail", "user", "disk", "net", "app", "db", "web", "info", "warn",
    "error", "debug", "crit", "eu", "us", "asia", "quick", "lazy", "orange", "rabbit", "fox",
    "brown",
];

/// How routing keys are drawn from the key pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyDistribution {
    /// Every key of the pool is equally likely.
    Uniform,
    /// Zipf-like (s = 1): the k-th key is drawn about 1/k as often as the first.
    Skewed,
}

/// A topic workload: bindings and the routing keys to route.
#[derive(Debug)]
pub(crate) struct Workload {
    /// Binding keys.
    pub(crate) patterns: Vec<String>,
    /// The destination of each binding: `patterns[i]` binds destination `destinations[i]`
    /// (generated workloads bind each destination once: `destinations[i] == i`).
    pub(crate) destinations: Vec<u64>,
    /// The routing keys to publish with, in order (drawn from a pool of distinct keys).
    pub(crate) keys: Vec<String>,
}

/// The shape of a workload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// Number of bindings.
    pub(crate) bindings: usize,
    /// Percentage of binding keys that contain `*` or `#`.
    pub(crate) wildcard_pct: u32,
    /// Number of distinct routing keys.
    pub(crate) key_pool: usize,
    /// Length of the routing-key stream.
    pub(crate) stream: usize,
    /// How keys are drawn from the pool.
    pub(crate) distribution: KeyDistribution,
    /// Number of distinct words in keys.
    pub(crate) vocabulary: usize,
    /// Random seed: the same spec and seed give the same workload.
    pub(crate) seed: u64,
}

impl Workload {
    /// Generates the workload described by `spec`.
    pub(crate) fn generate(spec: &Spec) -> Self {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let vocabulary = vocabulary(spec.vocabulary);
        let patterns = (0..spec.bindings)
            .map(|_| {
                let wild = rng.gen_range(0..100) < spec.wildcard_pct;
                pattern(&mut rng, &vocabulary, wild)
            })
            .collect();
        let destinations = (0..spec.bindings as u64).collect();
        let pool: Vec<String> = (0..spec.key_pool.max(1))
            .map(|_| words(&mut rng, &vocabulary).join("."))
            .collect();
        let keys = (0..spec.stream)
            .map(|_| pool[pick(&mut rng, pool.len(), spec.distribution)].clone())
            .collect();
        Workload {
            patterns,
            destinations,
            keys,
        }
    }
}

/// The first `size` words of the vocabulary (at least one).
pub(crate) fn vocabulary(size: usize) -> Vec<String> {
    (0..size.max(1))
        .map(|i| {
            NAMED_WORDS
                .get(i)
                .map_or_else(|| format!("w{i}"), |w| w.to_string())
        })
        .collect()
}

/// 3 to 5 random words.
fn words<'v>(rng: &mut StdRng, vocabulary: &'v [String]) -> Vec<&'v str> {
    let n = rng.gen_range(3..=5);
    (0..n)
        .map(|_| vocabulary[rng.gen_range(0..vocabulary.len())].as_str())
        .collect()
}

/// A random binding key; with `wild`, one or two of its words become `*` or `#`.
fn pattern(rng: &mut StdRng, vocabulary: &[String], wild: bool) -> String {
    let mut words = words(rng, vocabulary);
    if wild {
        for _ in 0..rng.gen_range(1..=2) {
            let at = rng.gen_range(0..words.len());
            words[at] = if rng.gen_bool(0.6) { "*" } else { "#" };
        }
    }
    words.join(".")
}

/// An index into a pool of `len` keys.
fn pick(rng: &mut StdRng, len: usize, distribution: KeyDistribution) -> usize {
    match distribution {
        KeyDistribution::Uniform => rng.gen_range(0..len),
        // len^u for uniform u is log-uniform on [1, len]: P(k) ∝ 1/k, a Zipf law with s = 1.
        KeyDistribution::Skewed => {
            let k = (len as f64).powf(rng.gen::<f64>()) as usize;
            k.clamp(1, len) - 1
        }
    }
}
