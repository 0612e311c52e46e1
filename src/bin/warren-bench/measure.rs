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

/// One operation to time against others.
pub(crate) struct Contender<'a, T> {
    /// The operation, as for [`run`].
    pub(crate) op: &'a (dyn Fn(&str, &mut Vec<T>) + Sync),
    /// Operations between two looks at the clock.
    pub(crate) batch: usize,
    /// Whether to time it on all threads too.
    pub(crate) parallel: bool,
}

/// Times every contender in `rounds` interleaved rounds of `round` each and returns, per
/// contender, the median one-thread rate and (if asked) the median all-threads rate.
///
/// Interleaving makes the ratios between contenders fair on a machine shared with other
/// work: a burst of outside load slows one round of each, not the whole of one contender.
pub(crate) fn interleaved<T>(
    contenders: &[Contender<'_, T>],
    rounds: usize,
    round: Duration,
    threads: usize,
    keys: &[String],
) -> Vec<(Rate, Option<Rate>)> {
    let mut one: Vec<Vec<Rate>> = vec![Vec::new(); contenders.len()];
    let mut all: Vec<Vec<Rate>> = vec![Vec::new(); contenders.len()];
    for r in 0..rounds.max(1) {
        // Re-warm caches each round: the other contenders ran in between.
        let warm_up = if r == 0 { round } else { round / 8 };
        for (i, c) in contenders.iter().enumerate() {
            let budget = Budget {
                run: round,
                warm_up: if c.batch == 1 {
                    Duration::ZERO
                } else {
                    warm_up
                },
                batch: c.batch,
            };
            let start = r * 977 % keys.len().max(1);
            one[i].push(run(budget, keys, start, |k, out| (c.op)(k, out)));
            if c.parallel {
                all[i].push(run_parallel(budget, threads, keys, |k, out| (c.op)(k, out)));
            }
        }
    }
    one.into_iter()
        .zip(all)
        .map(|(one, all)| (median(one), (!all.is_empty()).then(|| median(all))))
        .collect()
}

/// The median rate, with the operations of all rounds.
fn median(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
    Rate {
        per_s: rates[rates.len() / 2].per_s,
        ops: rates.iter().map(|r| r.ops).sum(),
    }
}
