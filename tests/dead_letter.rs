//! Dead-lettering (`x-dead-letter-exchange`, `x-dead-letter-routing-key`): what arrives in
//! the dead-letter queue after reject/nack without requeue, with exactly RabbitMQ's
//! `x-death` and `x-first-death-*` headers (count in place, new deaths prepended, `CC`
//! removed and listed in `routing-keys`, `redelivered = false`), a missing DLX, ordering of
//! multiple nacks, persistence kept, and cycle detection that never loops.
//!
//! Expectations were confirmed against RabbitMQ 3.10.8 (docs/rabbitmq-observations.md,
//! section 14 "x-death after nack(requeue=false)"); the cycle rule is RabbitMQ's
//! (`rabbit_dead_letter`: drop when the cycle has no `rejected` death).

mod common;

use std::time::Duration;

use common::*;
use warrenmq::{
    Broker, Channel, ConsumeOptions, Delivery, ExchangeKind, FieldTable, FieldValue, GetOptions,
    ManualClock, Message, QueueDeclareOptions,
};

fn get(ch: &Channel, queue: &str) -> Delivery {
    ch.basic_get(queue, GetOptions::default()).unwrap().unwrap()
}

fn headers(d: &Delivery) -> FieldTable {
    d.properties().headers.clone().unwrap_or_default()
}

fn deaths(d: &Delivery) -> Vec<FieldTable> {
    headers(d)
        .get("x-death")
        .and_then(FieldValue::as_array)
        .unwrap_or(&[])
        .iter()
        .map(|v| v.as_table().unwrap().clone())
        .collect()
}

fn text<'a>(t: &'a FieldTable, key: &str) -> &'a str {
    t.get(key).and_then(FieldValue::as_str).unwrap()
}

#[test]
fn smoke() {
    let (_b, _c, ch) = setup();
    work_with_dlx(&ch);
    publish(&ch, "", "work", "m");
    get(&ch, "work").reject(false).unwrap();
    assert_eq!(drain(&ch, "dlq"), ["m"]);
}

#[test]
fn a_nacked_message_arrives_with_rabbitmqs_headers() {
    let (_b, _c, ch) = setup();
    work_with_dlx(&ch);
    ch.basic_publish("", "work", Message::new("m").header("h", 1))
        .unwrap();
    get(&ch, "work").nack(true).unwrap();
    let again = get(&ch, "work");
    assert!(again.redelivered());
    again.nack(false).unwrap();
    assert_eq!(
        ch.queue_declare("work", QueueDeclareOptions::passive(), FieldTable::new())
            .unwrap()
            .message_count,
        0
    );
    let d = get(&ch, "dlq");
    assert_eq!(d.exchange(), "dlx");
    assert_eq!(d.routing_key(), "work", "the original routing key");
    assert!(!d.redelivered());
    let h = headers(&d);
    assert_eq!(h.get("h"), Some(&FieldValue::I32(1)));
    let deaths = deaths(&d);
    assert_eq!(deaths.len(), 1, "a requeueing nack is not a death");
    let x = &deaths[0];
    assert_eq!(x.get("count"), Some(&FieldValue::I64(1)));
    assert_eq!(text(x, "reason"), "rejected");
    assert_eq!(text(x, "queue"), "work");
    assert_eq!(text(x, "exchange"), "");
    assert!(matches!(x.get("time"), Some(FieldValue::Timestamp(_))));
    assert_eq!(
        x.get("routing-keys"),
        Some(&FieldValue::Array(vec!["work".into()]))
    );
    assert_eq!(x.len(), 6, "no original-expiration without an expiration");
    assert_eq!(text(&h, "x-first-death-exchange"), "");
    assert_eq!(text(&h, "x-first-death-queue"), "work");
    assert_eq!(text(&h, "x-first-death-reason"), "rejected");
    d.ack().unwrap();
}

#[test]
fn dying_again_in_the_same_queue_counts_and_a_new_queue_is_prepended() {
    let (_b, _c, ch) = setup();
    work_with_dlx(&ch);
    declare(
        &ch,
        "work2",
        FieldTable::new().with("x-dead-letter-exchange", "dlx"),
    );
    publish(&ch, "", "work", "m");
    get(&ch, "work").reject(false).unwrap();
    let first = get(&ch, "dlq");
    let first_time = deaths(&first)[0].get("time").cloned();
    // Republish with its headers and reject again in the same queue.
    ch.basic_publish("", "work", first.message().clone())
        .unwrap();
    first.ack().unwrap();
    get(&ch, "work").reject(false).unwrap();
    let second = get(&ch, "dlq");
    let d2 = deaths(&second);
    assert_eq!(d2.len(), 1);
    assert_eq!(d2[0].get("count"), Some(&FieldValue::I64(2)));
    assert_eq!(d2[0].get("time").cloned(), first_time);
    assert_eq!(text(&headers(&second), "x-first-death-queue"), "work");
    // Now die in another queue: a new entry goes in front.
    ch.basic_publish("", "work2", second.message().clone())
        .unwrap();
    second.ack().unwrap();
    get(&ch, "work2").reject(false).unwrap();
    let third = get(&ch, "dlq");
    let d3 = deaths(&third);
    assert_eq!(d3.len(), 2);
    assert_eq!(text(&d3[0], "queue"), "work2");
    assert_eq!(d3[0].get("count"), Some(&FieldValue::I64(1)));
    assert_eq!(
        d3[0].get("routing-keys"),
        Some(&FieldValue::Array(vec!["work2".into()]))
    );
    assert_eq!(text(&d3[1], "queue"), "work");
    assert_eq!(d3[1].get("count"), Some(&FieldValue::I64(2)));
    let h = headers(&third);
    assert_eq!(text(&h, "x-first-death-queue"), "work");
    assert_eq!(text(&h, "x-first-death-reason"), "rejected");
    third.ack().unwrap();
}

