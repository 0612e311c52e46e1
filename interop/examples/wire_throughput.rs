//! Throughput over the wire: the same lapin client publishes (with publisher confirms) and
//! then consumes (manual acks, prefetch 1000) `COUNT` messages through Warren's listener
//! and through RabbitMQ, and prints messages per second for each.
//!
//! ```text
//! cargo run --release -p warren-interop --example wire_throughput -- [--count N] [--size BYTES]
//!     [--warren ADDR] [--rabbitmq ADDR] [--persistent]
//! ```
//!
//! `--persistent` publishes `delivery_mode = 2` messages to a durable queue; against a
//! `warren-server --data-dir DIR` each confirm then waits for the disk, as RabbitMQ's do.
//!
//! Without `--warren`, Warren is served in this process on a free port (so it shares the
//! machine with the client, as RabbitMQ does). `--rabbitmq` defaults to 127.0.0.1:5672;
//! a server that cannot be reached is reported and skipped.

use std::time::Instant;

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// Publishes between waits for confirms.
const WINDOW: usize = 1000;

struct Args {
    count: usize,
    size: usize,
    warren: Option<String>,
    rabbitmq: String,
    persistent: bool,
}

fn parse() -> Args {
    let mut args = Args {
        count: 100_000,
        size: 100,
        warren: None,
        rabbitmq: "127.0.0.1:5672".into(),
        persistent: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--persistent" {
            args.persistent = true;
            continue;
        }
        let value = argv.next().unwrap_or_default();
        match flag.as_str() {
            "--count" => args.count = value.parse().unwrap_or(args.count),
            "--size" => args.size = value.parse().unwrap_or(args.size),
            "--warren" => args.warren = Some(value),
            "--rabbitmq" => args.rabbitmq = value,
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    args
}

/// Publish and consume rates, in messages per second.
async fn measure(addr: &str, args: &Args) -> lapin::Result<(f64, f64)> {
    let (count, size) = (args.count, args.size);
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let queue = format!("wire-throughput-{}", std::process::id());
    let durable = QueueDeclareOptions {
        durable: args.persistent,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await?;
    let mode = if args.persistent { 2 } else { 1 };
    let properties = BasicProperties::default().with_delivery_mode(mode);
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b'x'; size];

    let started = Instant::now();
    let mut pending = Vec::with_capacity(WINDOW);
    for i in 0..count {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await?;
        pending.push(confirm);
        if pending.len() == WINDOW || i + 1 == count {
            for confirm in pending.drain(..) {
                confirm.await?;
            }
        }
    }
    let publish_rate = count as f64 / started.elapsed().as_secs_f64();

    let consumer_ch = conn.create_channel().await?;
    consumer_ch
        .basic_qos(1000, BasicQosOptions::default())
        .await?;
    let started = Instant::now();
    let mut consumer = consumer_ch
        .basic_consume(
            queue.as_str().into(),
            "throughput".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for i in 0..count {
        let Some(delivery) = consumer.next().await else {
            break;
        };
        let delivery = delivery?;
        if (i + 1) % 100 == 0 || i + 1 == count {
            delivery.ack(BasicAckOptions { multiple: true }).await?;
        }
    }
    let consume_rate = count as f64 / started.elapsed().as_secs_f64();
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    conn.close(200, "done".into()).await?;
    Ok((publish_rate, consume_rate))
}

#[tokio::main]
async fn main() {
    let args = parse();
    let broker = warrenmq::Broker::in_memory();
    let local = match &args.warren {
        Some(_) => None,
        None => Some(broker.serve("127.0.0.1:0").expect("Warren listens")),
    };
    let warren = match (&args.warren, &local) {
        (Some(addr), _) => addr.clone(),
        (None, Some(server)) => server.local_addr().to_string(),
        (None, None) => unreachable!("a local server was started"),
    };
    println!(
        "{} {} messages of {} bytes, publisher confirms (window {WINDOW}), consume with prefetch 1000",
        args.count,
        if args.persistent { "persistent" } else { "transient" },
        args.size
    );
    println!(
        "{:<10} {:>16} {:>16}",
        "server", "publish msg/s", "consume msg/s"
    );
    for (name, addr) in [
        ("warren", warren.as_str()),
        ("rabbitmq", args.rabbitmq.as_str()),
    ] {
        match measure(addr, &args).await {
            Ok((publish, consume)) => println!("{name:<10} {publish:>16.0} {consume:>16.0}"),
            Err(e) => println!("{name:<10} unavailable at {addr}: {e}"),
        }
    }
}
