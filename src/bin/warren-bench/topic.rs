//! `warren-bench topic`: topic-matching throughput against the naive matcher and a hash floor.
//!
//! Builds N random bindings, then measures routes per second for four lookups over the same
//! routing-key stream:
//! - the trie router with its result cache off (the raw matching cost) and on;
//! - the naive linear matcher: [`topic_matches`] against every binding, the way the first
//!   placeholder router worked;
//! - the floor: one `std::collections::HashMap` lookup of the whole key among the binding
//!   keys, as a direct exchange does, which no topic matcher can beat.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::json;
use warrenmq::routing::{topic_matches, Binding, DestinationId, Router, RoutingInput, TopicRouter};
use warrenmq::FieldTable;

use crate::measure::{interleaved, Contender, Rate};
use crate::table::{mebibytes, rate, ratio, Table};
use crate::workload::{KeyDistribution, Spec, Workload};

/// Routing keys generated, cycled through by every measurement.
const STREAM: usize = 1 << 16;
/// Length of one timed round; measurements are interleaved round by round.
const ROUND: Duration = Duration::from_millis(300);
/// Keys checked against the naive matcher before timing anything.
const CHECKED_KEYS: usize = 32;

/// Arguments of `warren-bench topic`.
#[derive(Debug, Args)]
pub(crate) struct TopicArgs {
    /// Number of bindings (one destination each).
    #[arg(long, default_value_t = 100_000)]
    bindings: usize,
    /// Percentage of binding keys that contain `*` or `#`.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=100))]
    wildcards: u32,
    /// How routing keys are drawn from the key pool.
    #[arg(long, value_enum, default_value_t = Keys::Uniform)]
    keys: Keys,
    /// Number of distinct routing keys (3-5 random words each).
    #[arg(long, default_value_t = 4096)]
    key_pool: usize,
    /// Number of distinct words in binding and routing keys.
    #[arg(long, default_value_t = 256)]
    vocabulary: usize,
    /// Seconds per measurement (there are seven), in interleaved rounds of 0.3 s; each
    /// figure is the median round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Threads for the all-cores measurements [default: the number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Above this many bindings the naive matcher is skipped (reported as null).
    #[arg(long, default_value_t = 1_000_000)]
    naive_max: usize,
    /// Random seed of the workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--keys`: how routing keys are drawn.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Keys {
    /// Every key of the pool equally often.
    Uniform,
    /// Zipf-like: a few keys very often, most rarely.
    Skewed,
}

impl Keys {
    /// The name given on the command line.
    fn name(self) -> &'static str {
        match self {
            Keys::Uniform => "uniform",
            Keys::Skewed => "skewed",
        }
    }
}

/// Everything one run measured.
#[derive(Debug)]
struct Report {
    /// Uncached trie router, one thread and all threads.
    uncached: (Rate, Rate),
    /// Cached trie router, one thread and all threads.
    cached: (Rate, Rate),
    /// The naive matcher on one thread, unless skipped.
    naive: Option<Rate>,
    /// The hash-map floor, one thread and all threads.
    floor: (Rate, Rate),
    /// `Router::memory_bytes` of the uncached router.
    table_bytes: usize,
    /// Bindings added per second while building the table.
    binds_per_s: f64,
    /// Destinations per routing key, on average over the stream.
    matches_per_key: f64,
}

/// Runs the subcommand.
pub(crate) fn run_topic(args: &TopicArgs) -> Result<(), String> {
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err("--seconds must be a positive number".into());
    }
    let spec = Spec {
        bindings: args.bindings,
        wildcard_pct: args.wildcards,
        key_pool: args.key_pool,
        stream: STREAM,
        distribution: match args.keys {
            Keys::Uniform => KeyDistribution::Uniform,
            Keys::Skewed => KeyDistribution::Skewed,
        },
        vocabulary: args.vocabulary,
        seed: args.seed,
    };
    let workload = Workload::generate(&spec);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let report = measure_all(args, &workload, threads)?;
    if args.json {
        println!("{}", to_json(args, threads, &report));
    } else {
        print_table(args, threads, &report);
    }
    Ok(())
}

