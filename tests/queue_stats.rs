//! Every message that leaves a queue other than by delivery and ack is counted in its
//! `QueueStats`, by reason (expired, dropped by a length limit, rejected, refused).

mod common;

use std::time::Duration;

use common::*;
use warrenmq::{Broker, FieldTable, GetOptions, ManualClock, Message, QueueDeclareOptions};

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