#[test]
fn dying_again_in_an_earlier_queue_moves_its_entry_to_the_front() {
    let (_b, _c, ch) = setup();
    work_with_dlx(&ch);
    declare(
        &ch,
        "work2",
        FieldTable::new().with("x-dead-letter-exchange", "dlx"),
    );
    let mut msg = Message::new("m");
    for queue in ["work", "work2", "work"] {
        ch.basic_publish("", queue, msg).unwrap();
        get(&ch, queue).reject(false).unwrap();
        let d = get(&ch, "dlq");
        msg = d.message().clone();
        d.ack().unwrap();
    }
    let h = msg.properties().headers.clone().unwrap();
    let summary: Vec<(String, Option<i64>)> = h
        .get("x-death")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let d = d.as_table().unwrap();
            (
                text(d, "queue").to_owned(),
                d.get("count").and_then(FieldValue::as_i64),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("work".to_owned(), Some(2)), ("work2".to_owned(), Some(1))]
    );
}

#[test]
fn dead_letter_routing_key_and_cc() {
    let (_b, _c, ch) = setup();
    declare_exchange(&ch, "dlxd", ExchangeKind::Direct);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlxd", "dead-key", FieldTable::new())
        .unwrap();
    declare(
        &ch,
        "work",
        FieldTable::new()
            .with("x-dead-letter-exchange", "dlxd")
            .with("x-dead-letter-routing-key", "dead-key"),
    );
    ch.queue_bind("work", "amq.topic", "orig.key", FieldTable::new())
        .unwrap();
    let cc = FieldValue::Array(vec!["cc1".into()]);
    ch.basic_publish("amq.topic", "orig.key", Message::new("m").header("CC", cc))
        .unwrap();
    get(&ch, "work").reject(false).unwrap();
    let d = get(&ch, "dlq");
    assert_eq!(d.routing_key(), "dead-key");
    assert_eq!(d.exchange(), "dlxd");
    let x = &deaths(&d)[0];
    assert_eq!(text(x, "exchange"), "amq.topic");
    assert_eq!(
        x.get("routing-keys"),
        Some(&FieldValue::Array(vec!["orig.key".into(), "cc1".into()]))
    );
    assert!(headers(&d).get("CC").is_none(), "CC is removed");
    d.ack().unwrap();
}

#[test]
fn a_missing_dead_letter_exchange_drops_silently() {
    let (_b, _c, ch) = setup();
    declare(
        &ch,
        "work",
        FieldTable::new().with("x-dead-letter-exchange", "nowhere"),
    );
    publish(&ch, "", "work", "m");
    get(&ch, "work").reject(false).unwrap();
    assert!(!ch.is_closed());
    assert!(drain(&ch, "work").is_empty());
}

#[test]
fn nack_multiple_dead_letters_in_order() {
    let (_b, _c, ch) = setup();
    work_with_dlx(&ch);
    for k in ["k1", "k2", "k3"] {
        publish(&ch, "", "work", k);
    }
    let _ds: Vec<Delivery> = (0..3).map(|_| get(&ch, "work")).collect();
    ch.basic_nack(3, true, false).unwrap();
    assert_eq!(drain(&ch, "dlq"), ["k1", "k2", "k3"]);
}

#[test]
fn a_consumer_reject_dead_letters_and_a_persistent_message_stays_persistent() {
    let (_b, _c, ch) = setup();
    work_with_dlx(&ch);
    let consumer = ch.basic_consume("work", ConsumeOptions::default()).unwrap();
    ch.basic_publish("", "work", Message::new("p").persistent().priority(3))
        .unwrap();
    consumer
        .recv_timeout(PATIENCE)
        .unwrap()
        .reject(false)
        .unwrap();
    let d = get(&ch, "dlq");
    assert!(d.properties().is_persistent());
    assert_eq!(d.properties().priority, Some(3));
    d.ack().unwrap();
}

