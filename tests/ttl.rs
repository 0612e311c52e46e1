//! Message TTL (`x-message-ttl`, per-message `expiration`) and queue expiry (`x-expires`):
//! expiry at the head only, `expiration = "0"`, dead-lettering with reason `expired`,
//! `original-expiration`, RabbitMQ's 406 texts for invalid values, and the lease of an
//! unused queue. Every test drives time with a `ManualClock` and never sleeps.
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! sections 1 "Argument validation", 8 "Lifetimes" and 14 "TTL").

mod common;

use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, Channel, ConsumeOptions, FieldTable, FieldValue, GetOptions, ManualClock, Message,
    QueueDeclareOptions,
};

fn manual() -> (ManualClock, Broker, Channel) {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    (clock, broker, ch)
}

fn ready(ch: &Channel, name: &str) -> u32 {
    ch.queue_declare(name, QueueDeclareOptions::passive(), FieldTable::new())
        .unwrap()
        .message_count
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn smoke() {
    let (clock, _b, ch) = manual();
    declare(&ch, "q", FieldTable::new().with("x-message-ttl", 100));
    publish(&ch, "", "q", "m");
    clock.advance(ms(99));
    assert_eq!(ready(&ch, "q"), 1);
    clock.advance(ms(1));
    assert_eq!(ready(&ch, "q"), 0);
}

/// Declares `ttlq` (dead-lettering to fanout `dlx`) and `dlq` bound to `dlx`.
fn with_dlx(ch: &Channel, ttl: Option<i32>) {
    declare_exchange(ch, "dlx", warrenmq::ExchangeKind::Fanout);
    declare_queue(ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    let mut args = FieldTable::new().with("x-dead-letter-exchange", "dlx");
    if let Some(ttl) = ttl {
        args.insert("x-message-ttl", ttl);
    }
    declare(ch, "ttlq", args);
}

fn headers(d: &warrenmq::Delivery) -> FieldTable {
    d.properties().headers.clone().unwrap_or_default()
}

fn death(d: &warrenmq::Delivery, i: usize) -> FieldTable {
    let h = headers(d);
    h.get("x-death").unwrap().as_array().unwrap()[i]
        .as_table()
        .unwrap()
        .clone()
}

#[test]
fn expired_messages_are_dead_lettered_with_reason_expired() {
    let (clock, _b, ch) = manual();
    with_dlx(&ch, Some(100));
    publish(&ch, "", "ttlq", "t1");
    publish(&ch, "", "ttlq", "t2");
    clock.advance(ms(400));
    assert_eq!(ready(&ch, "ttlq"), 0);
    let d = ch.basic_get("dlq", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&d), "t1");
    assert_eq!(d.exchange(), "dlx");
    assert_eq!(d.routing_key(), "ttlq");
    assert!(!d.redelivered());
    let entry = death(&d, 0);
    assert_eq!(entry.get("count"), Some(&FieldValue::I64(1)));
    assert_eq!(entry.get("reason").unwrap().as_str(), Some("expired"));
    assert_eq!(entry.get("queue").unwrap().as_str(), Some("ttlq"));
    assert_eq!(entry.get("exchange").unwrap().as_str(), Some(""));
    assert_eq!(
        entry.get("routing-keys"),
        Some(&FieldValue::Array(vec!["ttlq".into()]))
    );
    // The time is the clock's, in seconds (ManualClock::new starts one day after the epoch).
    assert_eq!(entry.get("time"), Some(&FieldValue::Timestamp(86_400)));
    assert!(entry.get("original-expiration").is_none());
    let h = headers(&d);
    assert_eq!(
        h.get("x-first-death-reason").unwrap().as_str(),
        Some("expired")
    );
    assert_eq!(h.get("x-first-death-queue").unwrap().as_str(), Some("ttlq"));
    assert_eq!(h.get("x-first-death-exchange").unwrap().as_str(), Some(""));
    assert_eq!(drain(&ch, "dlq"), ["t2"]);
}

#[test]
fn per_message_expiration_is_recorded_as_original_expiration_and_removed() {
    let (clock, _b, ch) = manual();
    with_dlx(&ch, Some(100));
    ch.basic_publish("", "ttlq", Message::new("short").expiration_ms(50))
        .unwrap();
    clock.advance(ms(50));
    let d = ch.basic_get("dlq", GetOptions::no_ack()).unwrap().unwrap();
    assert_eq!(body(&d), "short");
    assert_eq!(d.properties().expiration, None);
    let entry = death(&d, 0);
    assert_eq!(
        entry.get("original-expiration").unwrap().as_str(),
        Some("50")
    );
    assert_eq!(entry.get("reason").unwrap().as_str(), Some("expired"));
}

#[test]
fn per_message_expiration_is_enforced_only_at_the_head() {
    let (clock, _b, ch) = manual();
    declare_queue(&ch, "q");
    ch.basic_publish("", "q", Message::new("long").expiration_ms(10_000))
        .unwrap();
    ch.basic_publish("", "q", Message::new("short").expiration_ms(50))
        .unwrap();
    clock.advance(ms(300));
    assert_eq!(
        ready(&ch, "q"),
        2,
        "the expired message behind still counts"
    );
    assert_eq!(drain(&ch, "q"), ["long"], "short is dropped at the head");
    assert_eq!(ready(&ch, "q"), 0);
}

#[test]
fn expiration_zero_is_delivered_only_to_a_waiting_consumer() {
    let (_clock, _b, ch) = manual();
    declare_queue(&ch, "q");
    ch.basic_publish("", "q", Message::new("nobody").expiration_ms(0))
        .unwrap();
    assert_eq!(ready(&ch, "q"), 0, "dropped at once without a consumer");
    let consumer = ch.basic_consume("q", ConsumeOptions::no_ack()).unwrap();
    ch.basic_publish("", "q", Message::new("waiting").expiration_ms(0))
        .unwrap();
    assert_eq!(body(&consumer.try_recv().unwrap()), "waiting");
}

#[test]
fn queue_ttl_zero_drops_unless_a_consumer_waits() {
    let (_clock, _b, ch) = manual();
    declare(&ch, "q", FieldTable::new().with("x-message-ttl", 0));
    publish(&ch, "", "q", "gone");
    assert_eq!(ready(&ch, "q"), 0);
    let consumer = ch.basic_consume("q", ConsumeOptions::no_ack()).unwrap();
    publish(&ch, "", "q", "taken");
    assert_eq!(body(&consumer.try_recv().unwrap()), "taken");
}

#[test]
fn the_shorter_of_queue_ttl_and_expiration_applies() {
    let (clock, _b, ch) = manual();
    declare(&ch, "q", FieldTable::new().with("x-message-ttl", 1_000));
    ch.basic_publish("", "q", Message::new("a").expiration_ms(5_000))
        .unwrap();
    ch.basic_publish("", "q", Message::new("b").expiration_ms(10))
        .unwrap();
    clock.advance(ms(999));
    assert_eq!(drain(&ch, "q"), ["a"], "b expired once it reached the head");
    publish(&ch, "", "q", "c");
    clock.advance(ms(1_000));
    assert_eq!(ready(&ch, "q"), 0);
}

#[test]
fn expired_messages_are_never_delivered_to_a_later_consumer() {
    let (clock, _b, ch) = manual();
    declare(&ch, "q", FieldTable::new().with("x-message-ttl", 10));
    publish(&ch, "", "q", "old");
    clock.advance(ms(10));
    let consumer = ch.basic_consume("q", ConsumeOptions::no_ack()).unwrap();
    assert!(consumer.try_recv().is_err());
    publish(&ch, "", "q", "new");
    assert_eq!(body(&consumer.try_recv().unwrap()), "new");
}

#[test]
fn a_requeued_message_keeps_its_expiry_time() {
    let (clock, _b, ch) = manual();
    declare(&ch, "q", FieldTable::new().with("x-message-ttl", 100));
    publish(&ch, "", "q", "m1");
    publish(&ch, "", "q", "m2");
    let d = ch.basic_get("q", GetOptions::default()).unwrap().unwrap();
    clock.advance(ms(150));
    d.nack(true).unwrap();
    assert_eq!(
        ready(&ch, "q"),
        0,
        "m1 came back expired; m2 expired meanwhile"
    );
}

#[test]
fn unacked_messages_do_not_expire() {
    let (clock, broker, ch) = manual();
    with_dlx(&ch, Some(100));
    publish(&ch, "", "ttlq", "held");
    publish(&ch, "", "ttlq", "waiting");
    let held = ch
        .basic_get("ttlq", GetOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(body(&held), "held");
    clock.advance(ms(1_000));
    // The ready message expired and was dead-lettered; the delivered one did not.
    let stats = broker.queue_stats("/", "ttlq").unwrap();
    assert_eq!(
        (
            stats.messages_ready,
            stats.messages_unacknowledged,
            stats.messages_expired
        ),
        (0, 1, 1)
    );
    assert_eq!(drain(&ch, "dlq"), ["waiting"]);
    // Acked long after its TTL, the held message is simply gone: never counted as expired.
    held.ack().unwrap();
    clock.advance(ms(1_000));
    let stats = broker.queue_stats("/", "ttlq").unwrap();
    assert_eq!(
        (
            stats.messages(),
            stats.messages_unacknowledged,
            stats.messages_expired
        ),
        (0, 0, 1)
    );
    assert!(drain(&ch, "dlq").is_empty());
}

#[test]
fn invalid_ttl_arguments_are_refused_with_rabbitmq_texts() {
    let cases: [(FieldValue, &str); 4] = [
        (FieldValue::I32(-1), "{value_negative,-1}"),
        ("abc".into(), "\"expected integer, got longstr\""),
        ("1000".into(), "\"expected integer, got longstr\""),
        (FieldValue::F64(1.5), "\"expected integer, got double\""),
    ];
    for (value, reason) in cases {
        let (_c, _b, ch) = manual();
        let err = ch
            .queue_declare(
                "ttl0",
                QueueDeclareOptions::default(),
                FieldTable::new().with("x-message-ttl", value),
            )
            .unwrap_err();
        assert_eq!(code(&err), 406);
        assert_eq!(
            err.to_string(),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'ttl0' in vhost \
                 '/': {reason}"
            )
        );
        assert!(ch.is_closed());
    }
    let (_c, _b, ch) = manual();
    declare(
        &ch,
        "big",
        FieldTable::new().with("x-message-ttl", (1i64 << 32) + 1),
    );
    declare(&ch, "zero", FieldTable::new().with("x-message-ttl", 0));
}

#[test]
fn invalid_expirations_close_the_channel_with_rabbitmq_texts() {
    for (expiration, text) in [
        ("-1", "invalid expiration '-1': {value_negative,-1}"),
        ("abc", "invalid expiration 'abc': no_integer"),
    ] {
        let (_c, _b, ch) = manual();
        declare_queue(&ch, "q");
        let mut msg = Message::new("x");
        msg.properties_mut().expiration = Some(expiration.to_owned());
        let err = ch.basic_publish("", "q", msg).unwrap_err();
        assert_eq!(code(&err), 406);
        assert_eq!(err.to_string(), format!("PRECONDITION_FAILED - {text}"));
        assert!(ch.is_closed());
    }
}

#[test]
fn an_unused_queue_expires_after_x_expires() {
    let (clock, broker, ch) = manual();
    declare(&ch, "lease", FieldTable::new().with("x-expires", 200));
    clock.advance(ms(199));
    assert!(broker.queue_stats("/", "lease").is_ok());
    clock.advance(ms(1));
    assert_eq!(code(&broker.queue_stats("/", "lease").unwrap_err()), 404);
}

#[test]
fn consumers_get_and_redeclare_renew_the_lease() {
    let (clock, broker, ch) = manual();
    let args = FieldTable::new().with("x-expires", 200);
    declare(&ch, "lease", args.clone());
    clock.advance(ms(150));
    assert!(ch
        .basic_get("lease", GetOptions::no_ack())
        .unwrap()
        .is_none());
    clock.advance(ms(150));
    declare(&ch, "lease", args);
    clock.advance(ms(150));
    let consumer = ch.basic_consume("lease", ConsumeOptions::no_ack()).unwrap();
    clock.advance(ms(10_000));
    assert!(
        broker.queue_stats("/", "lease").is_ok(),
        "a consumer keeps it"
    );
    consumer.cancel().unwrap();
    clock.advance(ms(199));
    assert!(broker.queue_stats("/", "lease").is_ok());
    clock.advance(ms(1));
    assert!(broker.queue_stats("/", "lease").is_err());
}

#[test]
fn a_passive_declare_renews_the_lease() {
    let (clock, broker, ch) = manual();
    declare(&ch, "lease", FieldTable::new().with("x-expires", 400));
    for _ in 0..4 {
        clock.advance(ms(200));
        ch.queue_declare("lease", QueueDeclareOptions::passive(), FieldTable::new())
            .unwrap();
    }
    assert!(broker.queue_stats("/", "lease").is_ok());
}

#[test]
fn invalid_x_expires_is_refused() {
    for (value, reason) in [(0, "{value_zero,0}"), (-5, "{value_negative,-5}")] {
        let (_c, _b, ch) = manual();
        let err = ch
            .queue_declare(
                "exp",
                QueueDeclareOptions::default(),
                FieldTable::new().with("x-expires", value),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'exp' in vhost '/': \
                 {reason}"
            )
        );
    }
}

#[test]
fn a_dropped_broker_stops_its_timers() {
    let clock = ManualClock::new();
    {
        let broker = Broker::builder().clock(clock.clone()).build().unwrap();
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        declare(&ch, "q", FieldTable::new().with("x-message-ttl", 10));
        publish(&ch, "", "q", "m");
    }
    clock.advance(ms(100));
}
