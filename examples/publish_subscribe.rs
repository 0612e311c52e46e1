//! Publish/subscribe: a fanout exchange copies every log line to each subscriber's own
//! server-named, exclusive queue.
//!
//! Run with `cargo run --example publish_subscribe`.

use warrenmq::{
    Broker, ConsumeOptions, ExchangeDeclareOptions, ExchangeKind, FieldTable, Message,
    QueueDeclareOptions,
};

fn main() -> Result<(), warrenmq::Error> {
    let broker = Broker::in_memory();
    let conn = broker.connect("/")?;
    let ch = conn.open_channel()?;
    ch.exchange_declare(
        "logs",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )?;

    let subscribers: Vec<_> = (0..2)
        .map(|_| {
            let queue = ch
                .queue_declare("", QueueDeclareOptions::exclusive(), FieldTable::new())?
                .queue;
            ch.queue_bind(&queue, "logs", "", FieldTable::new())?;
            ch.basic_consume(&queue, ConsumeOptions::no_ack())
        })
        .collect::<Result<_, _>>()?;

    for line in [
        "info: started",
        "warning: disk 80% full",
        "error: out of coffee",
    ] {
        ch.basic_publish("logs", "", Message::new(line))?;
    }
    for (i, subscriber) in subscribers.iter().enumerate() {
        for log in subscriber.try_iter() {
            println!(
                "subscriber {i} ({}): {}",
                subscriber.queue(),
                String::from_utf8_lossy(log.body())
            );
        }
    }
    Ok(())
}
