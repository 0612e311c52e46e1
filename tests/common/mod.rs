//! Shared set-up for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use warrenmq::{
    Broker, Channel, Connection, Delivery, ExchangeDeclareOptions, ExchangeKind, FieldTable,
    GetOptions, Message, QueueDeclareOptions,
};

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A broker with one connection and one channel on `/`.
pub fn setup() -> (Broker, Connection, Channel) {
    let broker = Broker::in_memory();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    (broker, conn, ch)
}

pub fn declare_queue(ch: &Channel, name: &str) -> String {
    ch.queue_declare(name, QueueDeclareOptions::default(), FieldTable::new())
        .unwrap()
        .queue
}

pub fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name,
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .unwrap();
}

pub fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish(exchange, key, Message::new(body.to_owned()))
        .unwrap();
}

/// Fetches every ready message of a queue without ack; returns the bodies.
pub fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(d) = ch.basic_get(queue, GetOptions::no_ack()).unwrap() {
        bodies.push(body(&d));
    }
    bodies
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8(d.body().to_vec()).unwrap()
}

pub fn code(e: &warrenmq::Error) -> u16 {
    e.reply_code().0
}
