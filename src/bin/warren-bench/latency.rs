//! Per-operation latency percentiles: each call timed on its own, the clock's own cost taken
//! off.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Latency percentiles of one operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Latency {
    /// The median.
    pub(crate) p50: Duration,
    /// The 99th percentile.
    pub(crate) p99: Duration,
    /// Calls timed.
    pub(crate) samples: usize,
}

impl Latency {
    /// The percentiles of `samples` (in any order), or `None` if there are none.
    pub(crate) fn of(mut samples: Vec<Duration>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Latency {
            p50: at(0.50),
            p99: at(0.99),
            samples: samples.len(),
        })
    }
}

/// The median cost of reading the clock twice, which every timed call includes.
pub(crate) fn clock_overhead() -> Duration {
    let samples = (0..10_000)
        .map(|_| {
            let began = Instant::now();
            black_box(());
            began.elapsed()
        })
        .collect();
    Latency::of(samples).map_or(Duration::ZERO, |l| l.p50)
}

/// Times `op` once per key, cycling through `keys`, until `max` calls or `limit` have
/// passed (at least one call); each time has `overhead` taken off.
pub(crate) fn sample<T>(
    keys: &[String],
    max: usize,
    limit: Duration,
    overhead: Duration,
    mut op: impl FnMut(&str, &mut Vec<T>),
) -> Option<Latency> {
    let mut out = Vec::new();
    let mut samples = Vec::with_capacity(max.min(1 << 20));
    let began = Instant::now();
    for key in keys.iter().cycle().take(max) {
        out.clear();
        let start = Instant::now();
        op(key, &mut out);
        black_box(out.len());
        samples.push(start.elapsed().saturating_sub(overhead));
        if began.elapsed() > limit {
            break;
        }
    }
    Latency::of(samples)
}

/// Formats a latency with a unit that keeps three figures (`35 ns`, `1.21 µs`, `11.8 ms`).
pub(crate) fn duration(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "-".to_string();
    };
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    match value {
        v if v >= 100.0 || unit == "ns" => format!("{v:.0} {unit}"),
        v if v >= 10.0 => format!("{v:.1} {unit}"),
        v => format!("{v:.2} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{duration, Latency};

    #[test]
    fn percentiles_of_a_known_sample() {
        let samples = (1..=100).map(Duration::from_nanos).collect();
        let l = Latency::of(samples).unwrap();
        assert_eq!(
            (l.p50, l.p99, l.samples),
            (Duration::from_nanos(51), Duration::from_nanos(99), 100)
        );
        assert!(Latency::of(Vec::new()).is_none());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Some(Duration::from_nanos(35))), "35 ns");
        assert_eq!(duration(Some(Duration::from_nanos(1_210))), "1.21 µs");
        assert_eq!(duration(Some(Duration::from_micros(11_800))), "11.8 ms");
        assert_eq!(duration(None), "-");
    }
}