/// Binds every pattern of the workload to `router`; returns binds per second.
fn bind_all(router: &TopicRouter, patterns: &[String]) -> f64 {
    let arguments = FieldTable::default();
    let began = Instant::now();
    for (i, key) in patterns.iter().enumerate() {
        let binding = Binding {
            destination: DestinationId::new(i as u64),
            key,
            arguments: &arguments,
        };
        // Topic bindings are never invalid; a duplicate cannot happen (one per destination).
        let _ = router.bind(binding);
    }
    patterns.len() as f64 / began.elapsed().as_secs_f64().max(1e-9)
}

/// Routes `key` with `router` into `out`.
fn route(router: &TopicRouter, key: &str, out: &mut Vec<DestinationId>) {
    let input = RoutingInput {
        routing_key: key,
        headers: None,
    };
    router.route(input, out);
}

/// The naive matcher: every binding, one at a time, then duplicates removed.
fn naive(bindings: &[(DestinationId, &str)], key: &str, out: &mut Vec<DestinationId>) {
    for (dest, pattern) in bindings {
        if topic_matches(pattern, key) {
            out.push(*dest);
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// Builds the tables, checks the trie against the naive matcher, and times every lookup.
fn measure_all(args: &TopicArgs, workload: &Workload, threads: usize) -> Result<Report, String> {
    let uncached = TopicRouter::with_cache(false);
    let cached = TopicRouter::new();
    let binds_per_s = bind_all(&uncached, &workload.patterns);
    bind_all(&cached, &workload.patterns);
    let naive_table: Vec<(DestinationId, &str)> = workload
        .patterns
        .iter()
        .enumerate()
        .map(|(i, p)| (DestinationId::new(i as u64), p.as_str()))
        .collect();
    let mut floor: HashMap<&str, Vec<DestinationId>> = HashMap::new();
    for (dest, pattern) in &naive_table {
        floor.entry(*pattern).or_default().push(*dest);
    }
    let run_naive = args.bindings <= args.naive_max;
    if run_naive {
        check(&uncached, &naive_table, &workload.keys)?;
    }

    let keys = &workload.keys;
    let route_uncached = |k: &str, out: &mut Vec<DestinationId>| route(&uncached, k, out);
    let route_cached = |k: &str, out: &mut Vec<DestinationId>| route(&cached, k, out);
    let route_naive = |k: &str, out: &mut Vec<DestinationId>| naive(&naive_table, k, out);
    let floor_lookup = |k: &str, out: &mut Vec<DestinationId>| {
        if let Some(dests) = floor.get(k) {
            out.extend_from_slice(dests);
        }
    };
    let fast = |op| Contender {
        op,
        batch: 64,
        parallel: true,
    };
    let mut contenders = vec![
        fast(&route_uncached),
        fast(&route_cached),
        fast(&floor_lookup),
    ];
    if run_naive {
        contenders.push(Contender {
            op: &route_naive,
            batch: 1,
            parallel: false,
        });
    }
    let rates = interleaved(&contenders, rounds(args.seconds), ROUND, threads, keys);
    let both = |i: usize| (rates[i].0, rates[i].1.unwrap_or(rates[i].0));
    Ok(Report {
        uncached: both(0),
        cached: both(1),
        floor: both(2),
        naive: rates.get(3).map(|r| r.0),
        table_bytes: uncached.memory_bytes(),
        binds_per_s,
        matches_per_key: matches_per_key(&uncached, keys),
    })
}

/// The number of rounds that `seconds` per measurement make.
fn rounds(seconds: f64) -> usize {
    (seconds / ROUND.as_secs_f64()).ceil().max(1.0) as usize
}

/// Fails if the trie router and the naive matcher disagree on the first keys of the stream.
fn check(
    router: &TopicRouter,
    naive_table: &[(DestinationId, &str)],
    keys: &[String],
) -> Result<(), String> {
    for key in keys.iter().take(CHECKED_KEYS) {
        let (mut got, mut want) = (Vec::new(), Vec::new());
        route(router, key, &mut got);
        got.sort_unstable();
        naive(naive_table, key, &mut want);
        if got != want {
            return Err(format!(
                "trie and naive matcher disagree on {key:?}: {got:?} vs {want:?}"
            ));
        }
    }
    Ok(())
}

/// Destinations per routing key, on average over the stream.
fn matches_per_key(router: &TopicRouter, keys: &[String]) -> f64 {
    let mut out = Vec::new();
    let mut total = 0;
    for key in keys {
        out.clear();
        route(router, key, &mut out);
        total += out.len();
    }
    total as f64 / keys.len().max(1) as f64
}

/// `a / b`, when both are there.
fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// Prints the human-readable report.
fn print_table(args: &TopicArgs, threads: usize, r: &Report) {
    println!(
        "warren-bench topic: {} bindings ({}% with wildcards), {}-word vocabulary, \
         {} keys from a pool of {}; medians of {} interleaved rounds of {} s",
        args.bindings,
        args.wildcards,
        args.vocabulary,
        args.keys.name(),
        args.key_pool,
        rounds(args.seconds),
        ROUND.as_secs_f64()
    );
    println!(
        "routing table: {} (Router::memory_bytes); {:.2} destinations per key on average; \
         {:.0} binds/s",
        mebibytes(r.table_bytes),
        r.matches_per_key,
        r.binds_per_s
    );
    println!();
    let threads_title = match threads {
        1 => "1 thread again".to_string(),
        n => format!("{n} threads"),
    };
    let mut table = Table::new(&[
        "lookup",
        "1 thread",
        &threads_title,
        "× naive",
        "floor ÷ this",
    ]);
    let naive = r.naive.map(|n| n.per_s);
    let floor = Some(r.floor.0.per_s);
    let mut line = |label: &str, one: Option<Rate>, all: Option<Rate>| {
        let one = one.map(|x| x.per_s);
        table.row(vec![
            label.to_string(),
            rate(one),
            rate(all.map(|x| x.per_s)),
            ratio(div(one, naive)),
            ratio(div(floor, one)),
        ]);
    };
    line("trie, uncached", Some(r.uncached.0), Some(r.uncached.1));
    line("trie, cached", Some(r.cached.0), Some(r.cached.1));
    line("naive linear (reference)", r.naive, None);
    line(
        "HashMap floor (whole key)",
        Some(r.floor.0),
        Some(r.floor.1),
    );
    print!("{}", table.render());
    if r.naive.is_none() {
        println!(
            "naive matcher skipped: more than --naive-max {} bindings",
            args.naive_max
        );
    }
}

/// The JSON report.
fn to_json(args: &TopicArgs, threads: usize, r: &Report) -> serde_json::Value {
    let naive = r.naive.map(|n| n.per_s);
    json!({
        "bindings": args.bindings,
        "wildcard_pct": args.wildcards,
        "keys": args.keys.name(),
        "key_pool": args.key_pool,
        "vocabulary": args.vocabulary,
        "seconds": args.seconds,
        "rounds": rounds(args.seconds),
        "threads": threads,
        "matches_per_s_uncached": r.uncached.0.per_s,
        "matches_per_s_uncached_all_threads": r.uncached.1.per_s,
        "matches_per_s_cached": r.cached.0.per_s,
        "matches_per_s_cached_all_threads": r.cached.1.per_s,
        "naive_matches_per_s": naive,
        "naive_routes_timed": r.naive.map(|n| n.ops),
        "floor_lookups_per_s": r.floor.0.per_s,
        "floor_lookups_per_s_all_threads": r.floor.1.per_s,
        "uncached_vs_naive": div(Some(r.uncached.0.per_s), naive),
        "floor_over_uncached": r.floor.0.per_s / r.uncached.0.per_s,
        "floor_over_cached": r.floor.0.per_s / r.cached.0.per_s,
        "table_bytes": r.table_bytes,
        "binds_per_s": r.binds_per_s,
        "destinations_per_key": r.matches_per_key,
    })
}
