//! `warren-bench topic`: topic-matching throughput against the naive matcher and a hash floor.
//!
//! Builds N random bindings (or reads the user's own with `--patterns FILE --keys FILE`, see
//! [`topic_files`](crate::topic_files)), then measures routes per second, and the latency of
//! single routes (p50, p99), for four lookups over the same routing-key stream:
//! - the trie router with its result cache off (the raw matching cost) and on;
//! - the naive linear matcher: [`topic_matches`] against every binding, the way the first
//!   placeholder router worked;
//! - the floor: one `std::collections::HashMap` lookup of the whole key among the binding
//!   keys, as a direct exchange does, which no topic matcher can beat;
//! - with `--rabbitmq ADDR`, the same table on RabbitMQ (see
//!   [`topic_rabbitmq`](crate::topic_rabbitmq)).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use warrenmq::routing::{topic_matches, Binding, DestinationId, Router, RoutingInput, TopicRouter};
use warrenmq::FieldTable;

use crate::latency::{clock_overhead, sample, Latency};
use crate::measure::{interleaved, Contender, Rate};
use crate::topic_rabbitmq::RabbitRow;
use crate::workload::{KeyDistribution, Spec, Workload};

/// Routing keys generated, cycled through by every measurement.
const STREAM: usize = 1 << 16;
/// Length of one timed round; measurements are interleaved round by round.
pub(crate) const ROUND: Duration = Duration::from_millis(300);
/// Keys checked against the naive matcher before timing anything.
const CHECKED_KEYS: usize = 32;
/// Most single routes timed per lookup for the percentiles.
const LATENCY_SAMPLES: usize = 200_000;
/// Longest time spent timing single routes per lookup.
const LATENCY_TIME: Duration = Duration::from_secs(1);

/// Arguments of `warren-bench topic`.
#[derive(Debug, Args)]
pub(crate) struct TopicArgs {
    /// Read the bindings from FILE instead of generating them: one binding key per line,
    /// optionally followed by whitespace and a destination (queue) name.
    #[arg(long, value_name = "FILE", requires = "keys")]
    pub(crate) patterns: Option<PathBuf>,
    /// With --patterns: the routing keys to route, one per line, in order.
    #[arg(long, value_name = "FILE", requires = "patterns")]
    pub(crate) keys: Option<PathBuf>,
    /// Number of generated bindings (one destination each).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) bindings: usize,
    /// Percentage of generated binding keys that contain `*` or `#`.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) wildcards: u32,
    /// How generated routing keys are drawn from the key pool.
    #[arg(long, value_enum, default_value_t = Keys::Uniform)]
    pub(crate) key_distribution: Keys,
    /// Number of distinct generated routing keys (3-5 random words each).
    #[arg(long, default_value_t = 4096)]
    pub(crate) key_pool: usize,
    /// Number of distinct words in generated binding and routing keys.
    #[arg(long, default_value_t = 256)]
    pub(crate) vocabulary: usize,
    /// Seconds per measurement (there are seven), in interleaved rounds of 0.3 s; each
    /// figure is the median round.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) seconds: f64,
    /// Threads for the all-cores measurements [default: the number of cores].
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Above this many bindings the naive matcher is skipped (reported as null).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) naive_max: usize,
    /// Also route the same table and keys through a topic exchange on the RabbitMQ at ADDR
    /// (guest/guest, vhost `/`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) rabbitmq: Option<String>,
    /// Above this many bindings RabbitMQ is not measured: binding over AMQP is slow.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) rabbitmq_max_bindings: usize,
    /// Random seed of the generated workload.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Print one JSON object instead of a Markdown table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--key-distribution`: how generated routing keys are drawn.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Keys {
    /// Every key of the pool equally often.
    Uniform,
    /// Zipf-like: a few keys very often, most rarely.
    Skewed,
}

impl Keys {
    /// The name given on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Keys::Uniform => "uniform",
            Keys::Skewed => "skewed",
        }
    }
}

