//! Scale out: one program that runs on the in-process broker, and on a RabbitMQ cluster (or
//! `warren-server`) when given node URLs — nothing else in it changes.
//!
//! A publisher with confirms sends numbered persistent messages to a quorum queue in
//! batches, publishing a batch again when its confirms say it was not (all) confirmed; a
//! consumer on another channel acks what it receives. On a cluster, when the node the
//! program is connected to stops, the connection reconnects to another node, declares the
//! queue again and resubscribes the consumer; the program prints the connection's events.
//! At the end it checks that every confirmed message was consumed at least once.
//!
//! ```text
//! cargo run --example scale_out
//! cargo run --features remote --example scale_out -- \
//!     --url amqp://guest:guest@127.0.0.1:5672/%2f [--url amqp://…node2…] [--messages 20000]
//! ```
//!
//! `scripts/cluster-test` runs it against a three-node RabbitMQ cluster and stops a node
//! mid-run.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use warrenmq::{Broker, Connection, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};

const QUEUE: &str = "scale-out";
const BATCH: usize = 100;

struct Args {
    urls: Vec<String>,
    messages: usize,
    quorum: bool,
    pause: Duration,
    expect_reconnect: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        urls: Vec::new(),
        messages: 10_000,
        quorum: false,
        pause: Duration::ZERO,
        expect_reconnect: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => args.urls.push(value()?),
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?
            }
            "--pause-ms" => {
                args.pause = Duration::from_millis(
                    value()?.parse().map_err(|e| format!("--pause-ms: {e}"))?,
                );
            }
            "--quorum" => args.quorum = true,
            "--expect-reconnect" => args.expect_reconnect = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// The only place the program differs: where its connection comes from.
fn connect(urls: &[String]) -> Result<(Connection, Option<Broker>), Box<dyn std::error::Error>> {
    if urls.is_empty() {
        let broker = Broker::in_memory();
        return Ok((broker.connect("/")?, Some(broker)));
    }
    #[cfg(feature = "remote")]
    {
        let conn = Connection::builder()
            .nodes(urls.iter().cloned())
            .give_up_after(Duration::from_secs(60))
            .connect()?;
        Ok((conn, None))
    }
    #[cfg(not(feature = "remote"))]
    Err("--url needs the `remote` feature: cargo run --features remote --example scale_out".into())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("scale_out: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args = args()?;
    let (conn, _broker) = connect(&args.urls)?;
    println!(
        "{} connection to vhost '{}'",
        if conn.is_remote() {
            "remote"
        } else {
            "in-process"
        },
        conn.vhost()
    );
    let reconnects = Arc::new(AtomicUsize::new(0));
    #[cfg(feature = "remote")]
    {
        let events = conn.events();
        let reconnects = Arc::clone(&reconnects);
        thread::spawn(move || {
            while let Ok(event) = events.recv() {
                println!("event: {event:?}");
                if matches!(event, warrenmq::ConnectionEvent::Reconnected { .. }) {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    let publisher = conn.open_channel()?;
    let (options, arguments) = if args.quorum {
        (
            QueueDeclareOptions::durable(),
            FieldTable::new().with("x-queue-type", "quorum"),
        )
    } else {
        (QueueDeclareOptions::durable(), FieldTable::new())
    };
    publisher.queue_declare(QUEUE, options, arguments)?;
    publisher.queue_purge(QUEUE)?;

    let consumed = Arc::new(Mutex::new((HashSet::new(), 0usize)));
    let consumer_channel = conn.open_channel()?;
    consumer_channel.basic_qos(500)?;
    let consumer = consumer_channel.basic_consume(QUEUE, ConsumeOptions::default())?;
    let seen = Arc::clone(&consumed);
    let receiving = thread::spawn(move || {
        for delivery in consumer.iter() {
            let n: usize = String::from_utf8_lossy(delivery.body())
                .parse()
                .unwrap_or(usize::MAX);
            {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.1 += 1;
                seen.0.insert(n);
            }
            // A failed ack is redelivered: at least once.
            let _ = delivery.ack();
        }
    });

    publisher.confirm_select()?;
    let started = Instant::now();
    let mut confirmed = 0usize;
    let mut republished = 0usize;
    let mut next = 0usize;
    while next < args.messages {
        let batch = next..(next + BATCH).min(args.messages);
        loop {
            for i in batch.clone() {
                publisher.basic_publish("", QUEUE, Message::new(i.to_string()).persistent())?;
            }
            if publisher.wait_for_confirms()? {
                break;
            }
            // Not (all) confirmed: the connection was lost meanwhile, or a node refused.
            republished += batch.len();
        }
        confirmed += batch.len();
        next = batch.end;
        thread::sleep(args.pause);
    }
    let published_in = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(60);
    let (unique, deliveries) = loop {
        let (unique, deliveries) = {
            let seen = consumed.lock().unwrap_or_else(|e| e.into_inner());
            (seen.0.len(), seen.1)
        };
        if unique >= confirmed || Instant::now() > deadline {
            break (unique, deliveries);
        }
        thread::sleep(Duration::from_millis(50));
    };
    let missing = {
        let seen = consumed.lock().unwrap_or_else(|e| e.into_inner());
        (0..confirmed).filter(|i| !seen.0.contains(i)).count()
    };
    let reconnects = reconnects.load(Ordering::Relaxed);
    println!(
        "published {} messages in {:.2} s ({republished} published again), confirmed {confirmed}, \
         consumed {unique} distinct in {deliveries} deliveries, missing {missing}, reconnects {reconnects}",
        args.messages,
        published_in.as_secs_f64(),
    );
    conn.close();
    let _ = receiving.join();
    let ok = missing == 0 && (!args.expect_reconnect || reconnects > 0);
    println!("{}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}
