//! `warren-bench throughput`: end-to-end messages per second through an in-memory broker,
//! beside a bare crossbeam channel moving the same messages.
//!
//! Each round publishes `--messages` messages from `--producers` threads through an
//! exchange to queues read by `--consumers` threads (see [`flow`](crate::flow)), and the
//! same messages (`warrenmq::Message`, the body a shared `Bytes`) through unbounded
//! crossbeam channels with as many threads. With the `wire` feature (tokio), a third
//! contender reads Warren's consumers as async `Stream`s on tokio current-thread runtimes
//! ([`flow_async`](crate::flow_async)). Rounds alternate, so load from elsewhere on the
//! machine hits all alike; each figure is the median round.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::flow::{crossbeam_round, warren_round, Ack, Flow, Route};
use crate::table::{rate, ratio, Table};

/// Deliveries between two `basic_ack(multiple)` calls in the batched-ack variant.
const ACK_EVERY: u64 = 100;

/// Arguments of `warren-bench throughput`.
#[derive(Debug, Args)]
pub(crate) struct ThroughputArgs {
    /// The exchange kind messages go through.
    #[arg(long, value_enum, default_value_t = ExchangeArg::Direct)]
    exchange: ExchangeArg,
    /// Publishing threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    producers: u16,
    /// Consuming threads (with fanout, each has its own queue).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    consumers: u16,
    /// How Warren's consumers acknowledge.
    #[arg(long, value_enum, default_value_t = AckArg::None)]
    ack: AckArg,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Messages published per round.
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Keep running rounds until this many seconds have passed (at least `--rounds`).
    #[arg(long)]
    seconds: Option<f64>,
    /// Rounds of each system.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--exchange`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExchangeArg {
    /// One queue bound by key.
    Direct,
    /// One queue bound with `bench.#`.
    Topic,
    /// One queue per consumer.
    Fanout,
}

/// `--ack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AckArg {
    /// `no_ack` consumers.
    None,
    /// Manual acks: each delivery acked (and a variant acking every 100 with `multiple`).
    Manual,
}

/// Median seconds per round of each contender.
#[derive(Debug)]
struct Report {
    /// The flow measured.
    flow: Flow,
    /// Warren with the asked ack mode.
    warren: f64,
    /// Warren acking every [`ACK_EVERY`] with `multiple` (manual ack only).
    warren_multiple: Option<f64>,
    /// Warren with consumers read as async streams on tokio (feature `wire`).
    warren_async: Option<f64>,
    /// The crossbeam channel.
    crossbeam: f64,
    /// Rounds run.
    rounds: usize,
}

/// Runs the subcommand.
pub(crate) fn run_throughput(args: &ThroughputArgs) -> Result<(), String> {
    if let Some(s) = args.seconds {
        if !(s > 0.0 && s.is_finite()) {
            return Err("--seconds must be a positive number".into());
        }
    }
    let flow = Flow {
        route: match args.exchange {
            ExchangeArg::Direct => Route::Direct,
            ExchangeArg::Topic => Route::Topic,
            ExchangeArg::Fanout => Route::Fanout,
        },
        producers: args.producers.into(),
        consumers: args.consumers.into(),
        ack: match args.ack {
            AckArg::None => Ack::None,
            AckArg::Manual => Ack::Each,
        },
        size: args.size,
        messages: args.messages,
    };
    let report = measure(args, flow)?;
    if args.json {
        println!("{}", to_json(args, &report));
    } else {
        print_table(args, &report);
    }
    Ok(())
}

