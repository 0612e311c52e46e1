//! Priority queues (`x-max-priority`): higher priority first, FIFO within a priority,
//! priorities above the maximum clamped to it, no priority = 0, FIFO without the argument,
//! requeued messages back in their place within their priority, and the 406 texts for an
//! invalid maximum, drop-head and TTL acting on the (highest-priority) head only.
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! sections 1 "Argument validation", 14 "Priority" and 16).

mod common;

use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, Channel, ConsumeOptions, FieldTable, GetOptions, ManualClock, Message,
    QueueDeclareOptions,
};

fn declare_max(ch: &Channel, name: &str, max: i32) {
    ch.queue_declare(
        name,
        QueueDeclareOptions::default(),
        FieldTable::new().with("x-max-priority", max),
    )
    .unwrap();
}

/// Publishes `(body, priority)` pairs to queue `q`.
fn publish_all(ch: &Channel, msgs: &[(&str, Option<u8>)]) {
    for (body, priority) in msgs {
        let mut msg = Message::new(body.to_string());
        if let Some(p) = priority {
            msg = msg.priority(*p);
        }
        ch.basic_publish("", "q", msg).unwrap();
    }
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    declare_max(&ch, "q", 10);
    publish_all(&ch, &[("low", Some(1)), ("high", Some(9))]);
    assert_eq!(drain(&ch, "q"), ["high", "low"]);
}

#[test]
fn higher_first_fifo_within_a_priority_above_max_is_max() {
    let (_b, _c, ch) = setup();
    declare_max(&ch, "q", 10);
    publish_all(
        &ch,
        &[
            ("1", Some(1)),
            ("5#2", Some(5)),
            ("3", Some(3)),
            ("5#4", Some(5)),
            ("0", Some(0)),
            ("none", None),
            ("200", Some(200)),
        ],
    );
    assert_eq!(
        drain(&ch, "q"),
        ["200", "5#2", "5#4", "3", "1", "0", "none"]
    );
}

#[test]
fn priorities_above_a_small_maximum_tie() {
    let (_b, _c, ch) = setup();
    declare_max(&ch, "q", 3);
    publish_all(
        &ch,
        &[
            ("1", Some(1)),
            ("5", Some(5)),
            ("3", Some(3)),
            ("9", Some(9)),
            ("0", Some(0)),
        ],
    );
    assert_eq!(drain(&ch, "q"), ["5", "3", "9", "1", "0"]);
}

#[test]
fn without_max_priority_the_property_is_ignored() {
    let (_b, _c, ch) = setup();
    declare_queue(&ch, "q");
    publish_all(&ch, &[("a", Some(1)), ("b", Some(9)), ("c", None)]);
    assert_eq!(drain(&ch, "q"), ["a", "b", "c"]);
}

#[test]
fn a_requeued_message_returns_to_its_place_within_its_priority() {
    let (_b, _c, ch) = setup();
    declare_max(&ch, "q", 10);
    publish_all(&ch, &[("5#1", Some(5)), ("5#2", Some(5)), ("1", Some(1))]);
    let first = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    assert_eq!(body(&first), "5#1");
    publish_all(&ch, &[("9", Some(9))]);
    first.nack(true).unwrap();
    let mut order = Vec::new();
    while let Some(d) = ch.basic_get("q", GetOptions::no_ack()).unwrap() {
        order.push(format!(
            "{}{}",
            body(&d),
            if d.redelivered() { "(R)" } else { "" }
        ));
    }
    assert_eq!(order, ["9", "5#1(R)", "5#2", "1"]);
}

#[test]
fn consumers_receive_in_priority_order() {
    let (_b, conn, ch) = setup();
    declare_max(&ch, "q", 5);
    publish_all(&ch, &[("a", Some(1)), ("b", Some(2)), ("c", Some(3))]);
    let consumer_ch = conn.open_channel().unwrap();
    consumer_ch.basic_qos(1).unwrap();
    let consumer = consumer_ch
        .basic_consume("q", ConsumeOptions::default())
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = consumer.recv_timeout(PATIENCE).unwrap();
        got.push(body(&d));
        d.ack().unwrap();
    }
    assert_eq!(got, ["c", "b", "a"]);
}

#[test]
fn drop_head_drops_the_highest_priority_head() {
    let (_b, _c, ch) = setup();
    ch.queue_declare(
        "q",
        QueueDeclareOptions::default(),
        FieldTable::new()
            .with("x-max-priority", 5)
            .with("x-max-length", 2),
    )
    .unwrap();
    publish_all(&ch, &[("p1", Some(1)), ("p5", Some(5)), ("p3", Some(3))]);
    assert_eq!(drain(&ch, "q"), ["p3", "p1"]);
}

#[test]
fn only_the_head_expires_in_a_priority_queue() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare_max(&ch, "q", 5);
    ch.basic_publish(
        "",
        "q",
        Message::new("long-hi").priority(5).expiration_ms(10_000),
    )
    .unwrap();
    ch.basic_publish(
        "",
        "q",
        Message::new("short-lo").priority(1).expiration_ms(50),
    )
    .unwrap();
    clock.advance(Duration::from_millis(400));
    assert_eq!(broker.queue_stats("/", "q").unwrap().messages_ready, 2);
    assert_eq!(drain(&ch, "q"), ["long-hi"]);
}

#[test]
fn invalid_max_priority_is_refused() {
    for (value, reason) in [
        (256, "{max_value_exceeded,256}"),
        (-1, "{value_negative,-1}"),
    ] {
        let (_b, _c, ch) = setup();
        let err = ch
            .queue_declare(
                "p",
                QueueDeclareOptions::default(),
                FieldTable::new().with("x-max-priority", value),
            )
            .unwrap_err();
        assert_eq!(code(&err), 406);
        assert_eq!(
            err.to_string(),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'p' in vhost '/': \
                 {reason}"
            )
        );
    }
    let (_b, _c, ch) = setup();
    declare_max(&ch, "max", 255);
}
