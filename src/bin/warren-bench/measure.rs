//! Timing loops: how many operations per second a closure sustains, on one thread or many.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

/// A throughput measurement.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rate {
    /// Operations per second.
    pub(crate) per_s: f64,
    /// Operations done in the timed part.
    pub(crate) ops: u64,
}

/// How long to run and to warm up before timing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// The timed part.
    pub(crate) run: Duration,
    /// Untimed warm-up before it (fills caches, faults pages in).
    pub(crate) warm_up: Duration,
    /// Operations between two looks at the clock: 1 for slow operations, more for fast ones.
    pub(crate) batch: usize,
}

/// Runs `op` over `keys` (cycling, starting at `start`) for the budget and returns its rate.
///
/// `op` gets each key and a reused output vector, cleared before each call.
pub(crate) fn run<T>(
    budget: Budget,
    keys: &[String],
    start: usize,
    mut op: impl FnMut(&str, &mut Vec<T>),
) -> Rate {
    let mut out = Vec::new();
    let mut at = start % keys.len().max(1);
    let mut loop_for = |length: Duration| {
        let began = Instant::now();
        let mut ops = 0_u64;
        while began.elapsed() < length {
            for _ in 0..budget.batch {
                out.clear();
                op(&keys[at], &mut out);
                black_box(out.len());
                at += 1;
                if at == keys.len() {
                    at = 0;
                }
            }
            ops += budget.batch as u64;
        }
        (ops, began.elapsed())
    };
    loop_for(budget.warm_up);
    let (ops, took) = loop_for(budget.run);
    Rate {
        per_s: ops as f64 / took.as_secs_f64(),
        ops,
    }
}

/// Runs [`run`] on `threads` threads at once, each from a different point of the key stream,
/// and returns their summed rate.
pub(crate) fn run_parallel<T>(
    budget: Budget,
    threads: usize,
    keys: &[String],
    op: impl Fn(&str, &mut Vec<T>) + Sync,
) -> Rate {
    let rates: Vec<Rate> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let op = &op;
                s.spawn(move || run(budget, keys, i * keys.len() / threads, op))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark thread panicked"))
            .collect()
    });
    Rate {
        per_s: rates.iter().map(|r| r.per_s).sum(),
        ops: rates.iter().map(|r| r.ops).sum(),
    }
}