/// Alternates rounds of the contenders and keeps each one's median.
fn measure(args: &ThroughputArgs, flow: Flow) -> Result<Report, String> {
    let multiple = Flow {
        ack: Ack::Multiple(ACK_EVERY),
        ..flow
    };
    let with_multiple = flow.ack == Ack::Each;
    // One untimed round of each warms the allocator and the threads' caches.
    warren_round(&flow).map_err(|e| e.to_string())?;
    crossbeam_round(&flow);
    #[cfg(feature = "wire")]
    crate::flow_async::warren_async_round(&flow).map_err(|e| e.to_string())?;
    let (mut warren, mut batched, mut crossbeam) = (Vec::new(), Vec::new(), Vec::new());
    #[allow(unused_mut)] // filled only with the `wire` feature
    let mut streamed: Vec<f64> = Vec::new();
    let began = Instant::now();
    let budget = args.seconds.map_or(Duration::ZERO, Duration::from_secs_f64);
    while warren.len() < args.rounds as usize || began.elapsed() < budget {
        warren.push(secs(warren_round(&flow).map_err(|e| e.to_string())?));
        if with_multiple {
            batched.push(secs(warren_round(&multiple).map_err(|e| e.to_string())?));
        }
        #[cfg(feature = "wire")]
        streamed.push(secs(
            crate::flow_async::warren_async_round(&flow).map_err(|e| e.to_string())?,
        ));
        crossbeam.push(secs(crossbeam_round(&flow)));
    }
    Ok(Report {
        flow,
        rounds: warren.len(),
        warren: median(warren),
        warren_multiple: with_multiple.then(|| median(batched)),
        warren_async: (!streamed.is_empty()).then(|| median(streamed)),
        crossbeam: median(crossbeam),
    })
}

/// A duration in seconds.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// The median of some round times.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The name of an exchange kind.
fn route_name(route: Route) -> &'static str {
    match route {
        Route::Direct => "direct",
        Route::Topic => "topic",
        Route::Fanout => "fanout",
    }
}

/// Prints the report as a table.
fn print_table(args: &ThroughputArgs, r: &Report) {
    let f = &r.flow;
    println!(
        "{} exchange, {} producer(s), {} consumer(s), ack {}, {}-byte bodies, {} messages per \
         round ({} deliveries), median of {} interleaved rounds",
        route_name(f.route),
        f.producers,
        f.consumers,
        if args.ack == AckArg::Manual {
            "manual"
        } else {
            "none"
        },
        f.size,
        f.messages,
        f.deliveries(),
        r.rounds
    );
    println!();
    let mut table = Table::new(&["system", "messages/s", "deliveries/s", "÷ crossbeam"]);
    let mut line = |label: &str, seconds: f64| {
        table.row(vec![
            label.to_string(),
            rate(Some(f.messages as f64 / seconds)),
            rate(Some(f.deliveries() as f64 / seconds)),
            ratio(Some(r.crossbeam / seconds)),
        ]);
    };
    let warren = match args.ack {
        AckArg::None => "warren (no ack)",
        AckArg::Manual => "warren (ack each)",
    };
    line(warren, r.warren);
    if let Some(seconds) = r.warren_multiple {
        line("warren (ack multiple / 100)", seconds);
    }
    if let Some(seconds) = r.warren_async {
        line(
            match args.ack {
                AckArg::None => "warren async Stream (no ack)",
                AckArg::Manual => "warren async Stream (ack each)",
            },
            seconds,
        );
    }
    line("crossbeam channel", r.crossbeam);
    print!("{}", table.render());
}

/// The JSON report.
fn to_json(args: &ThroughputArgs, r: &Report) -> serde_json::Value {
    let f = &r.flow;
    let per_s = |seconds: f64| f.messages as f64 / seconds;
    json!({
        "exchange": route_name(f.route),
        "producers": f.producers,
        "consumers": f.consumers,
        "ack": if args.ack == AckArg::Manual { "manual" } else { "none" },
        "size": f.size,
        "messages": f.messages,
        "deliveries": f.deliveries(),
        "rounds": r.rounds,
        "warren_msgs_per_s": per_s(r.warren),
        "warren_ack_multiple_msgs_per_s": r.warren_multiple.map(per_s),
        "warren_async_msgs_per_s": r.warren_async.map(per_s),
        "crossbeam_msgs_per_s": per_s(r.crossbeam),
        "ratio": r.crossbeam / r.warren,
        "ratio_ack_multiple": r.warren_multiple.map(|w| r.crossbeam / w),
        "ratio_async": r.warren_async.map(|w| r.crossbeam / w),
    })
}
