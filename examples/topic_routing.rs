//! Topic routing: `*` matches one word, `#` zero or more. `route_preview` shows where a key
//! would go without publishing, handy in unit tests of routing logic.
//!
//! Run with `cargo run --example topic_routing`.

use warrenmq::{
    Broker, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions, Message,
    QueueDeclareOptions,
};

fn main() -> Result<(), warrenmq::Error> {
    let broker = Broker::in_memory();
    let ch = broker.connect("/")?.open_channel()?;
    ch.exchange_declare(
        "topic_logs",
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )?;
    let bindings = [
        ("kernel", "kern.*"),
        ("critical", "*.critical"),
        ("everything", "#"),
        ("auth_all", "auth.#"),
    ];
    for (queue, pattern) in bindings {
        ch.queue_declare(queue, QueueDeclareOptions::default(), FieldTable::new())?;
        ch.queue_bind(queue, "topic_logs", pattern, FieldTable::new())?;
    }

    for key in ["kern.critical", "auth.login.failed", "cron.info", "auth"] {
        let preview = ch.route_preview("topic_logs", key, &FieldTable::new())?;
        println!("{key:<18} -> {:?}", preview.queues);
        ch.basic_publish("topic_logs", key, Message::new(format!("a {key} event")))?;
    }
    while let Some(d) = ch.basic_get("auth_all", GetOptions::no_ack())? {
        println!("auth_all got: {}", String::from_utf8_lossy(d.body()));
    }
    Ok(())
}
