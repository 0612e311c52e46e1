//! `warren-bench wire`: publish and consume rates over AMQP 0-9-1, through a `warren-server`
//! listener started in this process and through RabbitMQ, with the same client.
//!
//! The client ([`amqp_client`](crate::amqp_client)) is a blocking one on `amq-protocol`'s
//! codec, so both servers get the same bytes. Each round, per server: one connection
//! declares a queue, turns on publisher confirms and publishes `--messages` messages,
//! waiting for confirms every [`WINDOW`]; then a second connection consumes them all with
//! prefetch [`PREFETCH`], acking with `multiple` every [`ACK_EVERY`]. Rounds alternate
//! between the servers; each figure is the median round.

use std::time::Instant;

use clap::Args;
use serde_json::json;
use warrenmq::Broker;

use crate::amqp_client::Client;
use crate::table::{rate, ratio, Table};

/// Publishes between two waits for confirms.
pub(crate) const WINDOW: u64 = 1000;
/// The consumer's prefetch count.
pub(crate) const PREFETCH: u16 = 1000;
/// Deliveries between two acks (with `multiple`).
pub(crate) const ACK_EVERY: u64 = 100;

/// Arguments of `warren-bench wire`.
#[derive(Debug, Args)]
pub(crate) struct WireArgs {
    /// Messages per round.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// RabbitMQ's address (guest/guest, vhost `/`); skipped if it cannot be reached.
    #[arg(long, default_value = "127.0.0.1:5672")]
    rabbitmq: String,
    /// Rounds per server.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Median seconds of one server's rounds.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// Publishing with confirms.
    publish: f64,
    /// Consuming with acks.
    consume: f64,
}

/// Runs the subcommand.
pub(crate) fn run_wire(args: &WireArgs) -> Result<(), String> {
    let broker = Broker::in_memory();
    let server = broker
        .serve("127.0.0.1:0")
        .map_err(|e| format!("Warren cannot listen: {e}"))?;
    let warren_addr = server.local_addr().to_string();
    let queue = format!("warren-bench-wire-{}", std::process::id());
    let rabbit_note = match Client::connect(&args.rabbitmq).and_then(Client::close) {
        Ok(()) => None,
        Err(e) => Some(format!("RabbitMQ at {} not measured: {e}", args.rabbitmq)),
    };
    let body = vec![b'x'; args.size];
    // One untimed round warms Warren's listener and the client's buffers.
    round(&warren_addr, &queue, args.messages.min(10_000), &body)?;
    let (mut warren, mut rabbit) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        warren.push(round(&warren_addr, &queue, args.messages, &body)?);
        if rabbit_note.is_none() {
            let timing = round(&args.rabbitmq, &queue, args.messages, &body)
                .map_err(|e| format!("RabbitMQ at {}: {e}", args.rabbitmq))?;
            rabbit.push(timing);
        }
    }
    server.shutdown();
    let warren = median(warren);
    let rabbit = (!rabbit.is_empty()).then(|| median(rabbit));
    if args.json {
        if let Some(note) = &rabbit_note {
            eprintln!("warren-bench: {note}");
        }
        println!("{}", to_json(args, warren, rabbit, rabbit_note.as_deref()));
    } else {
        print_table(args, warren, rabbit, rabbit_note.as_deref());
    }
    Ok(())
}

/// One round against the server at `addr`.
fn round(addr: &str, queue: &str, n: u64, body: &[u8]) -> Result<Timing, String> {
    let io = |e: std::io::Error| format!("{addr}: {e}");
    let mut publisher = Client::connect(addr).map_err(io)?;
    publisher.queue_declare(queue, false).map_err(io)?;
    publisher.confirm_select().map_err(io)?;
    let began = Instant::now();
    for i in 0..n {
        publisher.publish(queue, body, false).map_err(io)?;
        if (i + 1).is_multiple_of(WINDOW) || i + 1 == n {
            publisher.wait_for_confirms().map_err(io)?;
        }
    }
    let publish = began.elapsed().as_secs_f64().max(1e-9);
    let mut consumer = Client::connect(addr).map_err(io)?;
    consumer.basic_qos(PREFETCH).map_err(io)?;
    let began = Instant::now();
    consumer.consume(queue, n, Some(ACK_EVERY)).map_err(io)?;
    let consume = began.elapsed().as_secs_f64().max(1e-9);
    consumer.close().map_err(io)?;
    publisher.queue_delete(queue).map_err(io)?;
    publisher.close().map_err(io)?;
    Ok(Timing { publish, consume })
}

/// The median of each part, taken separately.
fn median(timings: Vec<Timing>) -> Timing {
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Timing {
        publish: mid(timings.iter().map(|t| t.publish).collect()),
        consume: mid(timings.iter().map(|t| t.consume).collect()),
    }
}

/// Messages per second: publish, consume, and both (all messages through, one after the
/// other).
fn rates(n: u64, t: Timing) -> (f64, f64, f64) {
    let n = n as f64;
    (n / t.publish, n / t.consume, n / (t.publish + t.consume))
}

/// Prints the report as a table.
fn print_table(args: &WireArgs, warren: Timing, rabbit: Option<Timing>, note: Option<&str>) {
    println!(
        "{} transient {}-byte messages per round: publish with confirms (window {WINDOW}), \
         then consume with prefetch {PREFETCH} and acks every {ACK_EVERY}; median of {} rounds",
        args.messages, args.size, args.rounds
    );
    println!();
    let mut table = Table::new(&["server", "publish", "consume", "both", "÷ RabbitMQ"]);
    let rabbit_rates = rabbit.map(|t| rates(args.messages, t));
    let mut line = |label: &str, r: (f64, f64, f64)| {
        table.row(vec![
            label.to_string(),
            rate(Some(r.0)),
            rate(Some(r.1)),
            rate(Some(r.2)),
            ratio(rabbit_rates.map(|b| r.2 / b.2)),
        ]);
    };
    line("warren-server (in process)", rates(args.messages, warren));
    if let Some(r) = rabbit_rates {
        line("RabbitMQ", r);
    }
    print!("{}", table.render());
    if let Some(note) = note {
        println!("{note}");
    }
}

/// The JSON report.
fn to_json(
    args: &WireArgs,
    warren: Timing,
    rabbit: Option<Timing>,
    note: Option<&str>,
) -> serde_json::Value {
    let (w_pub, w_con, w_both) = rates(args.messages, warren);
    let r = rabbit.map(|t| rates(args.messages, t));
    json!({
        "messages": args.messages,
        "size": args.size,
        "rounds": args.rounds,
        "confirm_window": WINDOW,
        "prefetch": PREFETCH,
        "warren_publish_msgs_per_s": w_pub,
        "warren_consume_msgs_per_s": w_con,
        "warren_msgs_per_s": w_both,
        "rabbitmq_publish_msgs_per_s": r.map(|r| r.0),
        "rabbitmq_consume_msgs_per_s": r.map(|r| r.1),
        "rabbitmq_msgs_per_s": r.map(|r| r.2),
        "warren_over_rabbitmq": r.map(|r| w_both / r.2),
        "note": note,
    })
}
