//! Every message that leaves a queue other than by delivery and ack is counted in its
//! `QueueStats`, by reason (expired, dropped by a length limit, rejected, refused); and the
//! traffic counters (published, delivered, redelivered, got, acked) and the unacked count
//! follow publishes, deliveries, acks, nacks and requeues; bindings are listed.

mod common;

use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, ConsumeOptions, DestinationKind, FieldTable, GetOptions, ManualClock, Message,
    QueueDeclareOptions,
};

#[test]
fn smoke() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    let stats = broker.queue_stats("/", "q").unwrap();
    assert_eq!(
        (
            stats.messages_expired,
            stats.messages_overflowed,
            stats.messages_rejected
        ),
        (0, 0, 0)
    );
}

#[test]
fn losses_are_counted_by_reason() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();

    let short = FieldTable::new().with("x-max-length", 2);
    ch.queue_declare("short", QueueDeclareOptions::default(), short)
        .unwrap();
    for i in 0..5 {
        publish(&ch, "", "short", &i.to_string());
    }
    let refusing = FieldTable::new()
        .with("x-max-length", 1)
        .with("x-overflow", "reject-publish");
    ch.queue_declare("refusing", QueueDeclareOptions::default(), refusing)
        .unwrap();
    for i in 0..3 {
        publish(&ch, "", "refusing", &i.to_string());
    }
    declare_queue(&ch, "plain");
    publish(&ch, "", "plain", "rejected");
    ch.basic_get("plain", GetOptions::default())
        .unwrap()
        .unwrap()
        .reject(false)
        .unwrap();
    ch.basic_publish("", "plain", Message::new("short-lived").expiration_ms(100))
        .unwrap();
    clock.advance(Duration::from_millis(200));
    assert!(ch
        .basic_get("plain", GetOptions::no_ack())
        .unwrap()
        .is_none());

    let short = broker.queue_stats("/", "short").unwrap();
    assert_eq!((short.messages_ready, short.messages_overflowed), (2, 3));
    let refusing = broker.queue_stats("/", "refusing").unwrap();
    assert_eq!(
        (refusing.messages_ready, refusing.publishes_refused),
        (1, 2)
    );
    let plain = broker.queue_stats("/", "plain").unwrap();
    assert_eq!((plain.messages_rejected, plain.messages_expired), (1, 1));
}

#[test]
fn traffic_is_counted() {
    let (broker, _c, ch) = setup();
    let args = FieldTable::new().with("x-max-length", 100);
    ch.queue_declare("t", QueueDeclareOptions::default(), args.clone())
        .unwrap();
    for i in 0..6 {
        publish(&ch, "", "t", &i.to_string());
    }
    let got = ch.basic_get("t", GetOptions::default()).unwrap().unwrap();
    got.ack().unwrap();
    let consumer = ch.basic_consume("t", ConsumeOptions::default()).unwrap();
    let first = consumer.recv().unwrap();
    let second = consumer.recv().unwrap();
    first.ack().unwrap();
    second.nack(true).unwrap(); // requeued: delivered again, redelivered
    let stats = broker.queue_stats("/", "t").unwrap();
    assert_eq!(stats.arguments, args);
    assert_eq!(stats.messages_published, 6);
    assert_eq!(stats.messages_got, 1);
    assert_eq!(stats.messages_acked, 2);
    // 5 handed to the consumer, then the requeued one again.
    assert_eq!(stats.messages_delivered, 6);
    assert_eq!(stats.messages_redelivered, 1);
    assert_eq!(stats.messages_unacknowledged, 4);
    assert_eq!(stats.messages_ready, 0);
    for d in consumer.try_iter().take(2) {
        d.reject(false).unwrap();
    }
    let stats = broker.queue_stats("/", "t").unwrap();
    assert_eq!(stats.messages_unacknowledged, 2);
    assert_eq!(stats.messages_rejected, 2);
    assert_eq!(stats.messages_acked, 2);
}

#[test]
fn bindings_are_listed() {
    let (broker, _c, ch) = setup();
    declare_queue(&ch, "q");
    ch.queue_bind("q", "amq.topic", "a.#", FieldTable::new())
        .unwrap();
    ch.exchange_bind("amq.fanout", "amq.direct", "k", FieldTable::new())
        .unwrap();
    let bindings = broker.list_bindings("/").unwrap();
    assert_eq!(bindings.len(), 2, "{bindings:?}");
    assert_eq!(bindings[0].source, "amq.direct");
    assert_eq!(bindings[0].destination, "amq.fanout");
    assert_eq!(bindings[0].destination_kind, DestinationKind::Exchange);
    assert_eq!(bindings[1].destination, "q");
    assert_eq!(bindings[1].destination_kind, DestinationKind::Queue);
    assert_eq!(bindings[1].routing_key, "a.#");
    assert!(broker.list_bindings("nope").is_err());
}