/// Everything one run measured.
#[derive(Debug)]
pub(crate) struct Report {
    /// Uncached trie router, one thread and all threads.
    pub(crate) uncached: (Rate, Rate),
    /// Cached trie router, one thread and all threads.
    pub(crate) cached: (Rate, Rate),
    /// The naive matcher on one thread, unless skipped.
    pub(crate) naive: Option<Rate>,
    /// The hash-map floor, one thread and all threads.
    pub(crate) floor: (Rate, Rate),
    /// Latency of single routes: uncached, cached, naive (unless skipped), floor.
    pub(crate) latency: [Option<Latency>; 4],
    /// `Router::memory_bytes` of the uncached router.
    pub(crate) table_bytes: usize,
    /// Bindings added per second while building the table.
    pub(crate) binds_per_s: f64,
    /// Destinations per routing key, on average over the stream.
    pub(crate) matches_per_key: f64,
    /// Bindings, distinct destinations and routing keys in the stream.
    pub(crate) sizes: (usize, usize, usize),
    /// RabbitMQ's row, or why it is missing (`None` when not asked for).
    pub(crate) rabbitmq: Option<Result<RabbitRow, String>>,
}

/// Runs the subcommand.
pub(crate) fn run_topic(args: &TopicArgs) -> Result<(), String> {
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err("--seconds must be a positive number".into());
    }
    let workload = match (&args.patterns, &args.keys) {
        (Some(patterns), Some(keys)) => crate::topic_files::read_workload(patterns, keys)?,
        _ => Workload::generate(&Spec {
            bindings: args.bindings,
            wildcard_pct: args.wildcards,
            key_pool: args.key_pool,
            stream: STREAM,
            distribution: match args.key_distribution {
                Keys::Uniform => KeyDistribution::Uniform,
                Keys::Skewed => KeyDistribution::Skewed,
            },
            vocabulary: args.vocabulary,
            seed: args.seed,
        }),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut report = measure_all(args, &workload, threads)?;
    report.rabbitmq = args.rabbitmq.as_deref().map(|addr| {
        crate::topic_rabbitmq::measure(addr, &workload, args.rabbitmq_max_bindings, args.seconds)
    });
    if args.json {
        println!("{}", crate::topic_report::to_json(args, threads, &report));
    } else {
        crate::topic_report::print_table(args, threads, &report);
    }
    Ok(())
}

/// Binds every pattern of the workload to `router`; returns binds per second.
fn bind_all(router: &TopicRouter, workload: &Workload) -> f64 {
    let arguments = FieldTable::default();
    let began = Instant::now();
    for (key, &destination) in workload.patterns.iter().zip(&workload.destinations) {
        let binding = Binding {
            destination: DestinationId::new(destination),
            key,
            arguments: &arguments,
        };
        // Topic bindings are never invalid; a duplicate line of a file binds once.
        let _ = router.bind(binding);
    }
    workload.patterns.len() as f64 / began.elapsed().as_secs_f64().max(1e-9)
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
    let binds_per_s = bind_all(&uncached, workload);
    bind_all(&cached, workload);
    let naive_table: Vec<(DestinationId, &str)> = workload
        .destinations
        .iter()
        .zip(&workload.patterns)
        .map(|(&d, p)| (DestinationId::new(d), p.as_str()))
        .collect();
    let mut floor: HashMap<&str, Vec<DestinationId>> = HashMap::new();
    for (dest, pattern) in &naive_table {
        let dests = floor.entry(*pattern).or_default();
        if !dests.contains(dest) {
            dests.push(*dest);
        }
    }
    let run_naive = workload.patterns.len() <= args.naive_max;
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
    let overhead = clock_overhead();
    let latency = |op: &(dyn Fn(&str, &mut Vec<DestinationId>) + Sync)| {
        sample(keys, LATENCY_SAMPLES, LATENCY_TIME, overhead, op)
    };
    let destinations = workload
        .destinations
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    Ok(Report {
        uncached: both(0),
        cached: both(1),
        floor: both(2),
        naive: rates.get(3).map(|r| r.0),
        latency: [
            latency(&route_uncached),
            latency(&route_cached),
            run_naive.then(|| latency(&route_naive)).flatten(),
            latency(&floor_lookup),
        ],
        table_bytes: uncached.memory_bytes(),
        binds_per_s,
        matches_per_key: matches_per_key(&uncached, keys),
        sizes: (workload.patterns.len(), destinations, keys.len()),
        rabbitmq: None,
    })
}

/// The number of rounds that `seconds` per measurement make.
pub(crate) fn rounds(seconds: f64) -> usize {
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
        got.dedup();
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
