//! The seed tutorial's two programs, consumer and publisher, in one process.
//!
//! The consumer declares the durable queue `po_box` and the durable direct exchange
//! `sorting_room`, binds them with the key `1111` and consumes with a callback driven by
//! `wait()`. The publisher sends ten JSON messages with `delivery_mode = 2`. Finally one more
//! message is fetched with `basic_get` and acknowledged by hand.
//!
//! Run with `cargo run --release --example tutorial`.

use std::thread;

use warrenmq::{
    Broker, ConsumeOptions, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions, Message,
    QueueDeclareOptions,
};

fn main() -> Result<(), warrenmq::Error> {
    let broker = Broker::in_memory();

    // amqp_consumer.py
    let conn = broker.connect("/")?;
    let chan = conn.open_channel()?;
    chan.queue_declare("po_box", QueueDeclareOptions::durable(), FieldTable::new())?;
    chan.exchange_declare(
        "sorting_room",
        ExchangeKind::Direct,
        ExchangeDeclareOptions::durable(),
        FieldTable::new(),
    )?;
    chan.queue_bind("po_box", "sorting_room", "1111", FieldTable::new())?;
    println!(
        "consumer: declared durable queue 'po_box' and durable direct exchange \
         'sorting_room', bound with routing key '1111'"
    );
    chan.basic_consume_with("po_box", ConsumeOptions::no_ack().tag("consumer"), |msg| {
        println!(
            "consumer '{}': received from queue 'po_box' (exchange '{}', routing key '{}'): {}",
            msg.consumer_tag().unwrap_or("-"),
            msg.exchange(),
            msg.routing_key(),
            String::from_utf8_lossy(msg.body())
        );
    })?;
    println!(
        "consumer: consuming from 'po_box' with consumer tag 'consumer' (no ack); wait() \
         runs the callback for each message"
    );
    let consumer = thread::spawn(move || -> Result<(), warrenmq::Error> {
        for _ in 0..10 {
            chan.wait()?;
        }
        chan.basic_cancel("consumer")?;
        Ok(())
    });

    // amqp_publisher.py
    let conn2 = broker.connect("/")?;
    let chan2 = conn2.open_channel()?;
    for x in 0..10 {
        let msg = format!(
            r#"{{"id": "{x}111", "lists": [{{"id": 12345}}, {{"id": 12345}}, {{"id": 15656}}, {{"id": "4545"}}]}}"#
        );
        chan2.basic_publish(
            "sorting_room",
            "1111",
            Message::new(msg.as_str()).persistent(),
        )?;
        println!("publisher: sent to exchange 'sorting_room' with routing key '1111' (persistent): {msg}");
    }
    // A panic in the consumer thread carries on here.
    consumer
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;

    // The commented part of the tutorial: pull one message and acknowledge it by hand.
    chan2.basic_publish(
        "sorting_room",
        "1111",
        Message::new(r#"{"id": "pull"}"#).persistent(),
    )?;
    if let Some(msg) = chan2.basic_get("po_box", GetOptions::default())? {
        println!(
            "publisher: basic_get from queue 'po_box' (exchange '{}', routing key '{}', \
             delivery tag {}): {}",
            msg.exchange(),
            msg.routing_key(),
            msg.delivery_tag(),
            String::from_utf8_lossy(msg.body())
        );
        chan2.basic_ack(msg.delivery_tag(), false)?;
        println!(
            "publisher: acknowledged delivery tag {}",
            msg.delivery_tag()
        );
    }
    let stats = broker.queue_stats("/", "po_box")?;
    println!(
        "queue 'po_box': {} ready, {} unacknowledged",
        stats.messages_ready, stats.messages_unacknowledged
    );
    Ok(())
}
