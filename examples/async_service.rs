//! An async service on tokio: orders are published to a durable topic exchange and two
//! services consume them as `Stream`s with manual acks, while the publisher awaits each
//! batch's confirms. Persistent: the broker keeps its queues in a redb file, and a Ctrl-C
//! stops it gracefully (consumers stop between deliveries, the publisher's last batch is
//! confirmed, the broker is closed), so a restart on the same directory serves whatever was
//! left, none of it lost.
//!
//! ```text
//! cargo run --example async_service                      # until Ctrl-C, in a temporary dir
//! cargo run --example async_service -- --data-dir DIR    # keep the data in DIR/orders.redb
//! cargo run --example async_service -- --messages 10000  # stop by itself after 10,000 orders
//! ```
//!
//! `orders` (topic) ─┬─ `order.#`      ──► `billing`  (every order)
//!                   └─ `order.paid.*` ──► `shipping` (paid orders)
//!
//! Which calls block: opening the broker, declaring durable entities on a persistent broker
//! (each waits for its fsync) and closing the broker touch the disk, so they run on
//! `spawn_blocking`; publishing never waits; receiving and confirms are awaited.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use futures_lite::StreamExt;
use tokio::sync::watch;
use tokio::task::{spawn_blocking, JoinHandle};
use warrenmq::{
    Broker, Channel, ConsumeOptions, Consumer, ExchangeDeclareOptions, ExchangeKind, FieldTable,
    Message, PublishOptions, QueueDeclareOptions,
};

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

/// Orders published between two awaits of their confirms.
const BATCH: u64 = 100;

/// The routing key of order `n`: every other order is paid, regions alternate.
fn routing_key(n: u64) -> String {
    let state = if n % 2 == 1 { "paid" } else { "created" };
    let region = ["eu", "us", "apac"][(n % 3) as usize];
    format!("order.{state}.{region}")
}

/// How many of the first `count` orders are paid (and so reach `shipping`).
fn paid_among(count: u64) -> u64 {
    count / 2
}

/// The command line: `--data-dir DIR`, `--messages N` (0 or absent: until Ctrl-C).
struct Args {
    data_dir: Option<PathBuf>,
    messages: Option<u64>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        data_dir: None,
        messages: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--data-dir" => args.data_dir = Some(argv.next().ok_or("--data-dir DIR")?.into()),
            "--messages" => {
                let n: u64 = argv.next().ok_or("--messages N")?.parse()?;
                args.messages = (n > 0).then_some(n);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let temporary = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir()?),
    };
    let dir = match (&args.data_dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => unreachable!("one of them is set"),
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("orders.redb");

    // Opening reads the file back: a blocking call, off the runtime's workers.
    let broker = spawn_blocking(move || Broker::open(path)).await??;
    let conn = broker.connect("/")?;
    let setup = conn.open_channel()?;
    // Durable declares return once their record is on disk: blocking too.
    spawn_blocking(move || declare_topology(&setup)).await??;

    let (stop, stopping) = watch::channel(false);
    let limit = args.messages;
    let billing = consume(&conn, "billing", limit, stopping.clone())?;
    let shipping = consume(&conn, "shipping", limit.map(paid_among), stopping.clone())?;
    let publisher = tokio::spawn(publish(conn.open_channel()?, limit, stopping));
    println!(
        "async_service: serving, data in {}; {}",
        dir.display(),
        match limit {
            Some(n) => format!("stopping after {n} orders (or Ctrl-C)"),
            None => "Ctrl-C to stop".to_owned(),
        }
    );

    // Ctrl-C tells every task to stop; without it they stop after `limit` orders.
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            println!("async_service: Ctrl-C, stopping");
            let _ = stop.send(true);
        }
    });
    let published = publisher.await??;
    let billed = billing.await??;
    let shipped = shipping.await??;

    // Closing writes what is left and releases the file: blocking, off the workers.
    drop(conn);
    spawn_blocking(move || broker.close()).await??;
    println!(
        "async_service: stopped; published {published} orders, all confirmed; billing acked \
         {billed}, shipping acked {shipped}"
    );
    Ok(())
}

/// The durable topic exchange, the two durable queues and their bindings.
fn declare_topology(ch: &Channel) -> warrenmq::Result<()> {
    ch.exchange_declare(
        "orders",
        ExchangeKind::Topic,
        ExchangeDeclareOptions::durable(),
        FieldTable::new(),
    )?;
    for (queue, pattern) in [("billing", "order.#"), ("shipping", "order.paid.*")] {
        ch.queue_declare(queue, QueueDeclareOptions::durable(), FieldTable::new())?;
        ch.queue_bind(queue, "orders", pattern, FieldTable::new())?;
    }
    Ok(())
}

/// Starts a service consuming `queue` as a `Stream` with manual acks, until it has acked
/// `limit` orders or is told to stop; the task returns how many it acked.
fn consume(
    conn: &warrenmq::Connection,
    queue: &'static str,
    limit: Option<u64>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<u64>>> {
    let ch = conn.open_channel()?;
    ch.basic_qos(50)?;
    let consumer: Consumer = ch.basic_consume(queue, ConsumeOptions::default())?;
    Ok(tokio::spawn(async move {
        let mut consumer = consumer;
        let mut acked = 0;
        while limit != Some(acked) {
            // Dropping `consumer.next()` when the stop wins loses no message: the
            // stream is cancel-safe, and what the consumer held goes back to the queue
            // when it is dropped.
            let delivery = tokio::select! {
                biased;
                _ = stop.changed() => break,
                next = consumer.next() => match next {
                    Some(delivery) => delivery,
                    None => break, // cancelled, or the broker closed
                },
            };
            // The work of the service would go here.
            let _order = String::from_utf8_lossy(delivery.body());
            delivery.ack()?;
            acked += 1;
        }
        drop(consumer);
        drop(ch);
        println!("async_service: {queue} acked {acked}");
        Ok(acked)
    }))
}

/// Publishes persistent orders in batches, awaiting each batch's confirms (each one
/// resolves once its message is on disk); `limit` orders, or until told to stop.
async fn publish(ch: Channel, limit: Option<u64>, mut stop: watch::Receiver<bool>) -> Result<u64> {
    let mut published = 0;
    while limit.is_none_or(|n| published < n) && !*stop.borrow() {
        let end = limit.map_or(published + BATCH, |n| n.min(published + BATCH));
        let mut confirms = Vec::new();
        for n in published..end {
            let body = format!(r#"{{"order": {n}}}"#);
            let message = Message::new(body).persistent();
            confirms.push(ch.basic_publish_with_confirm(
                "orders",
                &routing_key(n),
                PublishOptions::default(),
                message,
            )?);
        }
        for confirm in confirms {
            if !confirm.await? {
                return Err("the broker refused an order".into());
            }
        }
        published = end;
        if limit.is_none() {
            // A steady trickle until Ctrl-C.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.changed() => break,
            }
        }
    }
    Ok(published)
}