#[test]
fn a_rejected_message_may_cycle_back_to_its_queue() {
    let (_b, _c, ch) = setup();
    // Dead-letters through the default exchange with its own name: back to itself.
    declare(
        &ch,
        "loop",
        FieldTable::new()
            .with("x-dead-letter-exchange", "")
            .with("x-dead-letter-routing-key", "loop"),
    );
    publish(&ch, "", "loop", "m");
    get(&ch, "loop").reject(false).unwrap();
    get(&ch, "loop").reject(false).unwrap();
    let d = get(&ch, "loop");
    assert_eq!(deaths(&d)[0].get("count"), Some(&FieldValue::I64(2)));
    d.ack().unwrap();
}

#[test]
fn an_automatic_death_cycle_is_dropped() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    // a expires into b, b expires into a: the second lap is a cycle and is dropped.
    let args = |to: &str| {
        FieldTable::new()
            .with("x-message-ttl", 10)
            .with("x-dead-letter-exchange", "")
            .with("x-dead-letter-routing-key", to)
    };
    declare(&ch, "a", args("b"));
    declare(&ch, "b", args("a"));
    publish(&ch, "", "a", "m");
    clock.advance(Duration::from_millis(10));
    assert_eq!(broker.queue_stats("/", "a").unwrap().messages_ready, 0);
    assert_eq!(broker.queue_stats("/", "b").unwrap().messages_ready, 1);
    clock.advance(Duration::from_millis(10));
    assert_eq!(broker.queue_stats("/", "a").unwrap().messages_ready, 0);
    assert_eq!(broker.queue_stats("/", "b").unwrap().messages_ready, 0);
    // An expiring queue dead-lettering to itself drops at once.
    declare(
        &ch,
        "self",
        FieldTable::new()
            .with("x-message-ttl", 0)
            .with("x-dead-letter-exchange", ""),
    );
    publish(&ch, "", "self", "m");
    assert_eq!(broker.queue_stats("/", "self").unwrap().messages_ready, 0);
}

#[test]
fn a_rejection_in_the_cycle_lets_the_message_through() {
    let clock = ManualClock::new();
    let broker = Broker::builder().clock(clock.clone()).build().unwrap();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare(
        &ch,
        "a",
        FieldTable::new()
            .with("x-dead-letter-exchange", "")
            .with("x-dead-letter-routing-key", "b"),
    );
    declare(
        &ch,
        "b",
        FieldTable::new()
            .with("x-message-ttl", 10)
            .with("x-dead-letter-exchange", "")
            .with("x-dead-letter-routing-key", "a"),
    );
    publish(&ch, "", "a", "m");
    get(&ch, "a").reject(false).unwrap();
    clock.advance(Duration::from_millis(10));
    let d = get(&ch, "a");
    let reasons: Vec<String> = deaths(&d)
        .iter()
        .map(|x| text(x, "reason").to_owned())
        .collect();
    assert_eq!(reasons, ["expired", "rejected"]);
    d.ack().unwrap();
}

#[test]
fn the_system_clock_sweeper_dead_letters_in_the_background() {
    let broker = Broker::in_memory();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare(
        &ch,
        "ttlq",
        FieldTable::new()
            .with("x-message-ttl", 5)
            .with("x-dead-letter-exchange", "dlx"),
    );
    let consumer = ch.basic_consume("dlq", ConsumeOptions::no_ack()).unwrap();
    publish(&ch, "", "ttlq", "late");
    let d = consumer.recv_timeout(PATIENCE).unwrap();
    assert_eq!(body(&d), "late");
}

#[test]
fn concurrent_publishers_rejects_and_drops_lose_nothing() {
    const PER_THREAD: usize = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    let (broker, conn, ch) = setup();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout);
    declare_queue(&ch, "dlq");
    ch.queue_bind("dlq", "dlx", "", FieldTable::new()).unwrap();
    declare(
        &ch,
        "work",
        FieldTable::new()
            .with("x-max-length", 50)
            .with("x-dead-letter-exchange", "dlx"),
    );
    let consumer_ch = conn.open_channel().unwrap();
    consumer_ch.basic_qos(10).unwrap();
    let consumer = consumer_ch
        .basic_consume("work", ConsumeOptions::default())
        .unwrap();
    let acked = std::thread::scope(|s| {
        let publishers: Vec<_> = (0..4)
            .map(|t| {
                let ch = conn.open_channel().unwrap();
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        publish(&ch, "", "work", &format!("{t}-{i}"));
                    }
                })
            })
            .collect();
        let mut acked = 0;
        let mut idle = 0;
        // Until every publisher is done and the consumer has been idle for a while.
        while idle < 5 || !publishers.iter().all(|p| p.is_finished()) {
            match consumer.recv_timeout(Duration::from_millis(50)) {
                Ok(d) => {
                    idle = 0;
                    if d.delivery_tag() % 2 == 0 {
                        d.ack().unwrap();
                        acked += 1;
                    } else {
                        d.reject(false).unwrap();
                    }
                }
                Err(_) => idle += 1,
            }
        }
        acked
    });
    let work = broker.queue_stats("/", "work").unwrap();
    let dlq = broker.queue_stats("/", "dlq").unwrap();
    assert_eq!(work.messages(), 0);
    assert_eq!(acked + dlq.messages_ready, 4 * PER_THREAD);
}
