//! `warren-bench topic`'s output: a Markdown table, or one JSON object with `--json`.

use serde_json::json;

use crate::latency::{duration, Latency};
use crate::measure::Rate;
use crate::table::{mebibytes, rate, ratio, Table};
use crate::topic::{rounds, Report, TopicArgs, ROUND};

/// `a / b`, when both are there.
fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// Nanoseconds, for JSON.
fn nanos(latency: Option<Latency>, pick: fn(Latency) -> std::time::Duration) -> Option<u64> {
    latency.map(|l| pick(l).as_nanos() as u64)
}

/// One sentence on where the bindings and keys came from.
fn describe_workload(args: &TopicArgs, r: &Report) -> String {
    let (bindings, destinations, keys) = r.sizes;
    match (&args.patterns, &args.keys) {
        (Some(p), Some(k)) => format!(
            "{bindings} bindings to {destinations} destinations from {}, {keys} routing keys \
             from {}",
            p.display(),
            k.display()
        ),
        _ => format!(
            "{bindings} generated bindings ({}% with wildcards), {}-word vocabulary, {} keys \
             from a pool of {}",
            args.wildcards,
            args.vocabulary,
            args.key_distribution.name(),
            args.key_pool
        ),
    }
}

/// Prints the human-readable report.
pub(crate) fn print_table(args: &TopicArgs, threads: usize, r: &Report) {
    println!(
        "warren-bench topic: {}; medians of {} interleaved rounds of {} s",
        describe_workload(args, r),
        rounds(args.seconds),
        ROUND.as_secs_f64()
    );
    println!(
        "routing table: {} (Router::memory_bytes); {:.2} destinations per key on average; \
         {:.0} binds/s; latency: each route timed alone, the clock's cost taken off",
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
        "p50",
        "p99",
        "× naive",
        "floor ÷ this",
    ]);
    let naive = r.naive.map(|n| n.per_s);
    let floor = Some(r.floor.0.per_s);
    let mut line = |label: &str, one: Option<Rate>, all: Option<Rate>, l: Option<Latency>| {
        let one = one.map(|x| x.per_s);
        table.row(vec![
            label.to_string(),
            rate(one),
            rate(all.map(|x| x.per_s)),
            duration(l.map(|l| l.p50)),
            duration(l.map(|l| l.p99)),
            ratio(div(one, naive)),
            ratio(div(floor, one)),
        ]);
    };
    let [uncached, cached, naive_latency, floor_latency] = r.latency;
    line(
        "trie, uncached",
        Some(r.uncached.0),
        Some(r.uncached.1),
        uncached,
    );
    line("trie, cached", Some(r.cached.0), Some(r.cached.1), cached);
    line("naive linear (reference)", r.naive, None, naive_latency);
    line(
        "HashMap floor (whole key)",
        Some(r.floor.0),
        Some(r.floor.1),
        floor_latency,
    );
    if let Some(Ok(rabbit)) = &r.rabbitmq {
        table.row(vec![
            "RabbitMQ (publish → confirm)".to_string(),
            rate(Some(rabbit.per_s)),
            "-".to_string(),
            duration(rabbit.latency.map(|l| l.p50)),
            duration(rabbit.latency.map(|l| l.p99)),
            "-".to_string(),
            "-".to_string(),
        ]);
    }
    print!("{}", table.render());
    if r.naive.is_none() {
        println!(
            "naive matcher skipped: more than --naive-max {} bindings",
            args.naive_max
        );
    }
    match &r.rabbitmq {
        Some(Ok(rabbit)) => println!(
            "RabbitMQ: confirmed publishes of empty messages over one connection, routed to \
             exclusive queues that drop them at once (network and enqueue included, not \
             matching alone); bindings took {:.0} binds/s",
            rabbit.binds_per_s
        ),
        Some(Err(note)) => println!("{note}"),
        None => {}
    }
}

/// The JSON report.
pub(crate) fn to_json(args: &TopicArgs, threads: usize, r: &Report) -> serde_json::Value {
    let naive = r.naive.map(|n| n.per_s);
    let [uncached, cached, naive_latency, floor_latency] = r.latency;
    let p50 = |l| nanos(l, |l| l.p50);
    let p99 = |l| nanos(l, |l| l.p99);
    let (bindings, destinations, keys) = r.sizes;
    let rabbit = r.rabbitmq.as_ref().and_then(|r| r.as_ref().ok());
    json!({
        "patterns_file": args.patterns.as_ref().map(|p| p.display().to_string()),
        "keys_file": args.keys.as_ref().map(|p| p.display().to_string()),
        "bindings": bindings,
        "destinations": destinations,
        "routing_keys": keys,
        "wildcard_pct": args.patterns.is_none().then_some(args.wildcards),
        "key_distribution": args.patterns.is_none().then(|| args.key_distribution.name()),
        "key_pool": args.patterns.is_none().then_some(args.key_pool),
        "vocabulary": args.patterns.is_none().then_some(args.vocabulary),
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
        "p50_ns_uncached": p50(uncached),
        "p99_ns_uncached": p99(uncached),
        "p50_ns_cached": p50(cached),
        "p99_ns_cached": p99(cached),
        "p50_ns_naive": p50(naive_latency),
        "p99_ns_naive": p99(naive_latency),
        "p50_ns_floor": p50(floor_latency),
        "p99_ns_floor": p99(floor_latency),
        "latency_samples": r.latency.map(|l| l.map(|l| l.samples)),
        "uncached_vs_naive": div(Some(r.uncached.0.per_s), naive),
        "floor_over_uncached": r.floor.0.per_s / r.uncached.0.per_s,
        "floor_over_cached": r.floor.0.per_s / r.cached.0.per_s,
        "table_bytes": r.table_bytes,
        "binds_per_s": r.binds_per_s,
        "destinations_per_key": r.matches_per_key,
        "rabbitmq_publishes_per_s": rabbit.map(|r| r.per_s),
        "rabbitmq_p50_ns": rabbit.and_then(|r| p50(r.latency)),
        "rabbitmq_p99_ns": rabbit.and_then(|r| p99(r.latency)),
        "rabbitmq_latency_samples": rabbit.and_then(|r| r.latency.map(|l| l.samples)),
        "rabbitmq_binds_per_s": rabbit.map(|r| r.binds_per_s),
        "rabbitmq_note": r.rabbitmq.as_ref().and_then(|r| r.as_ref().err()),
    })
}
